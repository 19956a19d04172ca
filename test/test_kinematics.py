"""Kinematics (pinocchio) on the presets' own descriptions: IK round trips inside the joint limits."""

import numpy as np
import pytest

from jepa_wm.config import load_robot, package_share
from jepa_wm.kinematics import ArmKinematics, KinematicsError
from jepa_wm.sim.description import render_xacro

DESCRIBED = sorted(p.stem for p in (package_share() / "config" / "robots").glob("*.yaml") if load_robot(p.stem).description)


def kinematics(name: str) -> tuple[ArmKinematics, np.ndarray, np.ndarray]:
    robot = load_robot(name)
    return (ArmKinematics(render_xacro(robot.description_path()), robot.joint_names),
            np.array(robot.joint_lower), np.array(robot.joint_upper))


def test_every_simulated_preset_has_a_description():
    assert {"jepa_arm", "so101_sim"} <= set(DESCRIBED)


@pytest.mark.parametrize("name", DESCRIBED)
def test_inverse_kinematics_returns_to_poses_the_arm_can_take_within_its_limits(name):
    kin, lower, upper = kinematics(name)
    rng = np.random.default_rng(0)
    for _ in range(30):
        q = rng.uniform(lower, upper)
        start = np.clip(q + rng.normal(0, 0.2, len(q)), lower, upper)
        result = kin.reach(kin.pose(q), start, lower, upper)
        assert np.all(result.joint_positions >= lower) and np.all(result.joint_positions <= upper)
        assert result.position_error_m < 1e-4 and result.rotation_error_rad < 1e-3
        assert np.allclose(kin.pose(result.joint_positions)[:3], kin.pose(q)[:3], atol=1e-4)


def test_a_pose_out_of_reach_is_approached_and_its_error_reported():
    kin, lower, upper = kinematics("jepa_arm")
    home = (lower + upper) / 2
    far = kin.pose(home) + np.array([5.0, 0, 0, 0, 0, 0])  # 5 m away
    result = kin.solve(far, home, lower, upper)
    assert result.position_error_m > 4.0
    assert np.all(result.joint_positions >= lower) and np.all(result.joint_positions <= upper)


def test_a_description_without_the_joints_or_link_is_refused_by_name():
    robot = load_robot("jepa_arm")
    urdf = render_xacro(robot.description_path())
    with pytest.raises(KinematicsError, match=r"has no joint \['elbow'\]"):
        ArmKinematics(urdf, ("elbow",))
    with pytest.raises(KinematicsError, match="has no link 'flange9'"):
        ArmKinematics(urdf, robot.joint_names, "flange9")
    kin, lower, upper = kinematics("jepa_arm")
    with pytest.raises(KinematicsError, match="expected 6 finite values"):
        kin.solve(np.array([0.3, 0, np.nan, 0, 0, 0]), lower, lower, upper)


@pytest.mark.parametrize(("name", "joints", "tool"), [
    ("ur5e", [0, 0, 0, 0, 0, 0], [-0.8172, -0.2329, 0.0628]),  # a2 + a3, -(d4 + d6), d1 - d5
    ("fr3", [0, -np.pi / 4, 0, -3 * np.pi / 4, 0, np.pi / 2, np.pi / 4], [0.3069, 0.0, 0.4869]),  # Franka's "ready"
])
def test_the_described_arms_put_their_tool_where_their_published_kinematics_do(name, joints, tool):
    kin, _, _ = kinematics(name)
    np.testing.assert_allclose(kin.pose(np.array(joints))[:3], tool, atol=2e-4)


def test_a_plain_urdf_description_is_read_as_it_is(tmp_path):
    import dataclasses

    from jepa_wm.config import load_robot as load

    robot = load("jepa_arm")
    (tmp_path / "arm.urdf").write_text(render_xacro(robot.description_path()))
    plain = ArmKinematics.of_robot(dataclasses.replace(robot, description=str(tmp_path / "arm.urdf")))
    home = (np.array(robot.joint_lower) + np.array(robot.joint_upper)) / 2
    np.testing.assert_allclose(plain.pose(home), kinematics("jepa_arm")[0].pose(home))
    with pytest.raises(KinematicsError, match="does not exist"):
        ArmKinematics.of_robot(dataclasses.replace(robot, description=str(tmp_path / "gone.urdf")))
