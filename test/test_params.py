"""ROS parameters <-> config dataclasses on a real rclpy node (no DDS traffic needed)."""

import subprocess
import sys

import pytest
from rclpy.node import Node
from rclpy.parameter import Parameter

from jepa_ros.params import check_override_types, field_comments, load_config
from jepa_wm.config import ConfigError, PlannerConfig, RobotConfig, SimConfig, WorldModelConfig
from ros_processes import ProbeGraph


@pytest.fixture
def make_node():
    """Nodes with parameter overrides, in one private rclpy context."""
    graph = ProbeGraph()
    nodes = []

    def make(**overrides):
        overrides = [Parameter(name, value=value) for name, value in overrides.items()]
        nodes.append(Node(f"params_probe_{len(nodes)}", context=graph.context, parameter_overrides=overrides))
        return nodes[-1]

    yield make
    for node in nodes:
        node.destroy_node()
    graph.close()


def test_defaults_and_overrides_fill_the_dataclass(make_node):
    node = make_node(image_size=128, control_period=1)  # an integer for a float field is accepted
    config = load_config(node, SimConfig)
    assert config == SimConfig(image_size=128, control_period=1.0)
    descriptor = node.describe_parameter("control_period")
    assert "seconds of simulated time per control step" in descriptor.description


def test_nested_dataclasses_and_lists(make_node):
    node = make_node(**{"encoder.depth": 2, "joint_names": ["a", "b"]})
    config = load_config(node, WorldModelConfig)
    assert config.encoder.depth == 2 and config.joint_names == ("a", "b")
    assert node.get_parameter("predictor.latent_grid").value == 4


def test_bad_values_fail_naming_the_parameter(make_node):
    with pytest.raises(ConfigError, match=r"method='foo': expected one of \['cem', 'mppi'\]"):
        load_config(make_node(method="foo"), PlannerConfig)
    with pytest.raises(ConfigError, match="parameter image_size.*expected int"):
        load_config(make_node(image_size="large"), SimConfig)
    with pytest.raises(ConfigError, match="image_size=8: expected 64..256"):
        load_config(make_node(image_size=8), SimConfig)
    with pytest.raises(ConfigError, match="parameter robot.name is required"):
        load_config(make_node(), RobotConfig, prefix="robot.")


def test_field_comments_are_read_from_the_source():
    assert field_comments(SimConfig)["urdf"].startswith("empty: the robot preset's description")


def test_a_wrong_typed_override_after_a_params_file_is_refused_not_dropped(make_node, tmp_path):
    # rcl keeps the file's value when a later -p has another type: the node started with horizon 4, silently
    node = make_node()
    load_config(node, PlannerConfig, "planner.")
    params = tmp_path / "params.yaml"
    params.write_text("/**:\n  ros__parameters:\n    planner.horizon: 4\n    planner.temperature: 2\n")
    argv = ["node", "--ros-args", "--params-file", str(params), "-p", "planner.horizon:=abc"]
    with pytest.raises(ConfigError, match=r"planner.horizon='abc' \(-p planner.horizon:=abc\) is string; expected integer"):
        check_override_types(node, argv)
    argv[-1] = "planner.num_samples:=1.5"
    with pytest.raises(ConfigError, match=r"planner.num_samples=1.5 .* is double; expected integer"):
        check_override_types(node, argv)
    argv[-1] = f"{node.get_name()}:planner.method:=3"  # node-targeted
    with pytest.raises(ConfigError, match=r"planner.method=3 .* is integer; expected string"):
        check_override_types(node, argv)
    other = tmp_path / "other.yaml"
    other.write_text("some_other_node:\n  ros__parameters:\n    planner.horizon: abc\n")
    check_override_types(node, ["node", "--ros-args", "--params-file", str(other), "-p", "planner.horizon:=5",
                                "-p", "planner.temperature:=3", "-p", "unknown:=x"])  # all fine: ints for floats too
    nested = tmp_path / "nested.yaml"
    nested.write_text(f"{node.get_name()}:\n  ros__parameters:\n    planner:\n      horizon: [1, 2]\n")
    with pytest.raises(ConfigError, match=rf"planner.horizon=\[1, 2\] \(--params-file {nested}\) is integer_array"):
        check_override_types(node, ["node", "--ros-args", "--params-file", str(nested)])


def test_world_model_node_exits_naming_a_wrong_typed_parameter(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("/**:\n  ros__parameters:\n    torch_threads: 1\n")
    process = subprocess.run(
        [sys.executable, "-m", "jepa_ros.nodes.world_model_node", "--ros-args", "--params-file", str(params),
         "-p", "torch_threads:=1.5"], capture_output=True, text=True, timeout=120)
    assert process.returncode == 2, process.stderr
    assert "world_model_node: parameter torch_threads=1.5 (-p torch_threads:=1.5) is double; expected integer" in process.stderr
