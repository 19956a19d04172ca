"""The jepa_ros nodes, and how each main() spins one."""

from __future__ import annotations

import sys
from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node


def spin_node(
    make_node: Callable[[], Node],
    name: str,
    startup_errors: tuple[type[Exception], ...],
    num_threads: int,
    args: list[str] | None = None,
) -> int:
    """Build a node and spin it on a MultiThreadedExecutor until SIGINT / SIGTERM.

    An expected start-up error (bad parameter, checkpoint, ...) is printed in one line naming
    the node and the process exits with status 2; a clean shutdown exits with 0.
    """
    try:
        with rclpy.init(args=args):
            try:
                node = make_node()
            except startup_errors as err:
                print(f"{name}: {err}", file=sys.stderr)
                return 2
            executor = MultiThreadedExecutor(num_threads=num_threads)
            executor.add_node(node)
            try:
                executor.spin()
            finally:
                executor.shutdown()
                node.destroy_node()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    return 0
