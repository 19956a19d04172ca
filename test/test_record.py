"""`jepa-ros record` over real DDS: what is published comes back from the bag, as published, MCAP and sqlite3."""

import argparse
import signal
import sys

import numpy as np
import pytest
from geometry_msgs.msg import PointStamped
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from jepa_ros import conversions as conv
from jepa_ros import record
from jepa_wm.data.rosbag_io import BagReader, bag_topics, iter_messages
from ros_processes import NodeProcess, ProbeGraph

JOINTS = ("joint1", "joint2", "joint3")
STARTUP_S = 40.0
COUNT = 12
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


def _bgr8_image(rgb: np.ndarray, stamp_ns: int) -> Image:
    msg = conv.rgb_to_image(rgb[..., ::-1], stamp_ns, "camera_optical_frame")
    msg.encoding = "bgr8"  # a camera driver's usual order: the bag must keep it
    return msg


def _record(out, *extra: str) -> NodeProcess:
    return NodeProcess(["-m", "jepa_ros.cli", "record", "--out", str(out), *extra])


@pytest.mark.parametrize(("storage", "stop_signal"), [("mcap", signal.SIGINT), ("sqlite3", signal.SIGTERM)])
def test_recorded_bag_reads_back_the_published_messages(tmp_path, storage, stop_signal):
    graph = ProbeGraph("record_source")
    out = tmp_path / "bag"
    process = None
    try:
        node = graph.node
        pubs = {
            "/camera/image_raw": node.create_publisher(Image, "camera/image_raw", RELIABLE),
            "/camera/camera_info": node.create_publisher(CameraInfo, "camera/camera_info", RELIABLE),
            # best effort, as camera drivers and SensorDataQoS publishers are: record must match it
            "/joint_states": node.create_publisher(JointState, "joint_states", qos_profile_sensor_data),
            "/forward_position_controller/commands": node.create_publisher(
                Float64MultiArray, "forward_position_controller/commands", RELIABLE
            ),
            "/joint_trajectory_controller/joint_trajectory": node.create_publisher(
                JointTrajectory, "joint_trajectory_controller/joint_trajectory", RELIABLE
            ),
            "/end_effector_position": node.create_publisher(PointStamped, "end_effector_position", RELIABLE),
        }
        process = _record(out, "--storage", storage)
        graph.wait_for(lambda: all(p.get_subscription_count() > 0 for p in pubs.values()), STARTUP_S,
                       "record to subscribe every topic", process)

        rng = np.random.default_rng(0)
        intrinsics = {"width": 8, "height": 6, "fx": 7.0, "fy": 7.5, "cx": 4.0, "cy": 3.0}
        sent: dict[str, list] = {topic: [] for topic in pubs}
        for i in range(COUNT):
            stamp = 1_000_000_000 + i * 100_000_000
            frame = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
            positions = rng.uniform(-1, 1, len(JOINTS))
            waypoints = rng.uniform(-1, 1, (2, len(JOINTS)))
            tcp = rng.uniform(-1, 1, 3)
            pubs["/camera/image_raw"].publish(_bgr8_image(frame, stamp))
            pubs["/camera/camera_info"].publish(conv.camera_info(intrinsics, stamp, "camera_optical_frame"))
            pubs["/joint_states"].publish(conv.positions_to_joint_state(positions, JOINTS, stamp, velocities=positions * 2))
            pubs["/forward_position_controller/commands"].publish(conv.numpy_to_multiarray(positions + 0.1))
            pubs["/joint_trajectory_controller/joint_trajectory"].publish(
                conv.positions_to_trajectory(waypoints, JOINTS, 0.25, stamp)
            )
            pubs["/end_effector_position"].publish(conv.point_stamped(tcp, stamp))
            for topic, value in [
                ("/camera/image_raw", frame), ("/camera/camera_info", None), ("/joint_states", positions),
                ("/forward_position_controller/commands", positions + 0.1),
                ("/joint_trajectory_controller/joint_trajectory", waypoints), ("/end_effector_position", tcp),
            ]:
                sent[topic].append((stamp, value))
            graph.spin_for(0.03)
        graph.spin_for(1.5)  # let the last messages reach the recorder before it is stopped

        assert process.stop(stop_signal, timeout=20) == 0, process.output()[-3000:]
        assert "Traceback" not in process.output(), process.output()[-3000:]
    finally:
        graph.close()
        if process is not None:
            process.close()

    assert bag_topics(out) == {
        "/camera/image_raw": "sensor_msgs/msg/Image",
        "/camera/camera_info": "sensor_msgs/msg/CameraInfo",
        "/joint_states": "sensor_msgs/msg/JointState",
        "/forward_position_controller/commands": "std_msgs/msg/Float64MultiArray",
        "/joint_trajectory_controller/joint_trajectory": "trajectory_msgs/msg/JointTrajectory",
        "/end_effector_position": "geometry_msgs/msg/PointStamped",
    }
    got: dict[str, list] = {topic: [] for topic in sent}
    for message in iter_messages(out):
        got[message.topic].append(message)
    for topic in sent:
        expected = len(sent[topic])
        # best effort may drop on a busy machine; reliable topics must be complete
        minimum = int(0.8 * expected) if topic == "/joint_states" else expected
        assert minimum <= len(got[topic]) <= expected, f"{topic}: {len(got[topic])} of {expected} messages in the bag"

    by_stamp = {topic: dict(values) for topic, values in sent.items()}
    for message in got["/camera/image_raw"]:
        np.testing.assert_array_equal(message.payload, by_stamp["/camera/image_raw"][message.stamp_ns])
    with BagReader(out) as bag:  # stored as published: bgr8 bytes, not converted
        for _, _, _, image in bag.raw_messages(["/camera/image_raw"]):
            assert image.encoding == "bgr8", image.encoding
            stamp = image.header.stamp.sec * 1_000_000_000 + image.header.stamp.nanosec
            assert bytes(image.data) == by_stamp["/camera/image_raw"][stamp][..., ::-1].tobytes()
    for message in got["/camera/camera_info"]:
        info = message.payload
        assert (info.width, info.height) == (8, 6)
        np.testing.assert_allclose(info.k, [[7.0, 0, 4.0], [0, 7.5, 3.0], [0, 0, 1]])
    for message in got["/joint_states"]:
        assert message.payload.names == JOINTS
        np.testing.assert_allclose(message.payload.positions, by_stamp["/joint_states"][message.stamp_ns])
        np.testing.assert_allclose(message.payload.velocities, 2 * by_stamp["/joint_states"][message.stamp_ns])
    for message in got["/joint_trajectory_controller/joint_trajectory"]:
        assert message.payload.joint_names == JOINTS
        np.testing.assert_allclose(message.payload.positions, by_stamp["/joint_trajectory_controller/joint_trajectory"][message.stamp_ns])
        np.testing.assert_allclose(message.payload.times_from_start, [0.25, 0.5])
    for message in got["/end_effector_position"]:
        np.testing.assert_allclose(message.payload, by_stamp["/end_effector_position"][message.stamp_ns])
    # commands have no header: they are stamped on arrival, in publishing order
    commands = [m.payload for m in got["/forward_position_controller/commands"]]
    np.testing.assert_allclose(np.stack(commands), np.stack([v for _, v in sent["/forward_position_controller/commands"]]))


def test_duration_stops_the_recording(tmp_path):
    graph = ProbeGraph("record_source")
    out = tmp_path / "bag"
    process = None
    try:
        pub = graph.node.create_publisher(JointState, "joint_states", RELIABLE)
        graph.node.create_timer(0.05, lambda: pub.publish(conv.positions_to_joint_state(np.zeros(3), JOINTS, 1)))
        process = _record(out, "--duration", "6", "--topics", "joint_states")
        graph.wait_for(lambda: process.process.poll() is not None, STARTUP_S + 10, "record to stop after --duration")
        assert process.process.returncode == 0, process.output()[-3000:]
    finally:
        graph.close()
        if process is not None:
            process.close()
    messages = list(iter_messages(out))
    assert messages and {m.topic for m in messages} == {"/joint_states"}


def test_refuses_an_existing_output_and_a_bad_duration(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    record.add_arguments(parser)
    assert record.run(parser.parse_args(["--out", str(tmp_path)])) == 2
    assert "exists already" in capsys.readouterr().err
    assert record.run(parser.parse_args(["--out", str(tmp_path / "new"), "--duration", "-1"])) == 2
    assert "--duration=-1.0: expected > 0" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
