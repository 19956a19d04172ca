"""One description of each jepa_ros node graph: launch files and `jepa-ros up` both build from it.

A graph lists its launch arguments (with descriptions and defaults) and its nodes: package,
executable, name, parameter files from this package's ``config/``, parameter overrides, remaps,
command-line arguments, a condition and an ordering on another node's exit. The launch files
turn each entry into ``launch_ros`` actions; :mod:`jepa_ros.runner` turns the same entries into
``--ros-args`` command lines. Neither keeps its own copy, so the two cannot drift apart.

This module is ROS-free (launch files import it where ``launch`` is installed, the runner where
it is not). String values may hold ``{argument}`` placeholders, filled from the graph's
arguments; :class:`SharePath` and :class:`Xacro` values name files of this package.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Union

PACKAGE = "jepa_ros"


@dataclass(frozen=True)
class SharePath:
    """A file of this package, relative to its share folder (``FindPackageShare`` in launch files)."""

    path: str


@dataclass(frozen=True)
class Xacro:
    """A string rendered by xacro from a file of this package, with ``name:=value`` mappings."""

    path: str
    mappings: tuple[tuple[str, Union[str, SharePath]], ...] = ()


Value = Union[str, bool, int, float, SharePath, Xacro]


@dataclass(frozen=True)
class PresetField:
    """A default read from the robot preset named by another argument (``config/robots/<robot>.yaml``)."""

    field: str  # a field of jepa_wm.config.RobotConfig
    robot_argument: str = "robot"


@dataclass(frozen=True)
class Argument:
    """A launch argument: ``name:=value`` on the command line of `ros2 launch` or `jepa-ros up`."""

    name: str
    default: str | SharePath | PresetField | None  # None: the argument must be given
    description: str
    choices: tuple[str, ...] = ()
    # A parameter set from a "str" argument stays a string (never YAML-typed, even when empty);
    # values of the other kinds are checked when given and reach the nodes typed.
    kind: Literal["str", "bool", "int", "float"] = "str"

    def __post_init__(self) -> None:
        assert self.kind in ("str", "bool", "int", "float"), f"argument {self.name}: kind {self.kind!r}"
        if self.kind == "bool" and not self.choices:
            object.__setattr__(self, "choices", ("true", "false"))


@dataclass(frozen=True)
class NodeSpec:
    """One ROS node (or a plain process when ``ros_args`` is False) of a graph."""

    package: str
    executable: str
    name: str
    param_files: tuple[SharePath | str, ...] = ()  # a str is a path that may hold {argument} placeholders
    parameters: tuple[tuple[str, Value], ...] = ()
    remaps: tuple[tuple[str, str], ...] = ()
    arguments: tuple[Value, ...] = ()  # before --ros-args
    condition: str = ""  # "arg": runs when the argument is true; "!arg": when it is false
    after: str = ""  # name of the node whose successful exit starts this one
    oneshot: bool = False  # expected to exit on its own (spawners, `create`)
    ends_graph: bool = False  # its exit, whatever the code, stops the whole graph (a playback that ended or failed)
    ros_args: bool = True  # False: a plain command (`ros2 bag ...`), no --ros-args section


@dataclass(frozen=True)
class IncludeSpec:
    """Another package's launch file; the runner starts ``command`` in its place."""

    package: str
    launch_file: str  # relative to that package's share folder
    name: str
    arguments: tuple[tuple[str, Value], ...]
    command: tuple[Value, ...]
    condition: str = ""


@dataclass(frozen=True)
class Graph:
    """A node graph: what one launch file starts."""

    name: str
    description: str
    arguments: tuple[Argument, ...]
    nodes: tuple[NodeSpec, ...]
    includes: tuple[IncludeSpec, ...] = ()
    environment: tuple[tuple[str, Value], ...] = ()  # appended to the processes' environment

    def __post_init__(self) -> None:
        names = [item.name for item in (*self.includes, *self.nodes)]
        assert len(set(names)) == len(names), f"graph {self.name}: duplicate node names {names}"
        known = {argument.name for argument in self.arguments}
        for node in self.nodes:
            assert not node.after or node.after in names, f"graph {self.name}: {node.name} after unknown {node.after!r}"
        for item in (*self.includes, *self.nodes):
            for placeholder in placeholders_of(item):
                assert placeholder in known, f"graph {self.name}: {item.name} uses unknown argument {{{placeholder}}}"
        kinds = {argument.name: argument.kind for argument in self.arguments}
        for item in (*self.includes, *self.nodes):
            condition = item.condition.lstrip("!")
            assert not condition or kinds[condition] == "bool", f"graph {self.name}: {item.name} condition {condition} is not a bool"
        for argument in self.arguments:
            if isinstance(argument.default, PresetField):
                assert argument.default.robot_argument in known, f"graph {self.name}: {argument.name} needs a preset argument"

    def node(self, name: str) -> NodeSpec:
        """The node called ``name``."""
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(f"graph {self.name} has no node {name!r}; nodes are {[n.name for n in self.nodes]}")


_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def split_template(text: str) -> list[tuple[bool, str]]:
    """Split ``"{controller}/commands"`` into ``[(True, "controller"), (False, "/commands")]``."""
    pieces: list[tuple[bool, str]] = []
    position = 0
    for match in _PLACEHOLDER.finditer(text):
        if match.start() > position:
            pieces.append((False, text[position : match.start()]))
        pieces.append((True, match.group(1)))
        position = match.end()
    if position < len(text):
        pieces.append((False, text[position:]))
    return pieces


def fill_template(text: str, values: dict[str, str]) -> str:
    """Replace every ``{argument}`` in ``text`` with its value."""
    return "".join(values[piece] if is_argument else piece for is_argument, piece in split_template(text))


def is_text(value: Value, arguments: dict[str, Argument]) -> bool:
    """Whether a parameter value must reach the node as a string: it names a "str" argument."""
    if not isinstance(value, str):
        return False
    names = [piece for is_argument, piece in split_template(value) if is_argument]
    return any(arguments[name].kind == "str" for name in names)


def placeholders_of(item: NodeSpec | IncludeSpec) -> set[str]:
    """Names of the arguments an entry refers to (in values, remaps and its condition)."""
    values: list[object] = []
    if isinstance(item, NodeSpec):
        values += [v for _, v in item.parameters] + list(item.arguments) + list(item.param_files)
        values += [text for pair in item.remaps for text in pair]
    else:
        values += [v for _, v in item.arguments] + list(item.command)
    values += [m for v in values if isinstance(v, Xacro) for _, m in v.mappings]
    found = {name for v in values if isinstance(v, str) for is_arg, name in split_template(v) if is_arg}
    if item.condition:
        found.add(item.condition.lstrip("!"))
    return found


# ---------------------------------------------------------------------------------------
# The graphs

_USE_SIM_TIME = Argument("use_sim_time", "true", "use the simulation /clock for every node", kind="bool")
_EXPLORE = Argument("explore", "false", "also start explore_node, commanding random safe joint moves (data collection)", kind="bool")
_CHECKPOINT = Argument("checkpoint", "", "world model checkpoint folder; empty: the packaged checkpoints/default")
_ENABLE = Argument("enable", "false", "world_model_node commands the arm from the start (else call its ~/enable)", kind="bool")


def _world_model(*, remaps: tuple[tuple[str, str], ...] = (), extra: tuple[tuple[str, Value], ...] = (),
                 param_files: tuple[str, ...] = ()) -> NodeSpec:
    return NodeSpec(
        PACKAGE,
        "world_model_node",
        "world_model_node",
        param_files=(SharePath("config/nodes/world_model_node.yaml"), *param_files),
        parameters=(("use_sim_time", "{use_sim_time}"), ("checkpoint", "{checkpoint}"), ("start_enabled", "{enable}"), *extra),
        remaps=remaps,
    )


def _explore(extra: tuple[tuple[str, Value], ...] = ()) -> NodeSpec:
    # explore:=true asks for data collection, so it commands from the start (leave enable:=false)
    return NodeSpec(
        PACKAGE,
        "explore_node",
        "explore_node",
        param_files=(SharePath("config/nodes/explore_node.yaml"),),
        parameters=(("use_sim_time", "{use_sim_time}"), ("start_enabled", True), *extra),
        condition="explore",
    )


SIM_MUJOCO = Graph(
    name="sim_mujoco",
    description="MuJoCo arm (sim_node) with the world model; the graph `make demo` starts",
    arguments=(
        _USE_SIM_TIME,
        _EXPLORE,
        _CHECKPOINT,
        _ENABLE,
        Argument("robot", "jepa_arm", "simulated robot preset (config/robots/<robot>.yaml with a description); "
                 "give its checkpoint too"),
        Argument("image_size", "128", "camera image width and height (px) rendered by sim_node", kind="int"),
        Argument("seed", "0", "seed of the simulated scene (object placement)", kind="int"),
        Argument("scene", "reach", "sim_node's scene: reach, or push (a block on the table to push, its pose on "
                 "object_pose)"),
        Argument("real_time_factor", "1.0", "simulated seconds per wall second in sim_node; 0: as fast as possible", kind="float"),
        Argument("sim_params_file", SharePath("config/nodes/sim_node.yaml"),
                 "sim_node parameters loaded after the packaged config/nodes/sim_node.yaml (e.g. light_scale, "
                 "camera_shift, jpeg_quality; a file with only those keys is enough)"),
        Argument("params_file", SharePath("config/nodes/world_model_node.yaml"),
                 "world_model_node parameters loaded after the packaged config/nodes/world_model_node.yaml"),
    ),
    nodes=(
        NodeSpec(
            PACKAGE,
            "sim_node",
            "sim_node",
            param_files=(SharePath("config/nodes/sim_node.yaml"), "{sim_params_file}"),
            # sim_node is the clock: it publishes /clock and must not wait on it
            parameters=(
                ("use_sim_time", False),
                ("robot", "{robot}"),
                ("image_size", "{image_size}"),
                ("seed", "{seed}"),
                ("scene", "{scene}"),
                ("real_time_factor", "{real_time_factor}"),
            ),
        ),
        _world_model(param_files=("{params_file}",), extra=(("robot", "{robot}"),)),
        _explore(extra=(("robot", "{robot}"),)),
    ),
)

# controllers_file given explicitly: $(find jepa_ros) in the xacro needs an ament index
_ARM_GAZEBO = Xacro("urdf/arm.urdf.xacro", (("hardware", "gazebo"), ("controllers_file", SharePath("config/ros2_control/controllers.yaml"))))

SIM_GAZEBO = Graph(
    name="sim_gazebo",
    description="Gazebo (Harmonic / Ionic) arm through gz_ros2_control with the world model",
    arguments=(
        _USE_SIM_TIME,
        _EXPLORE,
        _CHECKPOINT,
        _ENABLE,
        Argument("world", SharePath("config/gazebo/workspace.sdf"), "Gazebo world SDF file"),
        Argument("headless", "false", "run the Gazebo server only (no GUI), rendering sensors offscreen", kind="bool"),
        Argument("gz_verbosity", "3", "Gazebo console verbosity, 0 (errors) .. 4 (debug)", kind="int"),
    ),
    includes=(
        IncludeSpec(
            "ros_gz_sim",
            "launch/gz_sim.launch.py",
            "gz_sim",
            arguments=(("gz_args", "-r -v {gz_verbosity} {world}"), ("on_exit_shutdown", "true")),
            command=("gz", "sim", "-r", "-v", "{gz_verbosity}", "{world}"),
            condition="!headless",
        ),
        IncludeSpec(
            "ros_gz_sim",
            "launch/gz_sim.launch.py",
            "gz_sim_headless",
            arguments=(("gz_args", "-r -s --headless-rendering -v {gz_verbosity} {world}"), ("on_exit_shutdown", "true")),
            command=("gz", "sim", "-r", "-s", "--headless-rendering", "-v", "{gz_verbosity}", "{world}"),
            condition="headless",
        ),
    ),
    nodes=(
        NodeSpec(
            "robot_state_publisher",
            "robot_state_publisher",
            "robot_state_publisher",
            parameters=(("robot_description", _ARM_GAZEBO), ("use_sim_time", "{use_sim_time}")),
        ),
        NodeSpec(
            "ros_gz_sim",
            "create",
            "spawn_arm",
            arguments=("-topic", "robot_description", "-name", "jepa_arm"),
            parameters=(("use_sim_time", "{use_sim_time}"),),
            oneshot=True,
        ),
        NodeSpec(
            "ros_gz_bridge",
            "parameter_bridge",
            "gz_bridge",
            parameters=(("config_file", SharePath("config/gazebo/gz_bridge.yaml")), ("use_sim_time", "{use_sim_time}")),
        ),
        NodeSpec(
            "controller_manager",
            "spawner",
            "spawn_joint_state_broadcaster",
            arguments=("joint_state_broadcaster", "--controller-manager", "/controller_manager"),
            parameters=(("use_sim_time", "{use_sim_time}"),),
            after="spawn_arm",
            oneshot=True,
        ),
        # forward_position_controller: the jepa_arm preset's command interface (Float64MultiArray)
        NodeSpec(
            "controller_manager",
            "spawner",
            "spawn_arm_controller",
            arguments=(
                "forward_position_controller",
                "--controller-manager",
                "/controller_manager",
                "--param-file",
                SharePath("config/ros2_control/controllers.yaml"),
            ),
            parameters=(("use_sim_time", "{use_sim_time}"),),
            after="spawn_joint_state_broadcaster",
            oneshot=True,
        ),
        _world_model(),
        _explore(),
    ),
    # meshes and models of this package resolve as package://jepa_ros / model://jepa_ros
    environment=(("GZ_SIM_RESOURCE_PATH", SharePath("..")),),
)

ROBOT = Graph(
    name="robot",
    description="a real arm under ros2_control: only the jepa_ros nodes, commanding disabled at start",
    arguments=(
        Argument("robot", "jepa_arm", "robot preset: config/robots/<robot>.yaml, or a path to a preset YAML file"),
        _CHECKPOINT,
        Argument("use_sim_time", "false", "use /clock instead of the wall clock", kind="bool"),
        Argument("enable", "false", "command the arm from the start; keep false on a real arm and call ~/enable", kind="bool"),
        Argument("camera_topic", PresetField("camera_topic"), "camera image topic (sensor_msgs/Image); default: the preset's"),
        Argument("joint_states_topic", PresetField("joint_states_topic"), "joint state topic; default: the preset's"),
        Argument("command_topic", PresetField("command_topic"), "arm controller command topic; default: the preset's"),
        Argument(
            "params_file",
            SharePath("config/nodes/world_model_node.yaml"),
            "world_model_node parameters loaded after the packaged config/nodes/world_model_node.yaml, e.g. the planner's "
            "num_samples, iterations or control_rate for a slower CPU (a file with only those keys is enough)",
        ),
    ),
    nodes=(
        _world_model(
            param_files=("{params_file}",),
            extra=(
                ("robot", "{robot}"),
                ("camera_topic", "{camera_topic}"),
                ("joint_states_topic", "{joint_states_topic}"),
                ("command_topic", "{command_topic}"),
            ),
        ),
    ),
)

REPLAY = Graph(
    name="replay",
    description="`ros2 bag play --clock` of a recorded bag with world_model_node evaluating (commands recorded, not sent)",
    arguments=(
        Argument("bag", None, "rosbag2 folder (or file) to play (required)"),
        _CHECKPOINT,
        Argument("rate", "1.0", "playback rate multiplier", kind="float"),
        Argument("robot", "jepa_arm", "robot preset the bag was recorded on"),
        Argument("goal_image", "", "PNG/JPEG goal image the world model plans toward; empty: wait for ~/goal_image"),
        Argument("record", "false", "record the world model's commands and status with `ros2 bag record`", kind="bool"),
        Argument("output", "replay_evaluation", "bag folder written when record:=true"),
    ),
    nodes=(
        # the bag's /clock drives the node (use_sim_time); when playback ends or fails, the graph stops
        NodeSpec("ros2bag", "ros2", "bag_play", arguments=("bag", "play", "--clock", "--rate", "{rate}", "{bag}"),
                 oneshot=True, ros_args=False, ends_graph=True),
        # The bag's recorded commands keep their topic; the model's go to evaluation/commands, not to a robot.
        NodeSpec(
            PACKAGE,
            "world_model_node",
            "world_model_node",
            param_files=(SharePath("config/nodes/world_model_node.yaml"),),
            parameters=(
                ("use_sim_time", True),
                ("checkpoint", "{checkpoint}"),
                ("robot", "{robot}"),
                ("start_enabled", True),
                ("goal_image_file", "{goal_image}"),
                ("command_topic", "evaluation/commands"),
            ),
        ),
        NodeSpec(
            "ros2bag",
            "ros2",
            "bag_record",
            arguments=("bag", "record", "-o", "{output}", "/evaluation/commands", "/world_model_node/status"),
            condition="record",
            ros_args=False,
        ),
    ),
)

GRAPHS: dict[str, Graph] = {graph.name: graph for graph in (SIM_MUJOCO, SIM_GAZEBO, ROBOT, REPLAY)}
