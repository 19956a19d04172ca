"""The bag-reading options every command that reads bags shares: topics, joints, command order, period.

A robot preset (``--robot``) states them for its arm: its topics, its joint names and, for
Float64MultiArray commands (which carry no names), its controller's joint order. Each flag
overrides the preset.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass

from jepa_wm import topics
from jepa_wm.config import ConfigError, RobotConfig, load_robot
from jepa_wm.data.episodes import BagTopics


@dataclass(frozen=True)
class BagReading:
    """How to read a set of bags: which topics, which joints in which order, at which period."""

    topics: BagTopics = BagTopics()
    joint_names: tuple[str, ...] | None = None  # None: the first joint state's names and order
    period: float | None = None  # s; None: the camera's rate
    robot: RobotConfig | None = None  # the preset named by --robot, if any


def add_bag_arguments(parser: argparse.ArgumentParser) -> None:
    """The bag-reading flags of `jepa-ros train` and `jepa-ros evaluate`."""
    group = parser.add_argument_group("reading the bags")
    group.add_argument("--robot", default=None,
                       help="robot preset (config/robots/<name>.yaml or a path): its topics, joints and command order")
    group.add_argument("--image-topic", default=None, help="camera topic (Image, or its /compressed sibling)")
    group.add_argument("--joint-states-topic", default=None, help="sensor_msgs/JointState topic")
    group.add_argument("--command-topic", default=None, help="std_msgs/Float64MultiArray command topic")
    group.add_argument("--trajectory-topic", default=None, help="trajectory_msgs/JointTrajectory command topic")
    group.add_argument("--joints", nargs="+", default=None,
                       help="joints to read from the joint states, in this order (others, e.g. a gripper, are left out)")
    group.add_argument("--command-joints", nargs="+", default=None,
                       help="joint order of Float64MultiArray commands (the controller's joint list)")
    group.add_argument("--period", type=float, default=None, help="resample episodes to this control period (s)")
    group.add_argument("--stamps", choices=("header", "arrival"), default="header",
                       help="pair frames and joint states by header stamps, or by arrival time in the recorder "
                            "(a camera stamping on its own clock)")


def bag_reading(args: argparse.Namespace) -> BagReading:
    """BagReading from the flags of :func:`add_bag_arguments` (preset first, each flag over it)."""
    bag_topics, joint_names, robot = BagTopics(), None, None
    if args.robot:
        robot = load_robot(args.robot)
        command_topic = robot.command_topic if robot.command_interface == "position" else BagTopics.commands
        trajectory_topic = robot.command_topic if robot.command_interface == "trajectory" else BagTopics.trajectory
        bag_topics = BagTopics(image=topics.in_bag(robot.camera_topic), joint_states=topics.in_bag(robot.joint_states_topic),
                               commands=topics.in_bag(command_topic), trajectory=topics.in_bag(trajectory_topic),
                               command_joints=robot.joint_names)
        joint_names = robot.joint_names
    overrides = {"image": args.image_topic, "joint_states": args.joint_states_topic, "commands": args.command_topic,
                 "trajectory": args.trajectory_topic}
    bag_topics = dataclasses.replace(bag_topics, **{k: topics.in_bag(v) for k, v in overrides.items() if v})
    if args.stamps != bag_topics.stamps:
        bag_topics = dataclasses.replace(bag_topics, stamps=args.stamps)
    if args.command_joints:
        bag_topics = dataclasses.replace(bag_topics, command_joints=tuple(args.command_joints))
    if args.joints:
        joint_names = tuple(args.joints)
    if args.period is not None and not args.period > 0:
        raise ConfigError(f"--period {args.period}: expected a control period > 0 s")
    return BagReading(bag_topics, joint_names, args.period, robot)
