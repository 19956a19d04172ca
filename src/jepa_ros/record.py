"""`jepa-ros record`: write the camera, joint states and commands of a running graph to rosbag2.

Topics are subscribed as soon as a publisher for them is discovered, with the QoS the
publishers offer (best effort if any of them is), and each message is written as received
(the serialized CDR bytes, nothing decoded or re-encoded: a bgr8 image stays bgr8, a JPEG
keeps its bytes) at its arrival time on the node's clock, as ``ros2 bag record`` does, with
jepa_wm.data.rosbag_io.BagWriter (MCAP or sqlite3). Any message type rosbags knows can be
recorded. Stops on Ctrl-C, SIGTERM or after ``--duration`` seconds; the bag is always finalized.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions

from jepa_ros.nodes import stop_on_signals
from jepa_ros.replay import message_class
from jepa_wm import topics
from jepa_wm.data.rosbag_io import TYPESTORE, BagError, BagWriter

DEFAULT_TOPICS = (
    *(topics.in_bag(name) for name in (topics.CAMERA, topics.CAMERA_INFO, topics.JOINT_STATES, topics.POSITION_COMMANDS,
                                        topics.TRAJECTORY_COMMANDS, topics.END_EFFECTOR)),
)
DISCOVERY_PERIOD_S = 0.5


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
        if self.auto_sim_time and topics.CLOCK in types:
            # a simulator publishes /clock: log times on its time, like its own stamps
            self.auto_sim_time = False
            self.set_parameters([Parameter("use_sim_time", value=True)])
            self.get_logger().info("/clock is published: recording on simulated time")
        for topic in self.wanted:
            if topic in self._topic_subscriptions or topic not in types:
                continue
            publishers = self.get_publishers_info_by_topic(topic)
            if not publishers:  # only subscribers so far: the publisher's QoS is not known yet
                continue
            msgtype = next((name for name in types[topic] if name in TYPESTORE.fielddefs), None)
            try:
                if msgtype is None:
                    raise BagError(f"rosbags' ROS 2 Kilted type store has no definition of {types[topic]}")
                msg_class = message_class(msgtype)
            except BagError as err:
                self.get_logger().error(f"not recording {topic}: {err}")
                self._topic_subscriptions[topic] = None
                continue
            best_effort = any(p.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT for p in publishers)
            qos = QoSProfile(
                depth=50, reliability=ReliabilityPolicy.BEST_EFFORT if best_effort else ReliabilityPolicy.RELIABLE
            )
            self._topic_subscriptions[topic] = self.create_subscription(
                msg_class, topic, lambda data, t=topic, m=msgtype: self._on_message(t, m, data), qos, raw=True
            )
            self.get_logger().info(f"recording {topic} ({msgtype}, {'best effort' if best_effort else 'reliable'})")

    def _on_message(self, topic: str, msgtype: str, data: bytes) -> None:
        try:
            self.bag.write_serialized(topic, msgtype, self.get_clock().now().nanoseconds, data)
            self.counts[topic] += 1
        except BagError as err:  # not CDR: skipped and counted, the recording goes on
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
                       help="log times (and the only times of header-less commands) on /clock time (default: when /clock is published)")
    clock.add_argument("--wall-time", dest="use_sim_time", action="store_false", help="log times on wall time")


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
    stopped = threading.Event()
    with BagWriter(args.out, storage=args.storage) as bag:
        try:
            # Ctrl-C / SIGTERM stop the loop below; the context shuts down after it, from this thread (rclpy's own
            # handlers shut it down from theirs, where a discovery tick could still be asking for topics).
            with rclpy.init(signal_handler_options=SignalHandlerOptions.NO), stop_on_signals(stopped.set):
                recorder = Recorder(bag, args.topics, args.use_sim_time)
                executor = SingleThreadedExecutor()
                executor.add_node(recorder)
                deadline = None if args.duration is None else time.monotonic() + args.duration
                try:
                    while not stopped.is_set() and (deadline is None or time.monotonic() < deadline):
                        executor.spin_once(timeout_sec=0.1)
                finally:
                    executor.shutdown()
                    recorder.destroy_node()
        except (KeyboardInterrupt, ExternalShutdownException):  # a signal before the handlers were in place
            pass
    counts = dict(recorder.counts) if recorder is not None else {}
    print(f"record: wrote {sum(counts.values())} messages to {args.out} ({args.storage}): {counts}")
    if recorder is not None and recorder.errors:
        print(f"record: skipped messages that were not CDR: {dict(recorder.errors)}", file=sys.stderr)
    missing = [topic for topic in (recorder.wanted if recorder else []) if topic not in counts]
    if missing:
        print(f"record: no messages on {missing}", file=sys.stderr)
    return 0
