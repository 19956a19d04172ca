"""Launch files, the graphs they build from, the xacro variants, the Gazebo world and bridge, and
the node parameter files: checked without `ros2 launch` (not installable here) and, where
`launch` / `launch_ros` import, by building every launch description."""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from jepa_ros.graphs import GRAPHS, NodeSpec, SharePath
from jepa_wm import topics
from jepa_wm.config import RobotConfig, SimConfig, load_robot, package_share

LAUNCH_FILES = sorted((package_share() / "launch").glob("*.launch.py"))
ABSOLUTE_PATH = re.compile(r"^/(home|opt|usr|work|tmp|root|var)/")


def _xacro(hardware: str, **mappings: str) -> ET.Element:
    import xacro

    mappings = {"hardware": hardware, "controllers_file": str(package_share() / "config" / "ros2_control" / "controllers.yaml"), **mappings}
    return ET.fromstring(xacro.process_file(str(package_share() / "urdf" / "arm.urdf.xacro"), mappings=mappings).toxml())


# ---------------------------------------------------------------------------------------
# robot description variants


def test_gazebo_description_has_camera_sensor_state_interfaces_and_gz_ros2_control() -> None:
    robot = _xacro("gazebo")
    sensors = [s for g in robot.iter("gazebo") for s in g.iter("sensor")]
    assert [s.get("type") for s in sensors] == ["camera"]
    assert sensors[0].findtext("topic") == "camera/image_raw"
    plugins = [p for g in robot.iter("gazebo") for p in g.iter("plugin")]
    assert [p.get("filename") for p in plugins] == ["gz_ros2_control-system"]
    assert Path(plugins[0].findtext("parameters")).resolve() == (package_share() / "config" / "ros2_control" / "controllers.yaml").resolve()
    ros2_control = robot.find("ros2_control")
    assert ros2_control.findtext("hardware/plugin") == "gz_ros2_control/GazeboSimSystem"
    # joint_state_broadcaster publishes joint_states from these state interfaces
    for joint in ros2_control.iter("joint"):
        states = {s.get("name") for s in joint.iter("state_interface")}
        assert {"position", "velocity"} <= states, joint.get("name")
        assert {c.get("name") for c in joint.iter("command_interface")} == {"position"}


def test_mock_and_real_descriptions() -> None:
    mock = _xacro("mock")
    assert mock.find("ros2_control").findtext("hardware/plugin") == "mock_components/GenericSystem"
    assert not list(mock.iter("gazebo")) or not [p for g in mock.iter("gazebo") for p in g.iter("plugin")]
    real = _xacro("real", hardware_plugin="ur_robot_driver/URPositionHardwareInterface")
    assert real.find("ros2_control").findtext("hardware/plugin") == "ur_robot_driver/URPositionHardwareInterface"
    with pytest.raises(Exception, match="hardware_plugin"):
        _xacro("real")


# ---------------------------------------------------------------------------------------
# Gazebo world and bridge


def test_world_has_the_systems_gazebo_needs() -> None:
    world = ET.parse(package_share() / "config" / "gazebo" / "workspace.sdf").getroot().find("world")
    plugins = {p.get("name"): p for p in world.iter("plugin")}
    for system in ("Physics", "Sensors", "SceneBroadcaster", "UserCommands"):
        assert f"gz::sim::systems::{system}" in plugins, system
    assert plugins["gz::sim::systems::Sensors"].findtext("render_engine") == "ogre2"


def test_bridge_topics_are_the_nodes_defaults_and_the_sensors() -> None:
    bridge = yaml.safe_load((package_share() / "config" / "gazebo" / "gz_bridge.yaml").read_text())
    by_type = {entry["ros_type_name"]: entry for entry in bridge}
    assert set(by_type) == {"rosgraph_msgs/msg/Clock", "sensor_msgs/msg/Image", "sensor_msgs/msg/CameraInfo"}
    assert all(entry["direction"] == "GZ_TO_ROS" for entry in bridge)
    image, info = by_type["sensor_msgs/msg/Image"], by_type["sensor_msgs/msg/CameraInfo"]
    assert by_type["rosgraph_msgs/msg/Clock"]["ros_topic_name"] == "/clock"
    # ROS side: what world_model_node subscribes by default (robot preset) and what sim_node publishes
    assert image["ros_topic_name"] == RobotConfig.camera_topic == load_robot("jepa_arm").camera_topic
    sim_source = (package_share() / "src" / "jepa_ros" / "nodes" / "sim_node.py").read_text()
    published = {msg: getattr(topics, name) for msg, name in re.findall(r"create_publisher\((\w+), topics\.(\w+)", sim_source)}
    assert published["Image"] == image["ros_topic_name"] and published["CameraInfo"] == info["ros_topic_name"]
    assert published["Clock"] == "/clock"
    # Gazebo side: the camera sensor's topic, and camera_info beside it (gz-sensors' convention)
    sensor_topic = next(s for g in _xacro("gazebo").iter("gazebo") for s in g.iter("sensor")).findtext("topic")
    assert image["gz_topic_name"] == sensor_topic
    assert info["gz_topic_name"] == sensor_topic.rsplit("/", 1)[0] + "/camera_info"


# ---------------------------------------------------------------------------------------
# graphs and parameter files


def _fields(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _parameter_names(node: NodeSpec) -> set[str]:
    return {name for name, _ in node.parameters}


def _param_file_keys(path: SharePath) -> set[str]:
    data = yaml.safe_load((package_share() / path.path).read_text())
    (section,) = data.values()
    return set(section["ros__parameters"])


def test_node_parameters_of_every_graph_are_declared_by_the_nodes() -> None:
    from jepa_ros.nodes.explore_node import ExploreConfig
    from jepa_ros.nodes.sim_node import SimNodeConfig
    from jepa_ros.nodes.world_model_node import WorldModelNodeConfig

    declared = {
        "sim_node": _fields(SimConfig) | _fields(SimNodeConfig),
        "explore_node": _fields(ExploreConfig),
        "world_model_node": _fields(WorldModelNodeConfig) | {"robot", "planner"},
    }
    for graph in GRAPHS.values():
        for node in graph.nodes:
            if node.package != "jepa_ros":
                continue
            unknown = _parameter_names(node) - declared[node.executable] - {"use_sim_time"}
            assert not unknown, f"graph {graph.name}: {node.name} sets undeclared parameters {sorted(unknown)}"
            for path in node.param_files:  # a str is an argument's file: its default is checked with the arguments
                if not isinstance(path, SharePath):
                    argument = next(a for a in graph.arguments if f"{{{a.name}}}" == path)
                    path = argument.default
                unknown = _param_file_keys(path) - declared[node.executable] - {"use_sim_time"}
                assert not unknown, f"{path.path}: keys {sorted(unknown)} are not parameters of {node.executable}"


def test_sim_gazebo_graph_order_clock_and_headless() -> None:
    graph = GRAPHS["sim_gazebo"]
    assert graph.node("spawn_joint_state_broadcaster").after == "spawn_arm"
    assert graph.node("spawn_arm_controller").after == "spawn_joint_state_broadcaster"
    assert graph.node("spawn_arm_controller").arguments[0] == load_robot("jepa_arm").command_topic.split("/")[0]
    for node in graph.nodes:
        assert "use_sim_time" in _parameter_names(node), f"{node.name} does not get use_sim_time"
    gz_args = {include.condition: dict(include.arguments)["gz_args"] for include in graph.includes}
    assert " -s " in gz_args["headless"] and " -s " not in gz_args["!headless"]
    assert all("{world}" in args for args in gz_args.values())


def test_replay_graph_keeps_commands_off_the_robot() -> None:
    graph = GRAPHS["replay"]
    model = graph.node("world_model_node")
    command_topic = dict(model.parameters)["command_topic"]
    assert command_topic == "evaluation/commands"
    assert all(command_topic != load_robot(name).command_topic for name in ("jepa_arm", "ur5e", "fr3", "so101"))
    assert f"/{command_topic}" in graph.node("bag_record").arguments
    assert "--clock" in graph.node("bag_play").arguments
    from jepa_ros.runner import resolve_arguments
    from jepa_wm.config import ConfigError

    with pytest.raises(ConfigError, match=r"graph replay needs bag:=\.\.\."):
        resolve_arguments(graph, [])
    assert resolve_arguments(graph, ["bag:=episode_000"])["bag"] == "episode_000"


# ---------------------------------------------------------------------------------------
# launch files


def test_one_launch_file_per_graph() -> None:
    assert sorted(path.name.removesuffix(".launch.py") for path in LAUNCH_FILES) == sorted(GRAPHS)


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_builds_from_its_graph_and_documents_arguments(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    assert ast.get_docstring(tree), f"{path.name} has no module docstring"
    functions = {f.name: f for f in tree.body if isinstance(f, ast.FunctionDef)}
    assert "generate_launch_description" in functions and ast.get_docstring(functions["generate_launch_description"])
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)]
    graph_names = [c.args[0].value for c in calls if getattr(c.func, "id", "") == "launch_description"]
    assert graph_names == [path.name.removesuffix(".launch.py")]
    for call in calls:  # any argument declared by hand must say what it is
        if getattr(call.func, "id", getattr(call.func, "attr", "")) == "DeclareLaunchArgument":
            assert any(k.arg == "description" for k in call.keywords), f"{path.name}:{call.lineno}"
    strings = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    assert not [s for s in strings if ABSOLUTE_PATH.match(s)], f"{path.name} has an absolute path"
    for argument in GRAPHS[graph_names[0]].arguments:
        assert len(argument.description) > 10, f"{path.name}: argument {argument.name} has no description"
        assert not (isinstance(argument.default, str) and ABSOLUTE_PATH.match(argument.default)), argument.name


def shown_description(argument) -> str:
    """An argument's description as the launch framework shows it: choices are appended to it."""
    if not argument.choices:
        return argument.description
    text = argument.description if argument.description.endswith(".") else f"{argument.description}."
    return f"{text} Valid choices are: {list(argument.choices)}"


def test_shown_description_matches_the_launch_frameworks_wording() -> None:
    # launch 3.7 (ros2/launch DeclareLaunchArgument.__init__) appends the choices to the description
    choices = next(a for graph in GRAPHS.values() for a in graph.arguments if a.choices)
    shown = shown_description(choices)
    assert shown.startswith(choices.description.rstrip(".")) and shown.endswith(f"Valid choices are: {list(choices.choices)}")
    assert ". Valid choices are: [" in shown and ".. Valid" not in shown


def _launch_unavailable() -> str:
    try:
        import launch
        import launch_ros  # noqa: F401
    except ImportError as err:
        return f"ROS 2 launch is not installed here ({err}); launch files were checked with ast instead"
    if not hasattr(launch, "LaunchDescription"):  # the package's own launch/ folder, seen as a namespace package
        return "only this package's launch/ folder imports as `launch`; ROS 2 launch is not installed"
    return ""


@pytest.mark.skipif(bool(_launch_unavailable()), reason=_launch_unavailable() or "launch available")
@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_description_nodes_match_the_runner_graph(path: Path) -> None:  # pragma: no cover - needs ROS 2 launch
    from launch import LaunchContext
    from launch.actions import DeclareLaunchArgument, RegisterEventHandler
    from launch.utilities import normalize_to_list_of_substitutions, perform_substitutions
    from launch_ros.actions import Node

    spec = importlib.util.spec_from_file_location(path.stem.replace(".", "_"), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    graph = GRAPHS[path.name.removesuffix(".launch.py")]
    entities = description.entities
    declared = {e.name: e.description for e in entities if isinstance(e, DeclareLaunchArgument)}
    assert declared == {a.name: shown_description(a) for a in graph.arguments}
    context = LaunchContext()
    nodes = [e for e in entities if isinstance(e, Node)]
    def text(value: object) -> str:
        return perform_substitutions(context, normalize_to_list_of_substitutions(value))

    named = {text(n._Node__node_name): (text(n.node_package), text(n.node_executable)) for n in nodes}
    waiting = [e for e in entities if isinstance(e, RegisterEventHandler)]
    expected = {n.name: (n.package, n.executable) for n in graph.nodes if n.ros_args and not n.after}
    assert named == expected
    assert len(waiting) == sum(1 for n in graph.nodes if n.after)
