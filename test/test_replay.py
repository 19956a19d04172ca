"""`jepa-ros replay` over real DDS: recorded timing x rate with /clock, driving a world_model_node process."""

from __future__ import annotations

import json
import shutil
import signal
import time
from pathlib import Path

import pytest
import torch
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import StoragePlugin, Writer
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState

from jepa_ros import conversions as conv
from jepa_ros.cli import main
from jepa_ros.nodes import BackgroundSpinner
from jepa_wm.config import EncoderConfig, PredictorConfig, WorldModelConfig
from jepa_wm.data import BagError
from jepa_wm.data.rosbag_io import TYPESTORE
from jepa_wm.evaluation.bagcheck import scan_bag
from jepa_wm.models import WorldModel, save_checkpoint
from ros_processes import NodeProcess, ProbeGraph
from test_evaluate import collect, compressed_and_reversed, drop_window, to_ros1

STEPS, PERIOD = 30, 0.2  # collect defaults: 30 frames 0.2 s apart
TINY = WorldModelConfig(
    encoder=EncoderConfig(image_size=64, patch_size=16, embed_dim=32, depth=1, num_heads=2),
    predictor=PredictorConfig(embed_dim=32, depth=1, num_heads=2, latent_grid=2, max_steps=8),
)


@pytest.fixture(scope="module")
def bags(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bags")
    return {"mcap": collect(root / "mcap", "mcap", 1, seed=303) / "episode_0000",
            "sqlite3": collect(root / "sqlite3", "sqlite3", 1, seed=404) / "episode_0000"}


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return save_checkpoint(WorldModel(TINY), tmp_path_factory.mktemp("ckpt") / "tiny")


@pytest.fixture
def probe():
    """A probe node spinning in a background thread, recording what the replay publishes."""
    graph = ProbeGraph("replay_probe")
    received: dict[str, list] = {"clock": [], "image": [], "image_wall": [], "joints": []}
    graph.node.create_subscription(Clock, "/clock", lambda m: received["clock"].append(conv.stamp_to_ns(m.clock)), 100)
    def on_image(msg: Image) -> None:
        received["image"].append(msg)
        received["image_wall"].append(time.monotonic())

    graph.node.create_subscription(Image, "/camera/image_raw", on_image, 50)
    graph.node.create_subscription(JointState, "/joint_states", lambda m: received["joints"].append(m), 100)
    spinner = BackgroundSpinner(graph.executor)
    yield received
    spinner.stop()
    graph.close()


def test_replay_keeps_recorded_timing_times_rate_with_clock(bags, probe, capsys):
    summary = scan_bag(bags["sqlite3"])
    started = time.monotonic()
    assert main(["replay", "--bag", str(bags["sqlite3"]), "--rate", "4", "--settle", "0.3"]) == 0
    elapsed = time.monotonic() - started
    assert summary.duration_s / 4 * 0.9 < elapsed < summary.duration_s / 4 + 20, elapsed  # + start-up on a busy CPU
    time.sleep(0.3)
    assert len(probe["image"]) == STEPS
    # 100 joint states a second into a depth-10 queue: a probe starved by a busy CPU may miss a few.
    assert len(probe["joints"]) >= 0.9 * summary.topics["/joint_states"].count
    first = probe["image"][0]
    assert (first.width, first.height, first.encoding) == (64, 64, "rgb8")
    clock = probe["clock"]
    assert clock == sorted(clock) and len(clock) > STEPS
    assert clock[-1] == summary.end_ns and summary.start_ns <= clock[0] < summary.start_ns + 1_000_000_000


def test_ros1_bag_is_replayed_as_ros2_messages(bags, probe, tmp_path):
    ros1 = to_ros1(bags["mcap"], tmp_path / "episode.bag")
    assert main(["replay", "--bag", str(ros1), "--rate", "8", "--settle", "0.3"]) == 0
    time.sleep(0.3)
    images, joints = probe["image"], probe["joints"]
    assert len(images) == STEPS and len(joints) >= 0.9 * scan_bag(ros1).topics["/joint_states"].count
    first = images[0]  # ROS 1 Header.seq is dropped, the rest arrives intact
    assert (first.width, first.height, first.encoding, len(first.data)) == (64, 64, "rgb8", 64 * 64 * 3)
    assert conv.stamp_to_ns(first.header.stamp) == scan_bag(bags["mcap"]).topics["/camera/image_raw"].first_ns
    assert list(joints[0].name) == [f"joint{i}" for i in range(1, 7)]


@pytest.mark.parametrize("transport", ["raw", "compressed"])
def test_replay_drives_a_running_world_model_node(transport, bags, tiny_checkpoint, tmp_path, capsys):
    bag, image_topic, command_topic = bags["mcap"], "/camera/image_raw", "/forward_position_controller/commands"
    rate = "0.5"  # slow: the node keeps its 5 Hz even on a busy CPU, so the rate shows which clock it ticks on
    if transport == "compressed":  # PNG frames, joints listed in reverse order, commands kept off the robot's topic
        bag, image_topic = compressed_and_reversed(bag, tmp_path / "png"), "/camera/image_raw/compressed"
        command_topic = "/evaluation/commands"  # as launch/replay.launch.py runs the node
        rate = "2"
    planner = {"planner.num_samples": 32, "planner.num_elites": 4, "planner.iterations": 2, "planner.horizon": 2}
    node = NodeProcess.node("jepa_ros.nodes.world_model_node", checkpoint=tiny_checkpoint, use_sim_time=True,
                            start_enabled=False, image_transport=transport, command_topic=command_topic, **planner)
    record = tmp_path / "live"
    try:
        assert main(["replay", "--bag", str(bag), "--rate", rate, "--goal", "last", "--image-topic", image_topic,
                     "--enable", "/world_model_node/enable", "--wait-subscribers", "60", "--command-topics",
                     command_topic, "--record", str(record), "--score"]) == 0, node.output()
    finally:
        node.stop()
    score = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    recorded = scan_bag(record).topics[command_topic]
    assert recorded.count == score["live_commands"] >= 3, node.output()
    if transport == "raw":  # 5 Hz of the replayed /clock; on the wall clock it would be 10 Hz of bag time
        assert 3.5 < score["live_rate_hz"] < 6.5, score
    assert score["matched"] == score["live_commands"] and score["recorded_commands"] == STEPS
    assert 0 <= score["target_abs_error_rad"] < 0.5 and -1 <= score["action"]["cosine"] <= 1
    played = scan_bag(bag)
    assert played.start_ns <= recorded.first_ns and recorded.last_ns <= played.end_ns


def test_truncated_bag_fails_before_publishing(bags, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(bags["mcap"], broken)
    storage = next(broken.glob("*.mcap"))
    with storage.open("r+b") as stream:
        stream.truncate(storage.stat().st_size * 2 // 3)
    with pytest.raises(BagError) as caught:
        main(["replay", "--bag", str(broken)])
    message = str(caught.value)
    assert str(broken) in message and "truncated or corrupt" in message
    assert "readable messages" in message and "/camera/image_raw" in message


def test_missing_topic_lists_what_the_bag_has(bags):
    with pytest.raises(BagError) as caught:
        main(["replay", "--bag", str(bags["mcap"]), "--topics", "/camera/image_raw", "/wrist/image"])
    message = str(caught.value)
    assert "no topic /wrist/image (requested topic 2)" in message and "/joint_states (sensor_msgs/msg/JointState) x" in message
    with pytest.raises(BagError, match="/wrist/image"):  # every requested topic is checked, not only the last
        main(["replay", "--bag", str(bags["mcap"]), "--topics", "/wrist/image", "/camera/image_raw"])


def test_topic_of_a_type_without_python_package_is_left_out_unless_asked_for(bags, probe, tmp_path, capsys):
    bag = with_tf_topic(bags["mcap"], tmp_path / "with_tf")  # tf2_msgs is not installed here
    assert main(["replay", "--bag", str(bag), "--rate", "8", "--settle", "0.2"]) == 0
    assert "not replaying /tf: message type tf2_msgs/msg/TFMessage has no Python package" in capsys.readouterr().out
    time.sleep(0.3)
    assert len(probe["image"]) == STEPS
    with pytest.raises(BagError, match="tf2_msgs/msg/TFMessage"):
        main(["replay", "--bag", str(bag), "--topics", "/tf", "/joint_states"])


def with_tf_topic(source: Path, target: Path) -> Path:
    """Copy of a bag plus one tf2_msgs/TFMessage on /tf."""
    with AnyReader([source], default_typestore=TYPESTORE) as reader, \
            Writer(target, version=Writer.VERSION_LATEST, storage_plugin=StoragePlugin.MCAP) as writer:
        connections = {c.id: writer.add_connection(c.topic, c.msgtype, typestore=TYPESTORE) for c in reader.connections}
        for connection, stamp, raw in reader.messages():
            writer.write(connections[connection.id], stamp, raw)
        tf = writer.add_connection("/tf", "tf2_msgs/msg/TFMessage", typestore=TYPESTORE)
        message = TYPESTORE.types["tf2_msgs/msg/TFMessage"](transforms=[])
        writer.write(tf, reader.start_time, TYPESTORE.serialize_cdr(message, "tf2_msgs/msg/TFMessage"))
    return target


def test_gap_is_reported_and_skipped_not_waited_through(bags, probe, tmp_path, capsys):
    holed = drop_window(bags["mcap"], tmp_path / "holed", start_s=1.0, length_s=3.0)
    assert main(["replay", "--bag", str(holed), "--rate", "1", "--max-gap", "0.5", "--settle", "0.2"]) == 0
    out = capsys.readouterr().out
    assert "gap on /camera/image_raw" in out and "skipping ahead" in out
    time.sleep(0.3)
    played = probe["image_wall"][-1] - probe["image_wall"][0]
    assert played < (STEPS - 1) * PERIOD - 1.5, played  # the 3 s hole took 0.5 s of wall time
    assert len(probe["image"]) == scan_bag(holed).topics["/camera/image_raw"].count  # nothing made up in the hole


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_a_stopped_replay_ends_cleanly_and_keeps_what_it_recorded(bags, probe, tmp_path, stop_signal):
    record = tmp_path / "live"
    process = NodeProcess(["-m", "jepa_ros.cli", "replay", "--bag", str(bags["mcap"]), "--rate", "0.5",
                           "--record", str(record)])
    try:
        deadline = time.monotonic() + 60
        while not probe["image"] and time.monotonic() < deadline and process.process.poll() is None:
            time.sleep(0.05)
        assert probe["image"], process.output()[-3000:]
    finally:
        code = process.stop(stop_signal, timeout=20)
    output = process.output()
    assert code == 0 and "Traceback" not in output, output[-3000:]
    assert "stopped after" in output and len(probe["image"]) < STEPS  # it stopped publishing part way
    assert f"recorded 0 live commands to {record}" in output and record.is_dir()  # nobody commanded: an empty bag
