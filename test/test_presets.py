"""Robot presets: every one loads and validates, broken ones fail naming the field, the project's
arm agrees with its URDF and controllers.yaml, and checkpoints with other joints are refused."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import yaml

from jepa_wm.config import ConfigError, RobotConfig, check_joint_names, load_robot, package_share

PRESETS = sorted(path.stem for path in (package_share() / "config" / "robots").glob("*.yaml"))


def _urdf(hardware: str = "mock", **mappings: str) -> ET.Element:
    import xacro

    mappings = {"hardware": hardware, "controllers_file": str(package_share() / "config" / "ros2_control" / "controllers.yaml"), **mappings}
    return ET.fromstring(xacro.process_file(str(package_share() / "urdf" / "arm.urdf.xacro"), mappings=mappings).toxml())


def test_the_four_presets_exist() -> None:
    assert {"jepa_arm", "ur5e", "fr3", "so101"} <= set(PRESETS)


@pytest.mark.parametrize("name", PRESETS)
def test_preset_loads_and_validates(name: str) -> None:
    robot = load_robot(name)
    assert isinstance(robot, RobotConfig) and robot.name == name
    assert all(math.isfinite(v) for v in (*robot.joint_lower, *robot.joint_upper, *robot.velocity_limits))
    suffix = "/commands" if robot.command_interface == "position" else "/joint_trajectory"
    assert robot.command_topic.endswith(suffix), f"{name}: {robot.command_topic} does not fit {robot.command_interface}"
    assert robot.control_rate == 5.0


def test_real_arm_presets() -> None:
    ur5e, fr3, so101 = load_robot("ur5e"), load_robot("fr3"), load_robot("so101")
    assert ur5e.joint_names == tuple(f"{j}_joint" for j in ("shoulder_pan", "shoulder_lift", "elbow", "wrist_1", "wrist_2", "wrist_3"))
    assert ur5e.command_topic == "scaled_joint_trajectory_controller/joint_trajectory"
    assert fr3.joint_names == tuple(f"fr3_joint{i}" for i in range(1, 8))
    assert fr3.command_topic == "fr3_arm_controller/joint_trajectory"
    assert fr3.joint_upper[3] < 0  # FR3 joint 4 only bends one way
    assert so101.joint_names == ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll")
    assert so101.command_topic == "arm_controller/joint_trajectory"
    # commanding starts disabled on real arms
    assert not any(robot.simulated for robot in (ur5e, fr3, so101))


def test_jepa_arm_preset_matches_the_urdf_and_controllers() -> None:
    robot = load_robot("jepa_arm")
    assert robot.simulated and robot.control_rate == 5.0
    joints = [j for j in _urdf().iter("joint") if j.get("type") in ("revolute", "continuous", "prismatic")]
    assert tuple(j.get("name") for j in joints) == robot.joint_names
    for joint, lower, upper, velocity in zip(joints, robot.joint_lower, robot.joint_upper, robot.velocity_limits):
        limit = joint.find("limit")
        assert float(limit.get("lower")) == pytest.approx(lower), joint.get("name")
        assert float(limit.get("upper")) == pytest.approx(upper), joint.get("name")
        assert float(limit.get("velocity")) == pytest.approx(velocity), joint.get("name")
    controllers = yaml.safe_load((package_share() / "config" / "ros2_control" / "controllers.yaml").read_text())
    topic_controller = robot.command_topic.split("/")[0]
    assert topic_controller in controllers["controller_manager"]["ros__parameters"]
    for name in ("forward_position_controller", "joint_trajectory_controller"):
        assert tuple(controllers[name]["ros__parameters"]["joints"]) == robot.joint_names, name
    ros2_control = _urdf().find("ros2_control")
    assert tuple(j.get("name") for j in ros2_control.iter("joint")) == robot.joint_names


def _write_broken(tmp_path: Path, **changes: object) -> Path:
    data = yaml.safe_load((package_share() / "config" / "robots" / "jepa_arm.yaml").read_text())
    data.update(changes)
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"joint_lower": [-1.0] * 5}, r"joint_lower has 5 values, expected 6"),
        ({"velocity_limits": [1.0, 1.0, 1.0, 1.0, 1.0, 0.0]}, r"joint6 velocity limit 0.0"),
        ({"joint_upper": [3.0, 2.0, 2.6, 3.0, -3.0, 3.0]}, r"joint5 limits \[-2.2, -3.0\]: expected finite values"),
        ({"joint_upper": [3.0, 2.0, 2.6, 3.0, float("inf"), 3.0]}, r"joint5 limits \[-2.2, inf\]: expected finite"),
        ({"velocity_limits": [1.0, 1.0, float("inf"), 1.0, 1.0, 1.0]}, r"joint3 velocity limit inf: expected a finite"),
        ({"velocity_limits": [1.0, 1.0, float("nan"), 1.0, 1.0, 1.0]}, r"joint3 velocity limit nan: expected a finite"),
        ({"command_interface": "velocity"}, r"command_interface='velocity'"),
        ({"control_rate": "fast"}, r"control_rate='fast': expected a number"),
        ({"contol_rate": 5.0}, r"unknown keys \['contol_rate'\]"),
    ],
)
def test_broken_preset_fails_naming_the_field(tmp_path: Path, changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_robot(str(_write_broken(tmp_path, **changes)))


def test_unknown_preset_lists_the_presets() -> None:
    with pytest.raises(ConfigError, match=r"robot preset 'ur5' not found; presets are \[.*'ur5e'"):
        load_robot("ur5")


def test_checkpoint_with_other_joints_is_refused() -> None:
    robot = load_robot("ur5e")
    check_joint_names(list(robot.joint_names), robot.joint_names, "robot 'ur5e'")
    with pytest.raises(ConfigError, match=r"checkpoint joints \['joint1'.*do not match robot 'ur5e' joints \['shoulder_pan"):
        check_joint_names(load_robot("jepa_arm").joint_names, robot.joint_names, "robot 'ur5e'")
    check_joint_names(tuple(reversed(robot.joint_names)), robot.joint_names)  # joint order comes from names
    with pytest.raises(ConfigError, match=r"joints the checkpoint lacks: \['wrist_3_joint'\]; checkpoint joints the "
                                          r"robot lacks: \['gripper'\]"):
        check_joint_names([*robot.joint_names[:5], "gripper"], robot.joint_names)


def test_robot_graph_takes_topic_defaults_from_the_preset() -> None:
    from jepa_ros.graphs import GRAPHS
    from jepa_ros.runner import resolve_arguments

    graph = GRAPHS["robot"]
    values = resolve_arguments(graph, ["robot:=ur5e"])
    assert values["command_topic"] == "scaled_joint_trajectory_controller/joint_trajectory"
    assert values["enable"] == "false"  # commanding off at start on real arms
    values = resolve_arguments(graph, ["robot:=fr3", "camera_topic:=/wrist/image_raw", "command_topic:=/fr3/commands"])
    assert values["camera_topic"] == "/wrist/image_raw" and values["command_topic"] == "/fr3/commands"
    assert values["joint_states_topic"] == "joint_states"


SIMULATED = [name for name in PRESETS if load_robot(name).description]


def test_two_simulated_robots_differ_in_joints_and_kinematics() -> None:
    assert {"jepa_arm", "so101_sim"} <= set(SIMULATED)
    arm, so101 = load_robot("jepa_arm"), load_robot("so101_sim")
    assert len(arm.joint_names) != len(so101.joint_names) and not set(arm.joint_names) & set(so101.joint_names)
    assert so101.joint_names == load_robot("so101").joint_names  # the real SO-101's joints and limits
    assert so101.joint_lower == load_robot("so101").joint_lower and so101.joint_upper == load_robot("so101").joint_upper


@pytest.mark.parametrize("name", SIMULATED)
def test_a_simulated_preset_matches_its_description_and_explores_inside_its_limits(name: str) -> None:
    from jepa_wm.sim.description import load_description

    robot = load_robot(name)
    description = load_description(robot.description_path())
    assert description.joint_names == robot.joint_names  # the controller's order is the description's
    np.testing.assert_allclose(description.joint_lower, robot.joint_lower)
    np.testing.assert_allclose(description.joint_upper, robot.joint_upper)
    np.testing.assert_allclose(description.velocity_limits, robot.velocity_limits)
    lower, upper = robot.explore_box()
    assert np.all(np.array(robot.joint_lower) <= lower) and np.all(np.array(upper) <= robot.joint_upper)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"explore_upper": []}, r"explore_lower and explore_upper: give both or neither"),
        ({"explore_lower": [-1.0] * 5, "explore_upper": [1.0] * 5}, r"explore_lower has 5 values, expected 6"),
        ({"explore_lower": [-4.0] + [-1.0] * 5, "explore_upper": [1.0] * 6},
         r"joint1 exploration box \[-4.0, 1.0\]: expected lower < upper, inside the joint limits"),
        ({"readout_weights": [1, 1, 1, 1, 1, 0]}, r"readout_weights=\[1.0, 1.0, 1.0, 1.0, 1.0, 0.0\]: expected finite values > 0"),
    ],
)
def test_a_broken_exploration_box_or_readout_weights_fail_naming_the_field(tmp_path: Path, changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_robot(str(_write_broken(tmp_path, **changes)))


def test_a_preset_without_description_cannot_be_simulated() -> None:
    from jepa_wm.config import SimConfig
    from jepa_wm.sim import ArmSim

    with pytest.raises(ConfigError, match=r"robot 'so101' names no description \(URDF or xacro\): it cannot be simulated"):
        ArmSim(SimConfig(robot="so101"))
