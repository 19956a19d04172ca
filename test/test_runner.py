"""`jepa-ros up`: argument handling, command lines, ordering, shutdown escalation, and the real
sim_mujoco graph passing messages over DDS and stopping with no process left behind."""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from jepa_ros.graphs import GRAPHS, Argument, Graph, NodeSpec, SharePath
from jepa_ros.runner import GraphRunner, build_commands, graph_environment, resolve_arguments, start_graph
from jepa_wm.config import ConfigError, package_share


def test_arguments_defaults_overrides_and_errors() -> None:
    graph = GRAPHS["sim_mujoco"]
    values = resolve_arguments(graph, ["explore:=true", "image_size:=96"])
    assert values["explore"] == "true" and values["image_size"] == "96" and values["use_sim_time"] == "true"
    with pytest.raises(ConfigError, match=r"no argument 'imagesize'.*image_size"):
        resolve_arguments(graph, ["imagesize:=96"])
    with pytest.raises(ConfigError, match=r"explore:='yes': expected one of \['true', 'false'\]"):
        resolve_arguments(graph, ["explore:=yes"])
    with pytest.raises(ConfigError, match=r"'image_size=96': expected name:=value"):
        resolve_arguments(graph, ["image_size=96"])


def test_sim_mujoco_command_lines(tmp_path: Path) -> None:
    graph = GRAPHS["sim_mujoco"]
    commands = build_commands(graph, resolve_arguments(graph, ["image_size:=96", "checkpoint:=/ckpt"]), tmp_path)
    assert [c.name for c in commands] == ["sim_node", "world_model_node"]  # explore_node only with explore:=true
    sim, model = commands
    assert Path(sim.argv[0]).name == "sim_node"
    ros_args = sim.argv[sim.argv.index("--ros-args") :]
    assert ros_args[:3] == ["--ros-args", "-r", "__node:=sim_node"]
    assert ros_args[ros_args.index("--params-file") + 1] == str((package_share() / "config" / "nodes" / "sim_node.yaml").resolve())
    assert "image_size:=96" in ros_args and "use_sim_time:=false" in ros_args  # sim_node is the clock
    assert "use_sim_time:=true" in model.argv and "start_enabled:=false" in model.argv  # typed: YAML bools
    assert 'checkpoint:="/ckpt"' in model.argv  # text arguments are quoted, so they stay strings
    with_explore = build_commands(graph, resolve_arguments(graph, ["explore:=true"]), tmp_path)
    assert [c.name for c in with_explore][-1] == "explore_node"


def test_text_parameters_stay_strings_when_empty_or_yaml_like(tmp_path: Path) -> None:
    graph = GRAPHS["sim_mujoco"]
    (_, model) = build_commands(graph, resolve_arguments(graph, []), tmp_path)
    assert 'checkpoint:=""' in model.argv  # a bare `-p checkpoint:=` is rejected by rcl
    (_, model) = build_commands(graph, resolve_arguments(graph, ["checkpoint:=true"]), tmp_path)
    assert 'checkpoint:="true"' in model.argv  # a folder called "true", not a bool


def test_typed_arguments_are_checked() -> None:
    graph = GRAPHS["sim_mujoco"]
    with pytest.raises(ConfigError, match=r"image_size:='big': expected an integer"):
        resolve_arguments(graph, ["image_size:=big"])
    with pytest.raises(ConfigError, match=r"real_time_factor:='fast': expected a number"):
        resolve_arguments(graph, ["real_time_factor:=fast"])
    assert resolve_arguments(graph, ["real_time_factor:=0"])["real_time_factor"] == "0"


def test_missing_executables_are_named_together(tmp_path: Path) -> None:
    graph = GRAPHS["sim_gazebo"]
    values = resolve_arguments(graph, [])
    if shutil.which("gz") or os.environ.get("AMENT_PREFIX_PATH"):
        pytest.skip("a ROS 2 / Gazebo install is here: the sim_gazebo executables may all be found")
    with pytest.raises(ConfigError, match=r"(?s)cannot start here.*robot_state_publisher.*parameter_bridge"):
        build_commands(graph, values, tmp_path)
    dry = build_commands(graph, values, tmp_path, resolve=False)
    description = next(c for c in dry if c.name == "robot_state_publisher")
    parameter_file = Path(description.argv[description.argv.index("--params-file") + 1])
    assert "gz_ros2_control-system" in parameter_file.read_text()  # the xacro robot_description, rendered


def test_remaps_param_files_and_parameters_in_ros_args_order(tmp_path: Path) -> None:
    graph = Graph(
        "remapped",
        "one node with every kind of option",
        (Argument("camera", "wrist", "camera name"), Argument("rate", "2.5", "rate", kind="float")),
        (
            NodeSpec(
                "jepa_ros",
                "sim_node",
                "renamed_sim",
                param_files=(SharePath("config/nodes/sim_node.yaml"),),
                parameters=(("camera_rate", "{rate}"), ("camera_frame", "{camera}_optical")),
                remaps=(("camera/image_raw", "/{camera}/image_raw"),),
            ),
        ),
    )
    (command,) = build_commands(graph, resolve_arguments(graph, ["camera:=left"]), tmp_path)
    ros_args = command.argv[command.argv.index("--ros-args") :]
    assert ros_args == [
        "--ros-args",
        "-r",
        "__node:=renamed_sim",
        "--params-file",
        str((package_share() / "config" / "nodes" / "sim_node.yaml").resolve()),
        "-r",
        "camera/image_raw:=/left/image_raw",
        "-p",
        "camera_rate:=2.5",
        "-p",
        'camera_frame:="left_optical"',
    ]


def test_graph_refuses_unknown_placeholders_and_after_targets() -> None:
    with pytest.raises(AssertionError, match=r"uses unknown argument \{cam\}"):
        Graph("bad", "x", (), (NodeSpec("p", "e", "n", remaps=(("a", "{cam}"),)),))
    with pytest.raises(AssertionError, match=r"after unknown 'ghost'"):
        Graph("bad", "x", (), (NodeSpec("p", "e", "n", after="ghost"),))


def _shell_graph(*nodes: NodeSpec) -> Graph:
    return Graph("shell", "test graph of shell commands", (Argument("unused", "", "nothing"),), nodes)


def _sh(name: str, script: str, **kwargs) -> NodeSpec:
    return NodeSpec("", "sh", name, arguments=("-c", script), ros_args=False, **kwargs)


def _run_until_done(runner: GraphRunner, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not runner.step():
            return True
        time.sleep(0.05)
    return False


def test_after_ordering_and_failure_stop_everything(tmp_path: Path) -> None:
    marker = tmp_path / "order.txt"
    graph = _shell_graph(
        _sh("long", "sleep 30"),
        _sh("first", f"sleep 0.3; echo first >> {marker}", oneshot=True),
        _sh("second", f"echo second >> {marker}", after="first", oneshot=True),
        _sh("broken", "sleep 0.6; exit 3", after="second", oneshot=True),
        _sh("never", f"echo never >> {marker}", after="broken"),
    )
    output = io.StringIO()
    runner = GraphRunner(build_commands(graph, {"unused": ""}, tmp_path), graph_environment(graph, {}), output)
    try:
        assert _run_until_done(runner, timeout=10.0), "the runner did not notice the failing node"
    finally:
        runner.stop(sigint_timeout=2.0, sigterm_timeout=2.0)
    assert runner.failure == "broken exited with code 3"
    assert marker.read_text().split() == ["first", "second"]
    assert all(_gone(pid) for pid in runner.pids())


def test_a_process_that_ends_the_graph_stops_it_when_it_exits(tmp_path: Path) -> None:
    # a replay whose playback ended (or failed) kept world_model_node running forever
    for code, failure in ((0, None), (4, "playback exited with code 4")):
        graph = _shell_graph(_sh("long", "sleep 30"), _sh("playback", f"sleep 0.3; exit {code}", oneshot=True,
                                                           ends_graph=True))
        runner = GraphRunner(build_commands(graph, {"unused": ""}, tmp_path), graph_environment(graph, {}), io.StringIO())
        try:
            assert _run_until_done(runner, timeout=10.0), "the graph kept running after playback ended"
        finally:
            runner.stop(sigint_timeout=2.0, sigterm_timeout=2.0)
        assert runner.failure == failure
    replay = next(node for node in GRAPHS["replay"].nodes if node.name == "bag_play")
    assert replay.ends_graph and "--clock" in replay.arguments


def test_stop_escalates_to_sigterm_and_sigkill_and_reaches_grandchildren(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    graph = _shell_graph(
        # ignores SIGINT and SIGTERM; its background grandchild shares the process group
        _sh("stubborn", f"trap '' INT TERM; sleep 60 & echo $! > {pid_file}; while true; do sleep 0.1; done"),
        _sh("polite", "sleep 60"),
    )
    output = io.StringIO()
    runner = GraphRunner(build_commands(graph, {"unused": ""}, tmp_path), graph_environment(graph, {}), output)
    runner.step()
    deadline = time.monotonic() + 5.0
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    grandchild = int(pid_file.read_text())
    started = time.monotonic()
    runner.stop(sigint_timeout=0.5, sigterm_timeout=0.5)
    assert time.monotonic() - started < 5.0
    assert "sending SIGTERM" in output.getvalue() and "sending SIGKILL" in output.getvalue()
    assert all(_gone(pid) for pid in [*runner.pids(), grandchild])


def test_start_graph_context_stops_everything_on_exit(tmp_path: Path) -> None:
    graph = _shell_graph(_sh("one", "sleep 60"), _sh("two", "sleep 60"))
    output = io.StringIO()
    with start_graph(graph, output=output, sigint_timeout=10.0) as runner:
        deadline = time.monotonic() + 5.0
        while len(runner.pids()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        pids = runner.pids()
        assert len(pids) == 2 and not any(_gone(pid) for pid in pids)
    assert all(_gone(pid) for pid in pids)
    assert "sending SIGTERM" not in output.getvalue()


def test_nodes_stop_on_sigint_even_when_the_runner_ignores_it(tmp_path: Path) -> None:
    # A script's background job (`jepa-ros up ... &`) starts with SIGINT ignored; nodes must not inherit that.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        graph = _shell_graph(_sh("one", "exec sleep 60"))
        output = io.StringIO()
        with start_graph(graph, output=output, sigint_timeout=10.0) as runner:
            deadline = time.monotonic() + 5.0
            while not runner.pids() and time.monotonic() < deadline:
                time.sleep(0.05)
            pids = runner.pids()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert pids and all(_gone(pid) for pid in pids)
    assert "sending SIGTERM" not in output.getvalue()


def test_nodes_die_with_a_killed_runner(tmp_path: Path) -> None:
    """Even a runner killed by SIGKILL (no chance to clean up) leaves no node behind."""
    pid_file = tmp_path / "pids"
    script = f"""
import time
from pathlib import Path
from jepa_ros.graphs import Argument, Graph, NodeSpec
from jepa_ros.runner import start_graph
graph = Graph("shell", "test", (Argument("unused", "", "nothing"),), (NodeSpec("", "sleep", "sleeper", arguments=("60",), ros_args=False),))
with start_graph(graph) as runner:
    while not runner.pids():
        time.sleep(0.05)
    Path({str(pid_file)!r}).write_text(" ".join(map(str, runner.pids())))
    time.sleep(60)
"""
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20.0
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        (child,) = map(int, pid_file.read_text().split())
        assert not _gone(child)
    finally:
        parent.kill()
        parent.wait(timeout=10.0)
    deadline = time.monotonic() + 5.0
    while not _gone(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(child), f"sleep (pid {child}) outlived its killed runner"


def test_hurry_skips_the_wait(tmp_path: Path) -> None:
    """A second Ctrl-C while stopping escalates at once instead of waiting out the deadline."""
    graph = _shell_graph(_sh("stubborn", "trap '' INT; while true; do sleep 0.1; done"))
    output = io.StringIO()
    runner = GraphRunner(build_commands(graph, {"unused": ""}, tmp_path), graph_environment(graph, {}), output)
    runner.step()
    time.sleep(0.3)
    threading.Timer(0.5, runner.hurry.set).start()
    started = time.monotonic()
    runner.stop(sigint_timeout=30.0, sigterm_timeout=30.0)
    assert time.monotonic() - started < 10.0
    assert "sending SIGTERM" in output.getvalue()
    assert all(_gone(pid) for pid in runner.pids())


def _gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (a zombie waiting for its reaper counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"


def _tiny_checkpoint(folder: Path) -> Path:
    """A small untrained world model for the jepa_arm joints (world_model_node loads it fast)."""
    from jepa_wm.config import EncoderConfig, PredictorConfig, WorldModelConfig, load_robot
    from jepa_wm.models import WorldModel, save_checkpoint

    config = WorldModelConfig(
        encoder=EncoderConfig(image_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2),
        predictor=PredictorConfig(embed_dim=32, depth=1, num_heads=2, latent_grid=2),
        joint_names=load_robot("jepa_arm").joint_names,
    )
    return save_checkpoint(WorldModel(config), folder)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_up_sim_mujoco_passes_messages_and_stops_cleanly(tmp_path: Path, stop_signal: signal.Signals) -> None:
    rclpy = pytest.importorskip("rclpy")
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image, JointState

    checkpoint = _tiny_checkpoint(tmp_path / "checkpoint")
    command = [sys.executable, "-m", "jepa_ros.cli", "up", "sim_mujoco", f"checkpoint:={checkpoint}", "--sigint-timeout", "10"]
    runner = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ))
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(runner.stdout), daemon=True)
    reader.start()

    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("test_runner_listener", context=context)
    received = {"joint_states": 0, "image": 0, "status": 0}

    def count(key: str):
        return lambda _msg: received.__setitem__(key, received[key] + 1)

    node.create_subscription(JointState, "joint_states", count("joint_states"), qos_profile_sensor_data)
    node.create_subscription(Image, "camera/image_raw", count("image"), qos_profile_sensor_data)
    node.create_subscription(DiagnosticArray, "/world_model_node/status", count("status"), 10)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        deadline = time.monotonic() + 120.0
        while time.monotonic() < deadline and min(received.values()) < 3 and runner.poll() is None:
            executor.spin_once(timeout_sec=0.1)
        assert runner.poll() is None, "the graph stopped on its own:\n" + "".join(lines[-30:])
        assert min(received.values()) >= 3, f"messages received {received}; runner output:\n" + "".join(lines[-30:])
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)
        runner.send_signal(stop_signal)  # SIGINT: as Ctrl-C in a terminal
        code = runner.wait(timeout=40.0)
        reader.join(timeout=5.0)
    output = "".join(lines)
    assert code == 0, output[-3000:]
    pids = [int(pid) for pid in re.findall(r"\[runner\] started \S+ pid=(\d+)", output)]
    assert len(pids) == 2, output[-3000:]
    assert all(_gone(pid) for pid in pids), f"left behind: {[p for p in pids if not _gone(p)]}"
    assert re.search(r"^\[sim_node\] ", output, re.MULTILINE) and re.search(r"^\[world_model_node\] ", output, re.MULTILINE)
    assert "sending SIGTERM" not in output, output[-3000:]  # both nodes stop on SIGINT alone


def test_every_share_path_of_every_graph_exists() -> None:
    for graph in GRAPHS.values():
        paths = [a.default for a in graph.arguments if isinstance(a.default, SharePath)]
        for node in graph.nodes:
            paths += [path for path in node.param_files if isinstance(path, SharePath)]
            paths += [v for _, v in node.parameters if isinstance(v, SharePath)]
            paths += [v for v in node.arguments if isinstance(v, SharePath)]
        for path in paths:
            assert (package_share() / path.path).is_file(), f"graph {graph.name}: {path.path} does not exist"
