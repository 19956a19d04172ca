"""`jepa-ros collect` on the real MuJoCo arm: bags that read back as episodes, reproducibly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from jepa_wm.command_line import main
from jepa_wm.config import ConfigError
from jepa_wm.data import bag_topics, iter_messages, read_episode, read_episodes
from jepa_wm.data.collect import CollectConfig, collect

STEPS = 4


def _collect_cli(out: Path, *extra: str) -> None:
    assert main(["collect", "--episodes", "2", "--steps", str(STEPS), "--out", str(out), "--workers", "1", *extra]) == 0


def _assert_same(a: list, b: list) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.frames, y.frames)
        np.testing.assert_array_equal(x.joint_positions, y.joint_positions)
        np.testing.assert_array_equal(x.actions, y.actions)
        np.testing.assert_array_equal(x.ee_positions, y.ee_positions)


def test_collect_writes_episodes_that_read_back(tmp_path: Path) -> None:
    _collect_cli(tmp_path / "a", "--seed", "5")
    bags = sorted((tmp_path / "a").iterdir())
    assert [b.name for b in bags] == ["episode_0000", "episode_0001"]
    assert bag_topics(bags[0]) == {
        "/camera/camera_info": "sensor_msgs/msg/CameraInfo",
        "/camera/image_raw": "sensor_msgs/msg/Image",
        "/end_effector_position": "geometry_msgs/msg/PointStamped",
        "/forward_position_controller/commands": "std_msgs/msg/Float64MultiArray",
        "/joint_states": "sensor_msgs/msg/JointState",
    }
    assert sum(1 for _ in iter_messages(bags[0], ["/joint_states"])) == STEPS * 10  # 50 Hz over 0.2 s steps
    episodes = read_episodes(tmp_path / "a", period=0.2, progress=False)
    assert len(episodes) == 2
    for episode in episodes:
        assert len(episode) == STEPS
        assert episode.frames.shape == (STEPS, 64, 64, 3) and episode.frames.dtype == np.uint8
        assert episode.joint_positions.shape == (STEPS, 6) and episode.actions.shape == (STEPS, 6)
        assert episode.ee_positions is not None and np.isfinite(episode.ee_positions).all()
        np.testing.assert_array_equal(episode.stamps_ns, np.arange(STEPS) * 200_000_000)  # simulated time
        assert np.abs(episode.actions).max() <= 0.1 + 1e-6  # --max-delta
        assert episode.frames.std() > 5  # a rendered scene, not a blank image
    _assert_same(episodes, read_episodes(tmp_path / "a", progress=False))  # the camera-rate grid is the same here
    assert not np.allclose(episodes[0].joint_positions[0], episodes[1].joint_positions[0])  # random start poses
    # the arm follows the commands: it moves in the commanded direction over each step
    moved = np.diff(episodes[0].joint_positions, axis=0)
    commanded = episodes[0].actions[:-1]
    assert (np.sign(moved) == np.sign(commanded))[np.abs(commanded) > 0.02].mean() > 0.9

    _collect_cli(tmp_path / "b", "--seed", "5", "--storage", "sqlite3")
    assert next((tmp_path / "b" / "episode_0000").glob("*.db3"))
    _assert_same(episodes, read_episodes(tmp_path / "b", period=0.2, progress=False))  # same seed, same data

    _collect_cli(tmp_path / "c", "--seed", "6")
    other = read_episode(tmp_path / "c" / "episode_0000", period=0.2)
    assert not np.allclose(other.joint_positions, episodes[0].joint_positions)


def test_worker_pool_gives_the_same_episodes(tmp_path: Path) -> None:
    config = CollectConfig(out=str(tmp_path / "one"), episodes=2, steps=3, seed=1)
    collect(config, progress=False)
    collect(CollectConfig(out=str(tmp_path / "two"), episodes=2, steps=3, seed=1, workers=2), progress=False)
    _assert_same(read_episodes(tmp_path / "one", progress=False), read_episodes(tmp_path / "two", progress=False))
    with pytest.raises(FileExistsError, match="episode_0000 exists already"):
        collect(config, progress=False)


def test_collect_refuses_bad_settings(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="joint_state_rate=35.0 Hz: expected a whole number"):
        CollectConfig(out=str(tmp_path), control_period=0.1, joint_state_rate=35.0)
    with pytest.raises(ConfigError, match="joint_state_rate=30.0 Hz: its period is not a multiple"):
        CollectConfig(out=str(tmp_path), control_period=0.1, joint_state_rate=30.0)
    with pytest.raises(ConfigError, match="image_size=32"):
        CollectConfig(out=str(tmp_path), image_size=32)
    with pytest.raises(ConfigError, match="episodes=0"):
        CollectConfig(out=str(tmp_path), episodes=0)
    with pytest.raises(ConfigError, match="vary_scene=1.5: expected a share in 0..1"):
        CollectConfig(out=str(tmp_path), vary_scene=1.5)


def test_a_varied_scene_changes_what_the_camera_sees_not_the_robot(tmp_path: Path) -> None:
    from jepa_wm.data.collect import episode_scene

    nominal = CollectConfig(out=str(tmp_path), episodes=40, seed=3)
    varied = CollectConfig(out=str(tmp_path), episodes=40, seed=3, vary_scene=0.5)
    scenes = [episode_scene(varied, i) for i in range(40)]
    assert all(episode_scene(nominal, i) == nominal.sim_config() for i in range(40))
    assert scenes == [episode_scene(varied, i) for i in range(40)]  # drawn from (seed, index): reproducible
    changed = [s for s in scenes if s != nominal.sim_config()]
    assert 10 <= len(changed) <= 30  # about half
    for scene in changed:
        assert (scene.robot, scene.physics_timestep, scene.control_period, scene.seed) == ("jepa_arm", 0.002, 0.2, 0)
        assert 0.5 <= scene.light_scale <= 1.7 and len(scene.table_rgb) == 3 and len(scene.background_rgb) == 3
        assert max(abs(v) for v in scene.camera_shift[:3]) <= 0.025 and max(abs(v) for v in scene.camera_shift[3:]) <= 2.5
    assert len({s.table_rgb for s in changed}) == len(changed)  # each its own room

    # the bags: the same motion seed, another look for the varied episodes, the arm where it would be
    collect(CollectConfig(out=str(tmp_path / "plain"), episodes=4, steps=3, seed=3), progress=False)
    collect(CollectConfig(out=str(tmp_path / "varied"), episodes=4, steps=3, seed=3, vary_scene=1.0), progress=False)
    plain, seen = read_episodes(tmp_path / "plain", progress=False), read_episodes(tmp_path / "varied", progress=False)
    for a, b in zip(plain, seen):
        np.testing.assert_allclose(a.joint_positions[0], b.joint_positions[0])  # same start pose
        assert np.abs(a.frames.astype(float) - b.frames.astype(float)).mean() > 5
