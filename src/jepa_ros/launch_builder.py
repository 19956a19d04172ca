"""Build a ``launch`` description from a graph of :mod:`jepa_ros.graphs` (used by launch/*.launch.py).

Each graph entry becomes the matching launch action: arguments ``DeclareLaunchArgument`` (with
their descriptions), nodes ``launch_ros.actions.Node``, plain commands ``ExecuteProcess``,
includes ``IncludeLaunchDescription``; ``after`` becomes an ``OnProcessExit`` handler that starts
the node only when the other one exited with code 0. Package files are found with
``FindPackageShare``, never by absolute path. ``launch`` and ``launch_ros`` are imported inside
the functions, so this module imports on machines without them.
"""

from __future__ import annotations

from typing import Any

from jepa_ros.graphs import (
    GRAPHS,
    PACKAGE,
    Argument,
    Graph,
    IncludeSpec,
    NodeSpec,
    PresetField,
    SharePath,
    Value,
    Xacro,
    is_text,
    split_template,
)


def _text(text: str) -> Any:
    """A string with ``{argument}`` placeholders as launch substitutions (a plain str if it has none)."""
    from launch.substitutions import LaunchConfiguration, TextSubstitution

    pieces = split_template(text)
    if all(not is_argument for is_argument, _ in pieces):
        return text
    return [LaunchConfiguration(piece) if is_argument else TextSubstitution(text=piece) for is_argument, piece in pieces]


def _share_path(path: SharePath) -> Any:
    from launch.substitutions import PathJoinSubstitution
    from launch_ros.substitutions import FindPackageShare

    return PathJoinSubstitution([FindPackageShare(PACKAGE), *path.path.split("/")])


def _preset_field(value: PresetField) -> Any:
    """A substitution that reads one field of the robot preset named by a launch argument."""
    from launch.substitution import Substitution
    from launch.substitutions import LaunchConfiguration

    from jepa_wm.config import load_robot

    class RobotPresetField(Substitution):
        def describe(self) -> str:
            return f"robot preset field {value.field} of $(var {value.robot_argument})"

        def perform(self, context: Any) -> str:
            return str(getattr(load_robot(LaunchConfiguration(value.robot_argument).perform(context)), value.field))

    return RobotPresetField()


def substitution(value: Value | PresetField) -> Any:
    """A graph value as what launch actions accept."""
    if isinstance(value, PresetField):
        return _preset_field(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, SharePath):
        return _share_path(value)
    if isinstance(value, Xacro):
        from launch.substitutions import Command, FindExecutable
        from launch_ros.parameter_descriptions import ParameterValue

        command: list[Any] = [FindExecutable(name="xacro"), " ", _share_path(SharePath(value.path))]
        for name, mapped in value.mappings:
            mapped_value = substitution(mapped)  # Command takes a flat list
            command += [f" {name}:=", *(mapped_value if isinstance(mapped_value, list) else [mapped_value])]
        return ParameterValue(Command(command), value_type=str)
    if isinstance(value, str):
        return _text(value)
    return value


def _condition(condition: str) -> Any:
    from launch.conditions import IfCondition, UnlessCondition
    from launch.substitutions import LaunchConfiguration

    if not condition:
        return None
    if condition.startswith("!"):
        return UnlessCondition(LaunchConfiguration(condition[1:]))
    return IfCondition(LaunchConfiguration(condition))


def _parameter(value: Value, arguments: dict[str, Argument]) -> Any:
    """A node parameter value; launch_ros YAML-parses substitutions, so text ones are typed str."""
    if isinstance(value, (bool, int, float)):
        return value
    if is_text(value, arguments):
        from launch_ros.parameter_descriptions import ParameterValue

        return ParameterValue(_text(value), value_type=str)
    return substitution(value)


def node_action(node: NodeSpec, arguments: dict[str, Argument]) -> Any:
    """The launch action that starts ``node``."""
    if not node.ros_args:
        from launch.actions import ExecuteProcess
        from launch.substitutions import FindExecutable

        command = [FindExecutable(name=node.executable), *[substitution(a) for a in node.arguments]]
        return ExecuteProcess(cmd=command, name=node.name, output="screen", condition=_condition(node.condition),
                              **_on_exit(node))
    from launch_ros.actions import Node

    parameters: list[Any] = [substitution(path) for path in node.param_files]
    if node.parameters:
        parameters.append({name: _parameter(value, arguments) for name, value in node.parameters})
    return Node(
        package=node.package,
        executable=node.executable,
        name=node.name,
        output="screen",
        parameters=parameters,
        remappings=[(_text(source), _text(target)) for source, target in node.remaps],
        arguments=[substitution(argument) for argument in node.arguments],
        condition=_condition(node.condition),
        **_on_exit(node),
    )


def _on_exit(node: NodeSpec) -> dict[str, Any]:
    """``on_exit`` that shuts the launch down when ``node`` ends the graph (as the runner stops it)."""
    if not node.ends_graph:
        return {}
    from launch.actions import Shutdown

    return {"on_exit": [Shutdown(reason=f"{node.name} exited: the graph stops")]}


def include_action(include: IncludeSpec) -> Any:
    """The launch action that includes another package's launch file."""
    from launch.actions import IncludeLaunchDescription
    from launch.launch_description_sources import PythonLaunchDescriptionSource
    from launch.substitutions import PathJoinSubstitution
    from launch_ros.substitutions import FindPackageShare

    source = PathJoinSubstitution([FindPackageShare(include.package), *include.launch_file.split("/")])
    return IncludeLaunchDescription(
        PythonLaunchDescriptionSource(source),
        launch_arguments=[(name, substitution(value)) for name, value in include.arguments],
        condition=_condition(include.condition),
    )


def _after(target: Any, name: str, action: Any) -> Any:
    """Start ``action`` once ``target`` has exited successfully (the runner's ``after``)."""
    from launch.actions import LogInfo, RegisterEventHandler
    from launch.event_handlers import OnProcessExit

    def on_exit(event: Any, _context: Any) -> list[Any]:
        if event.returncode == 0:
            return [action]
        return [LogInfo(msg=f"{name} not started: the process it waits for exited with code {event.returncode}")]

    return RegisterEventHandler(OnProcessExit(target_action=target, on_exit=on_exit))


def launch_description(graph_name: str) -> Any:
    """The LaunchDescription of graph ``graph_name`` from jepa_ros.graphs."""
    from launch import LaunchDescription
    from launch.actions import AppendEnvironmentVariable, DeclareLaunchArgument

    graph: Graph = GRAPHS[graph_name]
    entities: list[Any] = [
        DeclareLaunchArgument(
            argument.name,
            description=argument.description,
            # no default_value: ros2 launch refuses to start without the argument
            **({"default_value": substitution(argument.default)} if argument.default is not None else {}),
            **({"choices": list(argument.choices)} if argument.choices else {}),
        )
        for argument in graph.arguments
    ]
    entities += [AppendEnvironmentVariable(name, substitution(value)) for name, value in graph.environment]
    entities += [include_action(include) for include in graph.includes]
    arguments = {argument.name: argument for argument in graph.arguments}
    actions = {node.name: node_action(node, arguments) for node in graph.nodes}
    for node in graph.nodes:
        if node.after:
            entities.append(_after(actions[node.after], node.name, actions[node.name]))
        else:
            entities.append(actions[node.name])
    return LaunchDescription(entities)
