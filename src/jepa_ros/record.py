"""`jepa-ros record`: write the camera, joint states and commands of a running graph to rosbag2.

Topics are subscribed as soon as a publisher for them is discovered, with the QoS the
publishers offer (best effort if any of them is, as ``ros2 bag record`` does), and each
message is written with jepa_wm.data.rosbag_io.BagWriter (MCAP or sqlite3). Stops on
Ctrl-C, SIGTERM or after ``--duration`` seconds; the bag is always finalized.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import rclpy
from geometry_msgs.msg import PointStamped
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from jepa_ros import conversions as conv
from jepa_wm.data.rosbag_io import BagWriter

DEFAULT_TOPICS = (
    "/camera/image_raw",
    "/camera/camera_info",
    "/joint_states",
    "/forward_position_controller/commands",
    "/joint_trajectory_controller/joint_trajectory",
    "/end_effector_position",
)
DISCOVERY_PERIOD_S = 0.5

# ROS type name -> (rclpy class, writer of one message)
Writer = Callable[[BagWriter, str, Any, int], None]


def _write_image(bag: BagWriter, topic: str, msg: Image, now_ns: int) -> None:
    bag.write_image(topic, conv.stamp_to_ns(msg.header.stamp), conv.image_to_rgb(msg), msg.header.frame_id)


def _write_compressed(bag: BagWriter, topic: str, msg: CompressedImage, now_ns: int) -> None:
    fmt = "png" if "png" in msg.format.lower() else "jpeg"
    stamp = conv.stamp_to_ns(msg.header.stamp)
    bag.write_compressed_image(topic, stamp, conv.compressed_to_rgb(msg), fmt=fmt, frame_id=msg.header.frame_id)


def _write_camera_info(bag: BagWriter, topic: str, msg: CameraInfo, now_ns: int) -> None:
    fx, _, cx, _, fy, cy = msg.k[:6]
    stamp = conv.stamp_to_ns(msg.header.stamp)
    bag.write_camera_info(topic, stamp, msg.width, msg.height, fx, fy, cx, cy, msg.header.frame_id)


def _write_joint_state(bag: BagWriter, topic: str, msg: JointState, now_ns: int) -> None:
    stamp = conv.stamp_to_ns(msg.header.stamp)
    bag.write_joint_state(topic, stamp, list(msg.name), msg.position, msg.velocity, msg.effort)


def _write_command(bag: BagWriter, topic: str, msg: Float64MultiArray, now_ns: int) -> None:
    bag.write_command(topic, now_ns, conv.multiarray_to_numpy(msg))  # no header: stamped on arrival


def _write_trajectory(bag: BagWriter, topic: str, msg: JointTrajectory, now_ns: int) -> None:
    times, positions = conv.trajectory_points(msg, list(msg.joint_names))
    stamp = conv.stamp_to_ns(msg.header.stamp) or now_ns  # a zero stamp means "start now"
    bag.write_trajectory(topic, stamp, list(msg.joint_names), positions, times)


def _write_point(bag: BagWriter, topic: str, msg: PointStamped, now_ns: int) -> None:
    bag.write_point(topic, conv.stamp_to_ns(msg.header.stamp), conv.point_to_numpy(msg), msg.header.frame_id)


TYPES: dict[str, tuple[type, Writer]] = {
    "sensor_msgs/msg/Image": (Image, _write_image),
    "sensor_msgs/msg/CompressedImage": (CompressedImage, _write_compressed),
    "sensor_msgs/msg/CameraInfo": (CameraInfo, _write_camera_info),
    "sensor_msgs/msg/JointState": (JointState, _write_joint_state),
    "std_msgs/msg/Float64MultiArray": (Float64MultiArray, _write_command),
    "trajectory_msgs/msg/JointTrajectory": (JointTrajectory, _write_trajectory),
    "geometry_msgs/msg/PointStamped": (PointStamped, _write_point),
}


class Recorder(Node):
    """Subscribes topics as their publishers appear and writes every message to one bag."""

    def __init__(self, bag: BagWriter, topics: Sequence[str], use_sim_time: bool | None) -> None:
        super().__init__("jepa_recorder")
        self.bag = bag
        self.wanted = [topic if topic.startswith("/") else f"/{topic}" for topic in topics]
        self.auto_sim_time = use_sim_time is None
        if use_sim_time:
            self.set_parameters([Parameter("use_sim_time", value=True)])
        self.counts: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self._topic_subscriptions: dict[str, Any] = {}
        self.create_timer(DISCOVERY_PERIOD_S, self.discover)
        self.discover()

    def discover(self) -> None:
        """Subscribe every wanted topic that has a publisher now."""
        types = dict(self.get_topic_names_and_types())
        if self.auto_sim_time and "/clock" in types:
            # a simulator publishes /clock: stamp header-less messages on its time, like its own stamps
            self.auto_sim_time = False
            self.set_parameters([Parameter("use_sim_time", value=True)])
            self.get_logger().info("/clock is published: recording on simulated time")
        for topic in self.wanted:
            if topic in self._topic_subscriptions or topic not in types:
                continue
            publishers = self.get_publishers_info_by_topic(topic)
            if not publishers:  # only subscribers so far: the publisher's QoS is not known yet
                continue
            supported = [name for name in types[topic] if name in TYPES]
            if not supported:
                self.get_logger().error(
                    f"{topic} has type {types[topic]}, which record cannot write; supported: {sorted(TYPES)}"
                )
                self._topic_subscriptions[topic] = None
                continue
            msg_class, writer = TYPES[supported[0]]
            best_effort = any(p.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT for p in publishers)
            qos = QoSProfile(
                depth=50, reliability=ReliabilityPolicy.BEST_EFFORT if best_effort else ReliabilityPolicy.RELIABLE
            )
            self._topic_subscriptions[topic] = self.create_subscription(
                msg_class, topic, lambda msg, t=topic, w=writer: self._on_message(t, w, msg), qos
            )
            self.get_logger().info(f"recording {topic} ({supported[0]}, {'best effort' if best_effort else 'reliable'})")

    def _on_message(self, topic: str, writer: Writer, msg: Any) -> None:
        try:
            writer(self.bag, topic, msg, self.get_clock().now().nanoseconds)
            self.counts[topic] += 1
        except (ValueError, conv.ConversionError) as err:  # a malformed message is skipped, not fatal
            self.errors[topic] += 1
            self.get_logger().warning(f"{topic}: message skipped: {err}", throttle_duration_sec=2.0)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `jepa-ros record`."""
    parser.add_argument("--out", required=True, type=Path, help="bag folder to create (must not exist)")
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="rosbag2 storage plugin")
    parser.add_argument("--topics", nargs="+", default=list(DEFAULT_TOPICS), help="topics to record")
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds (default: until Ctrl-C)")
    clock = parser.add_mutually_exclusive_group()
    clock.add_argument("--use-sim-time", dest="use_sim_time", action="store_true", default=None,
                       help="stamp header-less messages on /clock time (default: when /clock is published)")
    clock.add_argument("--wall-time", dest="use_sim_time", action="store_false", help="stamp on wall time")


def run(args: argparse.Namespace) -> int:
    """Record until Ctrl-C, SIGTERM or --duration; prints the messages written per topic."""
    if args.duration is not None and args.duration <= 0:
        print(f"record: --duration={args.duration}: expected > 0 seconds", file=sys.stderr)
        return 2
    if args.out.exists():
        print(f"record: {args.out} exists already; a bag is written into a new folder", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    recorder = None
    with BagWriter(args.out, storage=args.storage) as bag:
        try:
            with rclpy.init():
                recorder = Recorder(bag, args.topics, args.use_sim_time)
                executor = SingleThreadedExecutor()
                executor.add_node(recorder)
                deadline = None if args.duration is None else time.monotonic() + args.duration
                try:
                    while rclpy.ok() and (deadline is None or time.monotonic() < deadline):
                        executor.spin_once(timeout_sec=0.1)
                finally:
                    executor.shutdown()
                    recorder.destroy_node()
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
    counts = dict(recorder.counts) if recorder is not None else {}
    print(f"record: wrote {sum(counts.values())} messages to {args.out} ({args.storage}): {counts}")
    missing = [topic for topic in (recorder.wanted if recorder else []) if topic not in counts]
    if missing:
        print(f"record: no messages on {missing}", file=sys.stderr)
    return 0
