"""MuJoCo arm simulation built from the URDF: limits, determinism, tracking, camera, exploration."""

import re
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from jepa_wm.config import SimConfig
from jepa_wm.sim import ArmSim, DescriptionError, RandomWalkExplorer, load_description


@pytest.fixture(scope="module")
def sim():
    with ArmSim(SimConfig(image_size=64, seed=0)) as arm:
        yield arm


def drive(arm: ArmSim, seed: int, steps: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Random-walk the arm for ``steps`` control periods; return joint positions and images."""
    arm.reset(seed=seed)
    explorer = RandomWalkExplorer(arm.explore_lower, arm.explore_upper, max_delta=0.15, smoothing=0.7, seed=seed)
    positions, images = [], []
    for _ in range(steps):
        arm.set_target(arm.joint_positions + explorer.next_delta(arm.joint_positions))
        arm.step()
        positions.append(arm.joint_positions)
        images.append(arm.render())
    return np.array(positions), images


def test_model_has_the_urdf_joints_and_limits(sim):
    description = load_description()
    assert sim.joint_names == ("joint1", "joint2", "joint3", "joint4", "joint5", "joint6")
    assert sim.joint_names == description.joint_names
    np.testing.assert_array_equal(sim.joint_lower, description.joint_lower)
    np.testing.assert_array_equal(sim.joint_upper, description.joint_upper)
    np.testing.assert_array_equal(sim.velocity_limits, description.velocity_limits)
    for i, name in enumerate(sim.joint_names):
        joint = sim.model.joint(name)
        assert joint.range.tolist() == pytest.approx([sim.joint_lower[i], sim.joint_upper[i]])
    assert np.all(sim.joint_lower <= sim.explore_lower) and np.all(sim.explore_upper <= sim.joint_upper)


def test_camera_matches_the_urdf_camera_pose(sim):
    root = ET.fromstring(load_description().urdf_xml)
    xyz = [float(v) for v in root.find("joint[@name='camera_joint']/origin").get("xyz").split()]
    camera = sim.model.camera(sim.config.camera_name).id
    np.testing.assert_allclose(sim.data.cam_xpos[camera], xyz, atol=1e-9)
    xacro_text = (Path(__file__).resolve().parents[1] / "urdf" / "arm.urdf.xacro").read_text()
    aim = [float(v) for v in re.search(r'target="([^"]+)"', xacro_text).group(1).split()]
    forward = -sim.data.cam_xmat[camera].reshape(3, 3)[:, 2]  # MuJoCo cameras look along -z
    to_aim = np.array(aim) - np.array(xyz)
    assert forward @ to_aim / np.linalg.norm(to_aim) > 0.9999
    # the aim point lands in the image centre
    np.testing.assert_allclose(sim.project(np.array(aim))[0], [32, 32], atol=1e-6)
    fov = float(root.findtext("gazebo/sensor[@name='workspace_camera']/camera/horizontal_fov"))
    intrinsics = sim.camera_intrinsics()
    assert intrinsics["width"] == intrinsics["height"] == 64 and intrinsics["cx"] == 32
    assert intrinsics["fx"] == pytest.approx(32 / np.tan(fov / 2))


def test_seeded_simulation_is_deterministic():
    with ArmSim(SimConfig(image_size=64, seed=3)) as first, ArmSim(SimConfig(image_size=64, seed=3)) as second:
        positions_a, images_a = drive(first, seed=5, steps=15)
        positions_b, images_b = drive(second, seed=5, steps=15)
        np.testing.assert_array_equal(positions_a, positions_b)
        assert not np.array_equal(images_a[0], images_a[-1])  # the walk moved the arm in view
        for image_a, image_b in zip(images_a, images_b):
            np.testing.assert_array_equal(image_a, image_b)
        # replaying on the same sim after reset gives the same trajectory again
        positions_c, _ = drive(first, seed=5, steps=15)
        np.testing.assert_array_equal(positions_a, positions_c)
        positions_d, _ = drive(first, seed=6, steps=15)
        assert not np.allclose(positions_a, positions_d)


def test_scene_objects_follow_the_config_seed():
    with ArmSim(SimConfig(image_size=64, seed=0, num_objects=2)) as one, ArmSim(SimConfig(image_size=64, seed=1, num_objects=2)) as two:
        assert not np.array_equal(one.render(), two.render())
        assert one.model.geom("object1") is not None
        with pytest.raises(KeyError):
            one.model.geom("object2")


def test_commanded_target_is_reached_within_velocity_limits(sim):
    sim.reset()
    assert sim.time == 0.0
    np.testing.assert_allclose(sim.joint_positions, sim.home_joint_positions)
    rng = np.random.default_rng(1)
    for _ in range(3):
        goal = sim.sample_joint_positions(rng)
        applied = sim.set_target(goal)
        np.testing.assert_array_equal(applied, goal)
        fastest = 0.0
        for _ in range(40):
            sim.step(0.05)
            fastest = max(fastest, float(np.max(np.abs(sim.joint_velocities) / sim.velocity_limits)))
        assert fastest <= 1.0
        np.testing.assert_allclose(sim.joint_positions, goal, atol=1e-3)
    assert sim.time == pytest.approx(3 * 40 * 0.05)


def test_out_of_limit_target_is_clamped(sim):
    sim.reset()
    target = sim.home_joint_positions.copy()
    target[0], target[4] = 10.0, -10.0  # far past joint1's upper and joint5's lower limit
    applied = sim.set_target(target)
    expected = sim.home_joint_positions.copy()
    expected[0], expected[4] = sim.joint_upper[0], sim.joint_lower[4]
    np.testing.assert_array_equal(applied, expected)
    assert len(sim.last_clamp_warnings) == 2
    assert "joint1" in sim.last_clamp_warnings[0] and "joint5" in sim.last_clamp_warnings[1]
    for _ in range(40):
        sim.step()
        assert np.all(sim.joint_positions <= sim.joint_upper + 1e-3)
        assert np.all(sim.joint_positions >= sim.joint_lower - 1e-3)
    np.testing.assert_allclose(sim.joint_positions, expected, atol=1e-3)


def test_each_joint_driven_between_its_limits_stays_inside_them_and_below_its_velocity_limit(sim):
    # checked at every 2 ms physics step; collisions (every joint at a limit at once) are not covered
    # here: the arm then hits the table and impacts pass both limits (benchmarks/sim.py reports them)
    for joint in range(len(sim.joint_names)):
        sim.reset()
        for limit in (sim.joint_upper, sim.joint_lower):
            target = sim.home_joint_positions.copy()
            target[joint] = limit[joint]
            sim.set_target(target)
            for _ in range(600):
                sim.step(sim.config.physics_timestep)
                assert np.all(np.abs(sim.joint_velocities) <= sim.velocity_limits), sim.joint_names[joint]
                assert np.all(sim.joint_positions <= sim.joint_upper) and np.all(sim.joint_positions >= sim.joint_lower)


def test_joint_limits_are_stiff_constraints(sim):
    ids = [sim.model.joint(name).id for name in sim.joint_names]
    assert np.all(sim.model.jnt_limited[ids]) and np.all(sim.model.jnt_solref[ids, 0] == 2 * sim.config.physics_timestep)


def test_images_change_when_the_arm_moves(sim):
    sim.reset()
    before = sim.render()
    assert before.shape == (64, 64, 3) and before.dtype == np.uint8
    tool_before = sim.end_effector_position()
    sim.set_target(sim.home_joint_positions + np.array([0.5, -0.3, 0.3, 0.0, 0.3, 0.0]))
    sim.step(1.0)
    after = sim.render()
    changed = np.any(np.abs(after.astype(int) - before.astype(int)) > 30, axis=2).mean()
    assert changed > 0.02  # the arm covers a visible part of the 64 px image
    assert np.linalg.norm(sim.end_effector_position() - tool_before) > 0.1


def test_sampled_poses_are_above_the_table_and_in_view(sim):
    rng = np.random.default_rng(2)
    poses = np.array([sim.sample_joint_positions(rng) for _ in range(30)])
    assert np.all(poses >= sim.explore_lower) and np.all(poses <= sim.explore_upper)
    again = np.array([sim.sample_joint_positions(np.random.default_rng(2)) for _ in range(1)])
    np.testing.assert_array_equal(again[0], poses[0])
    for pose in poses[:10]:
        sim.reset(joint_positions=pose)
        u, v = sim.project(sim.end_effector_position())[0]
        assert 0 <= u < 64 and 0 <= v < 64
        assert sim.end_effector_position()[2] > 0.47  # table top at 0.40 m, objects at most 6 cm tall


def test_render_sizes_and_speed():
    with ArmSim(SimConfig(image_size=128)) as big:
        assert big.render().shape == (128, 128, 3)
    with ArmSim(SimConfig(image_size=64)) as small:
        small.render()  # the first frame compiles shaders
        # CPU time of this process, so that other processes on a shared machine do not make it flaky
        start = time.process_time()
        for _ in range(20):
            small.set_target(small.joint_positions + 0.05)
            small.step()
            small.render()
        elapsed = time.process_time() - start
        assert elapsed < 20 * small.config.control_period / 5  # at least 5x real time with a frame per step


def _roll_sweep_roughness(arm: ArmSim, starts: list[np.ndarray], step: float = 0.04) -> float:
    """Pixel change at the middle of five poses the cubic through the other four misses, over the step's change."""
    missed = moved = 0.0
    for start in starts:
        images = []
        for t in range(5):
            pose = start.copy()
            pose[5] += t * step  # the tool roll: its fingers move a fraction of a pixel per step
            arm.reset(joint_positions=pose)
            images.append(arm.render().astype(np.float64))
        cubic = (-images[0] + 4 * images[1] + 4 * images[3] - images[4]) / 6  # Lagrange weights at the middle
        missed += np.abs(cubic - images[2]).sum()
        moved += np.abs(images[2] - images[1]).sum()
    return missed / moved


def test_supersampled_camera_changes_smoothly_with_sub_pixel_motion():
    rng = np.random.default_rng(5)
    with ArmSim(SimConfig(image_size=128)) as plain, ArmSim(SimConfig(image_size=128, supersampling=2)) as averaged:
        starts = [plain.sample_joint_positions(rng) for _ in range(4)]
        image = averaged.render()
        assert image.shape == (128, 128, 3) and image.dtype == np.uint8
        plain_roughness, averaged_roughness = _roll_sweep_roughness(plain, starts), _roll_sweep_roughness(averaged, starts)
    assert averaged_roughness < 0.75 * plain_roughness, (plain_roughness, averaged_roughness)
    with pytest.raises(ValueError, match="sim.supersampling=5: expected 1..4"):
        SimConfig(supersampling=5)


def test_random_walk_stays_in_its_box_and_is_smooth():
    lower, upper = np.array([-1.0, 0.0, -0.5]), np.array([1.0, 0.5, 0.5])
    explorer = RandomWalkExplorer(lower, upper, max_delta=0.1, smoothing=0.8, seed=0)
    position = np.zeros(3) + np.array([0.0, 0.25, 0.0])
    deltas = []
    for _ in range(2000):
        delta = explorer.next_delta(position)
        assert np.all(np.abs(delta) <= 0.1 + 1e-12)
        position = position + delta
        assert np.all(position >= lower - 1e-12) and np.all(position <= upper + 1e-12)
        deltas.append(delta)
    deltas = np.array(deltas)
    # smooth: consecutive deltas change much less than independent draws would
    assert np.abs(np.diff(deltas, axis=0)).mean() < 0.5 * np.abs(deltas).mean()
    assert np.all(deltas.std(axis=0) > 0.01)  # and it does move every joint
    same = RandomWalkExplorer(lower, upper, max_delta=0.1, smoothing=0.8, seed=0)
    np.testing.assert_array_equal(same.next_delta(np.array([0.0, 0.25, 0.0])), deltas[0])


def test_random_walk_from_outside_the_box_heads_back_in():
    explorer = RandomWalkExplorer(np.zeros(2), np.ones(2), max_delta=0.2, smoothing=0.5, seed=1)
    delta = explorer.next_delta(np.array([3.0, -1.0]))
    np.testing.assert_allclose(delta, [-0.2, 0.2])
    with pytest.raises(ValueError, match="smoothing=1.0"):
        RandomWalkExplorer(np.zeros(2), np.ones(2), max_delta=0.2, smoothing=1.0, seed=1)
    with pytest.raises(ValueError, match=r"shape \[3\], expected \[2\]"):
        explorer.next_delta(np.zeros(3))


def test_missing_or_broken_urdf_fails_at_start(tmp_path):
    with pytest.raises(DescriptionError, match="missing.urdf.xacro: no such file"):
        ArmSim(SimConfig(urdf=str(tmp_path / "missing.urdf.xacro")))
    broken = tmp_path / "broken.urdf.xacro"
    broken.write_text("<robot xmlns:xacro='http://www.ros.org/wiki/xacro'><xacro:include filename='gone.xacro'/></robot>")
    with pytest.raises(DescriptionError, match="broken.urdf.xacro does not render with xacro"):
        ArmSim(SimConfig(urdf=str(broken)))


@pytest.mark.parametrize("robot", ["so101_sim", "fr3_sim"])
def test_every_joint_of_the_other_simulated_arms_follows_its_commands(robot):
    with ArmSim(SimConfig(robot=robot, image_size=64)) as arm:
        start = arm.home_joint_positions.copy()
        arm.reset(joint_positions=start)
        arm.set_target(start + 0.1)
        arm.step(0.4)
        np.testing.assert_allclose(arm.joint_positions - start, 0.1, atol=0.01)


def test_links_that_touch_at_home_are_refused_by_name(tmp_path):
    """Touching links drag on each other in every move (a too-long base column on the FR3 held its
    first two joints to a tenth of their speed): the description is refused, naming the pair."""
    from jepa_wm.config import package_share

    for source in (package_share() / "urdf").glob("*.xacro"):
        (tmp_path / source.name).write_text(source.read_text())
    description = tmp_path / "fr3_sim.urdf.xacro"
    text = description.read_text()
    column = 'length="0.15" material="franka_white" xyz="0 0 0.165"'
    assert column in text
    description.write_text(text.replace(column, 'length="0.20" material="franka_white" xyz="0 0 0.18"'))
    with pytest.raises(DescriptionError, match=r"links fr3_link0 and fr3_link2 touch at the home pose"):
        ArmSim(SimConfig(robot="fr3_sim", urdf=str(description), image_size=64))


def test_the_second_robot_simulates_from_its_preset_alone():
    """so101_sim: another joint count, names, kinematics and look, built with no code of its own."""
    with ArmSim(SimConfig(robot="so101_sim", image_size=64)) as arm, ArmSim(SimConfig(image_size=64)) as default:
        assert arm.joint_names == ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll")
        assert arm.robot.name == "so101_sim"
        np.testing.assert_allclose(arm.explore_lower, arm.robot.explore_lower)
        # Every joint follows its commands (none rubs on the link it rests on), within its velocity limit.
        start = arm.home_joint_positions.copy()
        arm.reset(joint_positions=start)
        arm.set_target(start + 0.1)
        arm.step(0.4)
        np.testing.assert_allclose(arm.joint_positions - start, 0.1, atol=0.01)
        assert np.all(np.abs(arm.joint_velocities) <= arm.velocity_limits)
        rng = np.random.default_rng(0)
        for _ in range(5):
            pose = arm.sample_joint_positions(rng)
            arm.reset(joint_positions=pose)
            u, v = arm.project(arm.end_effector_position())[0]
            assert 0 <= u < 64 and 0 <= v < 64
        # It looks nothing like the default arm at home.
        assert np.abs(arm.render().astype(int) - default.render().astype(int)).mean() > 10


def test_scene_factors_change_the_image_and_only_the_image():
    """What benchmarks/robustness.py changes: light, colours, distractors, camera pose, noise; defaults: none."""
    from jepa_wm.config import ConfigError

    factors = {"light_scale": 0.6, "light_azimuth": 120.0, "table_rgb": (0.55, 0.42, 0.30),
               "background_rgb": (0.62, 0.66, 0.58), "distractors": 2, "camera_shift": (0.02, 0, 0, 0, 2.0, 0),
               "image_noise": 4.0}
    with ArmSim(SimConfig(image_size=64)) as plain:
        plain.step(1.0)
        nominal, tcp = plain.render(), plain.end_effector_position()
    for name, value in factors.items():
        with ArmSim(SimConfig(image_size=64, **{name: value})) as changed:
            changed.step(1.0)
            image = changed.render()
            np.testing.assert_allclose(changed.end_effector_position(), tcp, atol=1e-9)  # the physics is the same
            assert np.abs(image.astype(int) - nominal).mean() > 0.5, name
            if name == "distractors":  # they move: the scene is not the same a second later
                changed.step(1.0)
                assert np.abs(changed.render().astype(int) - image).max() > 40
    with pytest.raises(ConfigError, match=r"sim.camera_shift=\[0.02\]: expected dx dy dz"):
        SimConfig(camera_shift=(0.02,))
    with pytest.raises(ConfigError, match=r"sim.table_rgb=\[2.0, 0.0, 0.0\]: expected three values in 0..1"):
        SimConfig(table_rgb=(2.0, 0.0, 0.0))
