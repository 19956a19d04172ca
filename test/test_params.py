"""ROS parameters <-> config dataclasses on a real rclpy node (no DDS traffic needed)."""

import pytest
from rclpy.node import Node
from rclpy.parameter import Parameter

from jepa_ros.params import field_comments, load_config
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
    assert field_comments(SimConfig)["urdf"].startswith("empty: the packaged")
