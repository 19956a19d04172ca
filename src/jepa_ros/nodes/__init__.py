"""The jepa_ros nodes, and how each main() spins one."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable

import rclpy
from rclpy.executors import Executor, ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.task import Future


class BackgroundSpinner:
    """Spins ``executor`` on a daemon thread until :meth:`stop`, for code that waits on the main thread.

    stop() lets the thread leave spin before the executor shuts down (and the caller destroys its nodes):
    the other order races with a callback still running ("cannot use Destroyable because
    destruction was requested", "cannot schedule new futures after shutdown").
    """

    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self._done: Future = Future()
        self._thread = threading.Thread(target=executor.spin_until_future_complete, args=(self._done,), daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Leave spin (waiting up to ``timeout`` s for a callback in flight), then shut the executor down."""
        if not self._done.done():
            self._done.set_result(None)
        self._thread.join(timeout=timeout)
        self.executor.shutdown(timeout_sec=timeout)


def spin_node(
    make_node: Callable[[], Node],
    name: str,
    startup_errors: tuple[type[Exception], ...],
    num_threads: int,
    args: list[str] | None = None,
) -> int:
    """Build a node and spin it until SIGINT / SIGTERM, on a SingleThreadedExecutor for ``num_threads=1``.

    (rclpy's MultiThreadedExecutor busy-waits a core under use_sim_time: take one thread where
    the node can.)

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
            executor = SingleThreadedExecutor() if num_threads == 1 else MultiThreadedExecutor(num_threads=num_threads)
            executor.add_node(node)
            try:
                executor.spin()
            finally:
                executor.shutdown()
                node.destroy_node()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    return 0
