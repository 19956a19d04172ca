"""`jepa-ros replay`: publish a recorded bag over DDS at its recorded timing x rate, with /clock.

The bag's CDR bytes go out unchanged (`publish` of serialized bytes; ROS 1 bags are
converted to CDR first), so any node sees exactly what was recorded. Command topics are
not replayed: the node under test (world_model_node) produces them, they are recorded
to a new bag with the replay's clock and, with --score, compared with the recorded ones.
Gaps in the recording are reported and skipped in wall time; nothing is interpolated.
"""

from __future__ import annotations

import argparse
import importlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.convert.converter import generate_message_converter
from rosbags.highlevel import AnyReader
from tqdm import tqdm

from jepa_wm import topics
from jepa_wm.config import load_robot
from jepa_wm.data import BagError
from jepa_wm.data.rosbag_io import (
    COMPRESSED_IMAGE,
    FLOAT64_ARRAY,
    IMAGE,
    JOINT_STATE,
    JOINT_TRAJECTORY,
    TYPESTORE,
    BagWriter,
    decode_message,
)
from jepa_wm.evaluation import json_safe
from jepa_wm.evaluation.bagcheck import BagSummary, find_gaps, require_summary_topics, scan_bag
from jepa_wm.evaluation.live_score import CommandStream, command_target, score_commands

COMMAND_TYPES = (FLOAT64_ARRAY, JOINT_TRAJECTORY)
DEFAULT_COMMAND_TOPICS = (topics.in_bag(topics.POSITION_COMMANDS), topics.in_bag(topics.TRAJECTORY_COMMANDS))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `jepa-ros replay`."""
    parser.add_argument("--bag", required=True, help="rosbag2 folder, .mcap, .db3 or ROS 1 .bag")
    parser.add_argument("--rate", type=float, default=1.0, help="playback speed: recorded timing x R")
    parser.add_argument("--topics", nargs="+", default=None,
                        help="replay only these topics (default: all but commands and /clock)")
    parser.add_argument("--record", default=None, help="record the live commands to this new bag folder")
    parser.add_argument("--score", action="store_true", help="compare live commands with the recorded ones")
    parser.add_argument("--command-topics", nargs="+", default=None,
                        help=f"live command topics to record and score (default: {' '.join(DEFAULT_COMMAND_TOPICS)}); "
                        "the bag's own command topics are the reference")
    parser.add_argument("--joint-states-topic", default=topics.in_bag(topics.JOINT_STATES), help="measured joints (for scoring actions)")
    parser.add_argument("--robot", default="jepa_arm", help="robot preset: its joint order is the commands' order")
    parser.add_argument("--image-topic", default=topics.in_bag(topics.CAMERA), help="camera topic (for --goal)")
    parser.add_argument("--goal", choices=("none", "first", "last"), default="none", help="send this bag frame as goal")
    parser.add_argument("--goal-topic", default="/world_model_node/goal_image", help="where --goal sends the frame")
    parser.add_argument("--enable", default="", help="SetBool service to call with true before replaying")
    parser.add_argument("--max-gap", type=float, default=1.0, help="skip silences longer than this (bag s)")
    parser.add_argument("--settle", type=float, default=1.0, help="wait this long (s) for late commands at the end")
    parser.add_argument("--wait-subscribers", type=float, default=5.0, help="wait up to this long (s) for subscribers")
    parser.add_argument("--clock-rate", type=float, default=100.0, help="/clock messages per second of wall time")


def run(args: argparse.Namespace) -> int:
    """Entry point: check the bag, replay it, record and score the live commands."""
    import rclpy

    for name in ("rate", "clock_rate", "max_gap"):
        if not getattr(args, name) > 0:
            raise ValueError(f"--{name.replace('_', '-')} {getattr(args, name)}: expected > 0")
    if args.record and Path(args.record).exists():
        raise FileExistsError(f"--record {args.record} exists already: a bag is written into a new folder")
    summary = scan_bag(args.bag)
    replayed, commands = _select_topics(summary, args)
    for topic in replayed:
        for gap in find_gaps(np.asarray(summary.topics[topic].log_times_ns)):
            after_s = (gap.start_ns - summary.start_ns) * 1e-9
            print(f"gap on {topic}: {gap.seconds:.2f} s without messages after {after_s:.2f} s of the bag "
                  "(nothing is made up for it)")
    from rclpy.signals import SignalHandlerOptions

    from jepa_ros.nodes import stop_on_signals

    # Ctrl-C / SIGTERM stop the replay; the recorded commands are still written and scored, and the context
    # shuts down after the executor thread, from this thread (not from rclpy's handler, under a publish).
    with rclpy.init(signal_handler_options=SignalHandlerOptions.NO):
        replayer = BagReplayer(summary, replayed, commands, args)
        try:
            with stop_on_signals(replayer.stopped.set):
                replayer.play()
        finally:
            replayer.shutdown()
    if args.record:
        replayer.write_bag(Path(args.record))
        print(f"recorded {len(replayer.live)} live commands to {args.record}")
    if args.score:
        joint_names = load_robot(args.robot).joint_names
        reference = recorded_command_topics(summary)
        report = score_replay(summary.path, replayer.live, reference, args.joint_states_topic, joint_names)
        print(json.dumps(json_safe(report)))  # NaN (e.g. no live command) becomes null
    return 0


def _select_topics(summary: BagSummary, args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """Topics to publish and live command topics to record; missing requested topics list what the bag has."""
    if args.topics:
        require_summary_topics(summary, {f"requested topic {i + 1}": topic for i, topic in enumerate(args.topics)})
        replayed = list(args.topics)
    else:
        replayed = [t.name for t in summary.topics.values() if t.msgtype not in COMMAND_TYPES and t.name != topics.CLOCK]
    if args.score:
        if not recorded_command_topics(summary):
            raise BagError(f"--score needs recorded commands ({FLOAT64_ARRAY} or {JOINT_TRAJECTORY}) in "
                               f"{summary.path}; it has: {summary.describe()}")
        require_summary_topics(summary, {"joint states": args.joint_states_topic})
    if args.goal != "none":
        require_summary_topics(summary, {"camera": args.image_topic})
    return replayed, list(args.command_topics or DEFAULT_COMMAND_TOPICS)


def recorded_command_topics(summary: BagSummary) -> list[str]:
    """The bag's own command topics: the reference the live commands are scored against."""
    return [t.name for t in summary.topics.values() if t.msgtype in COMMAND_TYPES and t.count]


def message_class(msgtype: str) -> type:
    """'sensor_msgs/msg/Image' -> the rclpy message class; a clear error when its package is not installed."""
    package, kind, name = msgtype.split("/")
    try:
        return getattr(importlib.import_module(f"{package}.{kind}"), name)
    except (ImportError, AttributeError) as err:
        raise BagError(
            f"message type {msgtype} has no Python package here ({err}); install its ROS package"
        ) from err


def iter_cdr(path: Path, topics: list[str]) -> Iterator[tuple[str, str, int, bytes]]:
    """(topic, msgtype, log_ns, CDR bytes) in log-time order; ROS 1 payloads are converted to CDR."""
    with AnyReader([path], default_typestore=TYPESTORE) as reader:
        connections = [c for c in reader.connections if c.topic in topics]
        to_cdr: dict[str, Any] = {}
        for connection, log_ns, raw in reader.messages(connections=connections):
            if not reader.is2 and connection.msgtype not in to_cdr:
                # ROS 1 layouts differ (Header.seq): migrate field by field to the ROS 2 type, as rosbags-convert does.
                to_cdr[connection.msgtype] = generate_message_converter(
                    reader.typestore, TYPESTORE, connection.msgtype, connection.msgtype, {}, src_is2=False, dst_is2=True
                )
            cdr = raw if reader.is2 else to_cdr[connection.msgtype](raw)
            yield connection.topic, connection.msgtype, log_ns, bytes(cdr)


class BagReplayer:
    """Publishes a bag with /clock from the calling thread while an executor thread records commands."""

    def __init__(self, summary: BagSummary, replayed: list[str], commands: list[str], args: argparse.Namespace) -> None:
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from rosgraph_msgs.msg import Clock

        from jepa_ros.conversions import clock_message
        from jepa_ros.nodes import BackgroundSpinner

        self.summary, self.replayed, self.args = summary, replayed, args
        self.node = Node("bag_replay")
        self._clock_message = clock_message
        self.clock_pub = self.node.create_publisher(Clock, topics.CLOCK, 10)
        self.publishers = {}
        for topic in replayed:
            try:
                msg_class = message_class(summary.topics[topic].msgtype)
            except BagError as err:
                if args.topics:  # asked for by name: fail
                    raise
                print(f"warning: not replaying {topic}: {err}")
                continue
            self.publishers[topic] = self.node.create_publisher(msg_class, topic, 10)
        self.replayed = list(self.publishers)
        self.bag_now_ns = summary.start_ns  # replay clock shared with the recording callbacks
        self.live: list[tuple[str, str, int, bytes]] = []
        self._lock = threading.Lock()
        self.stopped = threading.Event()  # Ctrl-C / SIGTERM: stop publishing; what was recorded is kept
        for topic in commands:
            msgtype = summary.topics[topic].msgtype if topic in summary.topics else _default_type(topic)
            self.node.create_subscription(message_class(msgtype), topic, self._recorder(topic, msgtype), 10, raw=True)
        executor = SingleThreadedExecutor()
        executor.add_node(self.node)
        self._spinner = BackgroundSpinner(executor)

    def _recorder(self, topic: str, msgtype: str) -> Any:
        def store(raw: bytes) -> None:
            with self._lock:
                self.live.append((topic, msgtype, self.bag_now_ns, bytes(raw)))

        return store

    def _publish_clock(self, ns: int) -> None:
        self.bag_now_ns = ns
        self.clock_pub.publish(self._clock_message(ns))

    def _wait_for_subscribers(self) -> None:
        def subscribed() -> bool:
            return any(p.get_subscription_count() for p in self.publishers.values())

        deadline = time.monotonic() + self.args.wait_subscribers
        while time.monotonic() < deadline and not subscribed() and not self.stopped.is_set():
            time.sleep(0.05)
        if not subscribed():
            print(f"warning: nobody subscribes to {self.replayed} after {self.args.wait_subscribers} s; "
                  "replaying anyway")

    def prepare(self) -> None:
        """Send the goal frame and enable the node, as asked."""
        self._publish_clock(self.summary.start_ns)
        if self.args.goal != "none":
            self._send_goal()
        if self.args.enable:
            self._enable()

    def _send_goal(self) -> None:
        """The bag's first or last camera frame to the goal topic, as sensor_msgs/Image."""
        goal = None
        for _, msgtype, _, cdr in iter_cdr(self.summary.path, [self.args.image_topic]):
            goal = goal or (msgtype, cdr)
            if self.args.goal == "last":
                goal = (msgtype, cdr)
        msgtype, cdr = goal
        if msgtype == COMPRESSED_IMAGE:  # the goal topic takes raw images
            cdr = raw_image_cdr(decode_message(msgtype, TYPESTORE.deserialize_cdr(cdr, msgtype), "goal frame: "))
        goal_pub = self.node.create_publisher(message_class(IMAGE), self.args.goal_topic, 10)
        deadline = time.monotonic() + self.args.wait_subscribers
        while goal_pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        goal_pub.publish(cdr)

    def _enable(self) -> None:
        """Call the SetBool service with true, with deadlines on discovery and on the answer."""
        from std_srvs.srv import SetBool

        name, timeout = self.args.enable, self.args.wait_subscribers
        client = self.node.create_client(SetBool, name)
        if not client.wait_for_service(timeout_sec=timeout):
            raise TimeoutError(f"service {name} not available after {timeout} s")
        future = client.call_async(SetBool.Request(data=True))
        deadline = time.monotonic() + timeout
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not future.done() or not future.result().success:
            answer = future.result() if future.done() else f"no answer within {timeout} s"
            raise RuntimeError(f"{name} did not enable the node: {answer}")

    def play(self) -> None:
        """Publish every message at its recorded time / rate; /clock ticks in between."""
        self._wait_for_subscribers()
        self.prepare()
        rate, tick = self.args.rate, 1.0 / self.args.clock_rate
        max_gap_ns = int(self.args.max_gap * 1e9)
        start_ns, skipped_ns, previous_ns = self.summary.start_ns, 0, None
        wall_start = time.monotonic()
        total = sum(self.summary.topics[t].count for t in self.replayed)
        messages = tqdm(iter_cdr(self.summary.path, self.replayed), total=total, desc="replay", unit="msg")
        for topic, _, log_ns, cdr in messages:
            if self.stopped.is_set():
                print(f"stopped after {messages.n} of {total} messages")
                return
            if previous_ns is not None and log_ns - previous_ns > max_gap_ns:
                skipped_ns += log_ns - previous_ns - max_gap_ns
                print(f"gap: no message for {(log_ns - previous_ns) * 1e-9:.2f} s; skipping ahead (not interpolated)")
            previous_ns = log_ns
            due = wall_start + (log_ns - start_ns - skipped_ns) * 1e-9 / rate
            while (now := time.monotonic()) < due and not self.stopped.is_set():
                self._publish_clock(min(log_ns, start_ns + skipped_ns + int((now - wall_start) * rate * 1e9)))
                time.sleep(min(tick, due - now))
            self._publish_clock(log_ns)
            self.publishers[topic].publish(cdr)
        settle_end = time.monotonic() + self.args.settle
        while time.monotonic() < settle_end and not self.stopped.is_set():
            time.sleep(tick)  # the node answers the last frames; the clock stands still

    def shutdown(self) -> None:
        """Stop the executor thread and destroy the node."""
        self._spinner.stop()
        self.node.destroy_node()

    def write_bag(self, out: Path) -> None:
        """The live commands, stamped with the replay clock, as a new MCAP rosbag2."""
        if out.exists():
            raise FileExistsError(f"--record {out} exists already: a bag is written into a new folder")
        with BagWriter(out) as bag:
            for topic, msgtype, stamp_ns, cdr in self.live:
                bag.write_serialized(topic, msgtype, stamp_ns, cdr)


def raw_image_cdr(rgb: np.ndarray) -> bytes:
    """uint8 [H, W, 3] RGB -> CDR of a sensor_msgs/Image (rgb8)."""
    height, width, _ = rgb.shape
    header = TYPESTORE.types["std_msgs/msg/Header"](
        stamp=TYPESTORE.types["builtin_interfaces/msg/Time"](sec=0, nanosec=0), frame_id="")
    image = TYPESTORE.types[IMAGE](header=header, height=height, width=width, encoding="rgb8", is_bigendian=0,
                                   step=width * 3, data=np.ascontiguousarray(rgb).reshape(-1))
    return bytes(TYPESTORE.serialize_cdr(image, IMAGE))


def _default_type(topic: str) -> str:
    return JOINT_TRAJECTORY if topic.endswith("joint_trajectory") else FLOAT64_ARRAY


def score_replay(
    path: Path, live: list[tuple[str, str, int, bytes]], commands: list[str], joint_topic: str,
    joint_names: tuple[str, ...],
) -> dict:
    """Decode the recorded joints and commands and the live commands; compare them (see replay_score).

    ``joint_names`` is the controller's joint order (the robot preset's), which a
    Float64MultiArray command follows; joint states are reordered to it by name.
    """
    joint_stamps, joint_rows, recorded_messages = [], [], []
    for topic, msgtype, log_ns, cdr in iter_cdr(path, [joint_topic, *commands]):
        payload = decode_message(msgtype, TYPESTORE.deserialize_cdr(cdr, msgtype), f"{path} {topic}: ")
        if msgtype == JOINT_STATE:
            missing = [n for n in joint_names if n not in payload.names]
            if missing:
                raise BagError(f"{path} {topic}: joint state names {list(payload.names)} lack {missing}")
            joint_stamps.append(log_ns)
            joint_rows.append(payload.positions[[payload.names.index(n) for n in joint_names]])
        else:
            recorded_messages.append((log_ns, payload, f"{path} {topic}"))
    recorded, live_stream = CommandStream(joint_names), CommandStream(joint_names)
    for log_ns, payload, where in recorded_messages:
        recorded.add(log_ns, command_target(payload, joint_names, where))
    for topic, msgtype, stamp_ns, cdr in live:
        payload = decode_message(msgtype, TYPESTORE.deserialize_cdr(cdr, msgtype), f"live {topic}: ")
        live_stream.add(stamp_ns, command_target(payload, joint_names, f"live {topic}"))
    return score_commands(live_stream, recorded, np.asarray(joint_stamps), np.stack(joint_rows))
