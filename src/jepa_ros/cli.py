"""`jepa-ros` command line: the ROS-free subcommands plus those that talk over DDS."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from jepa_wm import command_line as core_cli

ROS_COMMANDS: dict[str, tuple[str, str]] = {
    "record": ("jepa_ros.record", "record camera, joint states and commands of a running graph to rosbag2"),
    "replay": ("jepa_ros.replay", "publish a bag over DDS at recorded timing and score a running world_model_node"),
    "up": ("jepa_ros.runner", "start a node graph (as the launch files do) on machines without ros2 launch"),
    "demo": ("jepa_ros.demo", "closed-loop demo: MuJoCo arm reaches goal images with the default world model"),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run a `jepa-ros` subcommand (errors propagate: for callers and tests)."""
    return core_cli.main(argv, {**core_cli.CORE_COMMANDS, **ROS_COMMANDS})


def console_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `jepa-ros` console script: bad input is reported in one line."""
    return core_cli.console_main(argv, {**core_cli.CORE_COMMANDS, **ROS_COMMANDS})


if __name__ == "__main__":
    sys.exit(console_main())
