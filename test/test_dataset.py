"""Episode alignment from real bag files, and training windows over episodes."""

from __future__ import annotations

import dataclasses
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from jepa_wm.data import (
    ActionWarning,
    BagError,
    BagTopics,
    BagWriter,
    Episode,
    EpisodeWindows,
    GapWarning,
    find_bags,
    read_episode,
    read_episode_segments,
    read_episodes,
    split_episodes,
)

NAMES = ("joint_a", "joint_b", "joint_c")
T0 = 1_700_000_000 * 1_000_000_000  # a wall-clock epoch, as a real robot's bag has
CAMERA_HZ, JOINT_HZ, PERIOD = 30, 100, 0.2
OFFSET = np.array([0.05, -0.02, 0.01])  # commanded beyond where the joints get to


def joint_positions_at(seconds: float) -> np.ndarray:
    """A smooth, known joint trajectory [3]."""
    return np.array([np.sin(seconds), 0.5 * np.cos(2 * seconds), 0.1 * seconds])


def frame_at(index: int, size: tuple[int, int] = (48, 64)) -> np.ndarray:
    """A frame whose pixels encode its index, so alignment can be read back from the image."""
    return np.full((*size, 3), index % 256, np.uint8)


def write_robot_bag(path: Path, seconds: float = 3.0, commands: str | None = "array", seed: int = 0,
                    camera_gap: tuple[float, float] | None = None) -> None:
    """A bag like one recorded on a real arm: 30 Hz camera, 100 Hz joint states in shuffled order with
    jittered stamps and out-of-order arrival, commands at 5 Hz issued 30 ms after each control tick.

    As on a real arm the joints follow the commands: each targets where the joints are a period later
    (plus a small constant offset the servo never closes)."""
    rng = np.random.default_rng(seed)
    with BagWriter(path) as bag:
        for i in range(int(seconds * CAMERA_HZ)):
            stamp_s = i / CAMERA_HZ
            if camera_gap and camera_gap[0] < stamp_s < camera_gap[1]:
                continue
            bag.write_image("/camera/image_raw", T0 + int(stamp_s * 1e9), frame_at(i))
        for i in range(int(seconds * JOINT_HZ)):
            jitter = int(rng.integers(-2_000_000, 2_000_000))
            stamp = T0 + int(i / JOINT_HZ * 1e9) + jitter
            order = rng.permutation(3)
            positions = joint_positions_at((stamp - T0) / 1e9)
            bag.write_joint_state("/joint_states", max(stamp, T0), [NAMES[j] for j in order], positions[order])
        for k in range(int(seconds / PERIOD) + 1):
            stamp = T0 + int(k * PERIOD * 1e9) + 30_000_000
            target = joint_positions_at((k + 1) * PERIOD) + OFFSET
            if commands == "array":
                bag.write_command("/forward_position_controller/commands", stamp, target)
            elif commands == "trajectory":
                order = [2, 0, 1]  # a trajectory names its joints: any order
                bag.write_trajectory("/joint_trajectory_controller/joint_trajectory", stamp,
                                     [NAMES[j] for j in order], [target[order]], [PERIOD])
        for k in range(int(seconds / PERIOD)):
            bag.write_point("/end_effector_position", T0 + int(k * PERIOD * 1e9), [k, 0.0, 1.0])


def test_alignment_with_shuffled_joints_and_jittered_stamps(tmp_path: Path) -> None:
    write_robot_bag(tmp_path / "bag")
    episode = read_episode(tmp_path / "bag", period=PERIOD, joint_names=NAMES, image_size=32)
    assert len(episode) == 15  # 0 .. 2.8 s at 5 Hz: the last joint state is at 2.99 s
    assert episode.frames.shape == (15, 32, 32, 3) and episode.frames.dtype == np.uint8
    assert episode.joint_names == NAMES
    seconds = (episode.stamps_ns - T0) / 1e9
    np.testing.assert_allclose(seconds, np.arange(15) * PERIOD, atol=1e-9)
    # the frame of each step is the camera frame nearest its time: frame index 6 k at 30 Hz
    np.testing.assert_array_equal(episode.frames[:, 0, 0, 0], 6 * np.arange(15))
    # joints come back in NAMES order from shuffled messages, within the 2 ms stamp jitter
    expected = np.stack([joint_positions_at(s) for s in seconds])
    np.testing.assert_allclose(episode.joint_positions, expected, atol=3e-3)
    # action = command in effect over [t, t+period) minus measured position at t
    commanded = np.stack([joint_positions_at(s + PERIOD) - joint_positions_at(s) for s in seconds]) + OFFSET
    np.testing.assert_allclose(episode.actions, commanded, atol=3e-3)
    np.testing.assert_allclose(episode.ee_positions[:, 0], np.arange(15))


def test_trajectory_commands_are_reordered_by_name(tmp_path: Path) -> None:
    write_robot_bag(tmp_path / "bag", commands="trajectory")
    episode = read_episode(tmp_path / "bag", period=PERIOD, joint_names=NAMES)
    seconds = (episode.stamps_ns - T0) / 1e9
    commanded = np.stack([joint_positions_at(s + PERIOD) - joint_positions_at(s) for s in seconds]) + OFFSET
    np.testing.assert_allclose(episode.actions, commanded, atol=3e-3)


def test_without_commands_actions_are_position_differences(tmp_path: Path) -> None:
    write_robot_bag(tmp_path / "bag", commands=None)
    episode = read_episode(tmp_path / "bag", period=PERIOD, joint_names=NAMES)
    assert len(episode) == 14  # the 2.8 s tick has no successor to difference against
    seconds = (episode.stamps_ns - T0) / 1e9
    expected = np.stack([joint_positions_at(s + PERIOD) - joint_positions_at(s) for s in seconds])
    np.testing.assert_allclose(episode.actions, expected, atol=5e-3)


def test_camera_rate_grid_when_no_period_is_given(tmp_path: Path) -> None:
    write_robot_bag(tmp_path / "bag", seconds=1.0)
    with pytest.warns(GapWarning, match="steps have no /end_effector_position"):  # it is at 5 Hz, the grid at 30
        episode = read_episode(tmp_path / "bag", joint_names=NAMES)
    assert episode.frames.shape[1:] == (48, 64, 3)  # native size kept
    assert len(episode) == 30
    np.testing.assert_array_equal(episode.frames[:, 0, 0, 0], np.arange(len(episode)))


def test_compressed_camera_topic_is_used_when_raw_is_absent(tmp_path: Path) -> None:
    with BagWriter(tmp_path / "bag", "sqlite3") as bag:
        for k in range(4):
            stamp = T0 + k * 200_000_000
            bag.write_compressed_image("/camera/image_raw/compressed", stamp, frame_at(40 * k), fmt="png")
            bag.write_joint_state("/joint_states", stamp, NAMES, joint_positions_at(k * PERIOD))
    episode = read_episode(tmp_path / "bag", period=PERIOD, image_size=16)
    assert len(episode) == 3  # differences: the last step has no successor
    np.testing.assert_array_equal(episode.frames[:, 0, 0, 0], [0, 40, 80])


def test_gap_is_reported_and_splits_the_episode(tmp_path: Path) -> None:
    write_robot_bag(tmp_path / "bag", seconds=4.0, camera_gap=(1.5, 2.3))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        segments = read_episode_segments(tmp_path / "bag", period=PERIOD, joint_names=NAMES)
    messages = [str(w.message) for w in caught if w.category is GapWarning]
    assert any(re.search(r"no frames on /camera/image_raw from t=1\.\d+ s to t=2\.\d+ s", m) for m in messages)
    assert any("runs at t=0.000..1.400 s, 2.400..3.800 s" in m for m in messages)
    assert len(segments) == 2
    for segment in segments:
        steps = np.diff(segment.stamps_ns)
        assert np.all(steps == int(PERIOD * 1e9))  # no step spans the gap: nothing interpolated
    assert (segments[0].stamps_ns[-1] - T0) / 1e9 < 1.5 + 0.1 and (segments[1].stamps_ns[0] - T0) / 1e9 > 2.3 - 0.1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        longest = read_episode(tmp_path / "bag", period=PERIOD, joint_names=NAMES)
    assert len(longest) == max(len(s) for s in segments)
    assert any("keeps the longest" in str(w.message) for w in caught)


def test_bad_bags_fail_clearly(tmp_path: Path) -> None:
    with BagWriter(tmp_path / "no_camera") as bag:
        bag.write_joint_state("/joint_states", T0, NAMES, [0, 0, 0])
        bag.write_command("/forward_position_controller/commands", T0, [0, 0])
    with pytest.raises(BagError, match=r"no topic /camera/image_raw; it has: .*/joint_states \(sensor_msgs/msg/JointState\)"):
        read_episode(tmp_path / "no_camera")
    with BagWriter(tmp_path / "short_command") as bag:
        for k in range(3):
            bag.write_image("/camera/image_raw", T0 + k * 100_000_000, frame_at(k))
            bag.write_joint_state("/joint_states", T0 + k * 100_000_000, NAMES, [0, 0, 0])
            bag.write_command("/forward_position_controller/commands", T0 + k * 100_000_000, [0, 0])
    with pytest.raises(BagError, match="has 2 values; expected 3"):
        read_episode(tmp_path / "short_command")
    with pytest.raises(BagError, match=r"no joint state names all of \['joint_a', 'joint_x'\]"):
        read_episode(tmp_path / "short_command", joint_names=("joint_a", "joint_x"))
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(BagError, match="no bags"):
        find_bags([tmp_path / "empty_dir"])


def _small_bag(path: Path, joint3=lambda k: 0.1 * k, command=lambda k: [0.0, 0.0, 0.1 * k + 0.1],
               size=lambda k: (48, 64)) -> None:
    """Six steps; joint states and commands serialized by rclpy as a recorder stores them (NaN included)."""
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float64MultiArray

    with BagWriter(path) as bag:
        for k in range(6):
            stamp = T0 + k * 100_000_000
            bag.write_image("/camera/image_raw", stamp, frame_at(k, size(k)))
            state = JointState(name=list(NAMES), position=[0.0, 0.0, float(joint3(k))])
            state.header.stamp.sec, state.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
            bag.write_serialized("/joint_states", "sensor_msgs/msg/JointState", stamp, serialize_message(state))
            bag.write_serialized("/forward_position_controller/commands", "std_msgs/msg/Float64MultiArray",
                                 stamp + 10_000_000,
                                 serialize_message(Float64MultiArray(data=[float(v) for v in command(k)])))


def test_non_finite_data_is_refused_naming_bag_topic_joint_and_time(tmp_path: Path) -> None:
    # a bag whose joint_c was NaN gave a prediction error of 0.0 in evaluate, and loss=nan in train
    _small_bag(tmp_path / "nan_joint", joint3=lambda k: np.nan if k == 3 else 0.1 * k)
    with pytest.raises(BagError, match=rf"nan_joint: /joint_states at {T0 + 300_000_000} ns has non-finite values: "
                                       r"joint_c=nan"):
        read_episode(tmp_path / "nan_joint")
    _small_bag(tmp_path / "inf_command", command=lambda k: [np.inf if k == 2 else 0.0, 0.0, 0.0])
    with pytest.raises(BagError, match=rf"inf_command: /forward_position_controller/commands at {T0 + 210_000_000} ns "
                                       r"has non-finite values: joint_a=inf"):
        read_episode(tmp_path / "inf_command")


def test_a_bag_mixing_image_sizes_is_refused_naming_the_sizes(tmp_path: Path) -> None:
    # 128x128 mixed with 37x91 frames were trained on, the odd ones squashed
    _small_bag(tmp_path / "mixed", size=lambda k: (37, 91) if k == 4 else (48, 64))
    with pytest.raises(BagError, match=r"mixed: frame 4 on /camera/image_raw is 91x37, earlier frames 64x48"):
        read_episode(tmp_path / "mixed", image_size=32)


def test_unnamed_commands_in_another_order_than_the_joint_states_are_refused_naming_the_joints(tmp_path: Path) -> None:
    # the first joint state lists the joints in another order than the controller: every action landed on
    # the wrong joint, silently (the agreement of action and motion fell from 0.95 to -0.07)
    write_robot_bag(tmp_path / "bag", seed=0)  # its first joint state lists joint_c, joint_a, joint_b
    first_order = read_episode(tmp_path / "bag", period=PERIOD, topics=BagTopics(command_joints=NAMES)).joint_names
    assert first_order != NAMES  # the joint states' order is not the controller's
    with pytest.raises(BagError, match=r"bag .*bag: .*the motion that follows disagree for joints .*Give the "
                                       r"controller's joint order"):
        read_episode(tmp_path / "bag", period=PERIOD)
    # with the controller's order stated, every command lands on its joint, whatever the joint states' order
    episode = read_episode(tmp_path / "bag", period=PERIOD, topics=BagTopics(command_joints=NAMES))
    by_name = read_episode(tmp_path / "bag", period=PERIOD, joint_names=NAMES)
    order = [episode.joint_names.index(name) for name in NAMES]
    np.testing.assert_allclose(episode.actions[:, order], by_name.actions)
    with pytest.raises(BagError, match=r"the command joints \['joint_a', 'joint_b', 'joint_x'\] lack \['joint_c'\]"):
        read_episode(tmp_path / "bag", period=PERIOD, topics=BagTopics(command_joints=("joint_a", "joint_b", "joint_x")))


def test_one_joint_held_back_in_a_short_bag_is_said_and_the_recording_judged_as_a_whole(tmp_path: Path) -> None:
    from jepa_wm.data.episodes import check_actions_follow_motion

    def episode(joint_b_pushed: bool, source: str) -> Episode:
        rng = np.random.default_rng(len(source))
        actions = rng.uniform(-0.1, 0.1, (60, 3)).astype(np.float32)
        motion = actions.copy()
        if joint_b_pushed:  # contact pushes joint_b back for a third of the bag, whatever it is commanded
            motion[20:40, 1] = -0.3
        positions = np.concatenate([np.zeros((1, 3)), np.cumsum(motion[:-1], axis=0)]).astype(np.float32)
        return Episode(np.zeros((60, 4, 4, 3), np.uint8), positions, actions, np.arange(60, dtype=np.int64), NAMES, source)

    good = [episode(False, f"bag_{i}") for i in range(20)]
    check_actions_follow_motion([*good, episode(True, "pushed")], "the bags")  # one bad stretch among many: read
    with pytest.raises(BagError, match=r"the bags: over 1 episodes the actions and the motion that follows disagree "
                                       r"for joints joint_b -?0.\d+ "):
        check_actions_follow_motion([episode(True, "pushed")], "the bags")
    swapped = [dataclasses.replace(e, actions=e.actions[:, [1, 0, 2]]) for e in good]
    with pytest.raises(BagError, match=r"disagree for joints joint_a .*, joint_b .*another joint order than"):
        check_actions_follow_motion(swapped, "the bags")


def test_an_assumed_command_order_and_missing_commands_are_said_by_name(tmp_path: Path) -> None:
    write_robot_bag(tmp_path / "ordered", seed=1)  # its first joint state is in the controller's order
    with pytest.warns(ActionWarning, match=r"names no joints; its values are taken in the joint states' order"):
        episode = read_episode(tmp_path / "ordered", period=PERIOD)  # consistent, so read; the assumption said
    assert episode.joint_names == NAMES
    write_robot_bag(tmp_path / "no_commands", commands=None)
    with pytest.warns(ActionWarning, match=r"has no commands on /forward_position_controller/commands or "
                                           r"/joint_trajectory_controller/joint_trajectory: its actions are the "
                                           r"measured joint-position differences"):
        read_episode(tmp_path / "no_commands", period=PERIOD, joint_names=NAMES)


def test_bag_reading_takes_the_preset_then_each_flag() -> None:
    import argparse

    from jepa_wm.config import load_robot
    from jepa_wm.data.options import add_bag_arguments, bag_reading

    parser = argparse.ArgumentParser()
    add_bag_arguments(parser)
    robot = load_robot("ur5e")
    reading = bag_reading(parser.parse_args(["--robot", "ur5e"]))
    assert reading.joint_names == robot.joint_names and reading.topics.command_joints == robot.joint_names
    assert reading.topics.trajectory == "/" + robot.command_topic  # a JTC preset: its commands are trajectories
    assert reading.topics.image == "/" + robot.camera_topic
    reading = bag_reading(parser.parse_args(["--robot", "ur5e", "--image-topic", "/camera/color/image_raw",
                                             "--joints", "shoulder_pan_joint", "--command-joints", "a", "b",
                                             "--period", "0.1"]))
    assert reading.topics.image == "/camera/color/image_raw" and reading.joint_names == ("shoulder_pan_joint",)
    assert reading.topics.command_joints == ("a", "b") and reading.period == 0.1
    assert bag_reading(parser.parse_args([])).joint_names is None


def test_one_long_recording_is_split_by_time() -> None:
    episode = make_episode(40, 0.0, "long")
    train, val = split_episodes([episode], 0.25, seed=0)
    assert [len(e) for e in train] == [30] and [len(e) for e in val] == [10]
    np.testing.assert_array_equal(val[0].joint_positions, episode.joint_positions[30:])  # the tail, in order
    with pytest.raises(ValueError, match="too short to hold out a validation part"):
        split_episodes([make_episode(3, 0.0, "short")], 0.25, seed=0)


def test_read_episodes_finds_every_bag(tmp_path: Path) -> None:
    write_robot_bag(tmp_path / "robot" / "day1" / "run_a", seconds=1.0, seed=1)
    write_robot_bag(tmp_path / "robot" / "day2" / "run_b", seconds=1.0, seed=2, commands=None)
    lone = tmp_path / "robot" / "loose.mcap"
    lone.write_bytes(next((tmp_path / "robot" / "day1" / "run_a").glob("*.mcap")).read_bytes())
    assert [p.name for p in find_bags(tmp_path / "robot")] == ["run_a", "run_b", "loose.mcap"]
    episodes = read_episodes(tmp_path / "robot", period=PERIOD, joint_names=NAMES, image_size=16, progress=False)
    assert len(episodes) == 3 and all(e.frames.shape[1:] == (16, 16, 3) for e in episodes)


def test_bags_behind_symbolic_links_are_found_once(tmp_path: Path) -> None:
    write_robot_bag(tmp_path / "elsewhere" / "run_c", seconds=1.0, seed=3)
    write_robot_bag(tmp_path / "robot" / "run_a", seconds=1.0, seed=1)
    (tmp_path / "robot" / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "robot" / "run_a" / "loop").symlink_to(tmp_path / "robot", target_is_directory=True)  # no endless walk
    assert [p.relative_to(tmp_path).as_posix() for p in find_bags(tmp_path / "robot")] == ["robot/linked/run_c", "robot/run_a"]


def test_a_camera_on_its_own_clock_is_refused_by_header_stamps_and_paired_by_arrival(tmp_path: Path) -> None:
    from jepa_wm.data.rosbag_io import IMAGE, TYPESTORE

    device_clock = 12_345 * 1_000_000_000  # the camera counts from its own power-up
    with BagWriter(tmp_path / "bag") as bag:
        for i in range(int(3.0 * CAMERA_HZ)):
            arrival = T0 + int(i / CAMERA_HZ * 1e9) + 30_000_000  # received 30 ms after exposure
            image = TYPESTORE.types[IMAGE](
                header=TYPESTORE.types["std_msgs/msg/Header"](
                    stamp=TYPESTORE.types["builtin_interfaces/msg/Time"](sec=(device_clock + i * 33_333_333) // 1_000_000_000,
                                                                         nanosec=(device_clock + i * 33_333_333) % 1_000_000_000),
                    frame_id="camera"),
                height=4, width=4, encoding="rgb8", is_bigendian=0, step=12, data=np.full(48, i % 256, np.uint8))
            bag.write_serialized("/camera/image_raw", IMAGE, arrival, TYPESTORE.serialize_cdr(image, IMAGE))
        for i in range(int(3.0 * JOINT_HZ)):
            stamp = T0 + int(i / JOINT_HZ * 1e9)
            bag.write_joint_state("/joint_states", stamp, NAMES, joint_positions_at(i / JOINT_HZ))
    with pytest.raises(BagError, match=r"no frame on /camera/image_raw has a joint state .*--stamps arrival"):
        read_episode(tmp_path / "bag", period=PERIOD)
    with pytest.warns(ActionWarning):  # no commands in this bag
        episode = read_episode(tmp_path / "bag", BagTopics(stamps="arrival"), period=PERIOD)
    # Each step's frame and joint state were received together: frame i arrived 30 ms after i / 30 s.
    frame_index = episode.frames[:, 0, 0, 0].astype(int)
    expected = np.array([joint_positions_at(((k * 1e9 / CAMERA_HZ + 30e6) // 1e7) / JOINT_HZ) for k in frame_index])
    np.testing.assert_allclose(episode.joint_positions, expected, atol=0.02)
    with pytest.raises(BagError, match="stamps='device': expected 'header' or 'arrival'"):
        BagTopics(stamps="device")


# ---------------------------------------------------------------------------------------
# training windows and the split


def make_episode(steps: int, offset: float, source: str, size: int = 24) -> Episode:
    frames = np.zeros((steps, size, size, 3), np.uint8)
    frames[:, :, :, 0] = (np.arange(steps) % 256)[:, None, None]
    positions = offset + np.arange(steps, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    return Episode(frames=frames, joint_positions=positions, actions=positions * 0 + 1, stamps_ns=np.arange(steps, dtype=np.int64),
                   joint_names=NAMES, source=source)


def test_training_windows_stay_inside_episodes_and_name_them() -> None:
    episodes = [make_episode(7, 0.0, "a"), make_episode(3, 100.0, "b"), make_episode(5, 200.0, "c")]
    windows = EpisodeWindows(episodes, length=4, action_scale=0.5, device=torch.device("cpu"))
    assert len(windows.starts) == 4 + 0 + 2  # b is shorter than a window
    assert windows.frames.shape == (12, 24, 24, 3)  # a and c only, in one tensor
    batch = windows.sample(64, torch.Generator().manual_seed(0), preprocess=lambda frames: frames.float())
    assert batch.images.shape == (64, 4, 24, 24, 3) and batch.joint_positions.shape == (64, 4, 3)
    # consecutive steps of one episode: positions rise by exactly one per step
    assert torch.all(batch.joint_positions[:, :, 0].diff(dim=1) == 1)
    assert torch.all(batch.actions == 2.0)  # actions are normalised by the action scale
    assert windows.episodes_of(windows.last_sampled) == ["a (from 0 ns)", "c (from 0 ns)"]
    assert windows.episodes_of(torch.tensor([3, 8])) == ["a (from 0 ns)", "c (from 0 ns)"]  # window start frames
    with pytest.raises(ValueError, match=r"no episode has the 9 steps a training sample needs; lengths are \[3, 5, 7\]"):
        EpisodeWindows(episodes, length=9, action_scale=0.5, device=torch.device("cpu"))


def test_split_is_by_episode_and_seeded() -> None:
    episodes = [make_episode(5, float(i), f"bag_{i}") for i in range(10)]
    train, val = split_episodes(episodes, 0.2, seed=3)
    assert len(train) == 8 and len(val) == 2
    assert {e.source for e in train}.isdisjoint({e.source for e in val})
    assert [e.source for e in split_episodes(episodes, 0.2, seed=3)[1]] == [e.source for e in val]
    assert [e.source for e in split_episodes(episodes, 0.2, seed=4)[1]] != [e.source for e in val]
    with pytest.raises(ValueError, match="no episodes to split"):
        split_episodes([], 0.2, seed=0)
