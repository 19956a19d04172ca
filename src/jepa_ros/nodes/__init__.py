"""The jepa_ros nodes, and how each main() spins one."""

from __future__ import annotations

import faulthandler
import functools
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import rclpy
from rclpy.exceptions import (
    InvalidNamespaceException,
    InvalidNodeNameException,
    InvalidServiceNameException,
    InvalidTopicNameException,
)
from rclpy.executors import Executor, ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions
from rclpy.task import Future

from jepa_ros.params import check_override_types
from jepa_wm.config import ConfigError

F = TypeVar("F", bound=Callable[..., Any])
# a topic, service or node name given as a parameter or remap that ROS refuses: a start-up error like a bad value
NAME_ERRORS = (InvalidTopicNameException, InvalidServiceNameException, InvalidNodeNameException, InvalidNamespaceException)


def guarded(node: Node, callback: F) -> F:
    """``callback`` made unable to end the node: an exception is logged with its traceback instead.

    rclpy re-raises a callback's exception out of spin, which ends the node. Subscription and
    timer callbacks then return None; a service callback (request, response) returns its response
    with ``success`` false and the error in ``message`` where the response has those fields.
    """

    @functools.wraps(callback)
    def run(*args: Any) -> Any:
        try:
            return callback(*args)
        except Exception as err:  # noqa: BLE001 - any bug or unforeseen input: logged, and the node lives on
            node.get_logger().error(
                f"{callback.__name__} failed, input dropped:\n{traceback.format_exc()}", throttle_duration_sec=5.0
            )
            if len(args) == 2 and hasattr(args[1], "success"):  # a service's (request, response)
                response = args[1]
                response.success = False
                if hasattr(response, "message"):
                    response.message = f"internal error {type(err).__name__}: {err} (traceback in the log)"
                return response
            return None

    return run  # type: ignore[return-value]


class BackgroundSpinner:
    """Spins ``executor`` on a daemon thread until :meth:`stop`, for code that waits on the main thread.

    stop() lets the thread leave spin before the executor shuts down (and the caller destroys its nodes):
    the other order races with a callback still running ("cannot use Destroyable because
    destruction was requested", "cannot schedule new futures after shutdown").
    """

    def __init__(self, executor: Executor, on_exit: Callable[[], None] | None = None) -> None:
        self.executor = executor
        self.error: BaseException | None = None  # what ended spin early (a callback raised), re-raised by stop()
        self._on_exit = on_exit
        self._done: Future = Future()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin_until_future_complete(self._done)
        except BaseException as err:  # noqa: BLE001 - kept for stop() to raise on the main thread
            self.error = err
        finally:
            if self._on_exit is not None:
                self._on_exit()

    def stop(self, timeout: float = 10.0) -> None:
        """Leave spin (waiting up to ``timeout`` s for a callback in flight), then shut the executor down."""
        if not self._done.done():
            self._done.set_result(None)
        self._thread.join(timeout=timeout)
        self.executor.shutdown(timeout_sec=timeout)
        if self.error is not None:
            raise self.error


@contextmanager
def stop_on_signals(stop: Callable[[], None]) -> Iterator[None]:
    """SIGINT and SIGTERM call ``stop`` (on the main thread) while inside.

    With ``rclpy.init(signal_handler_options=SignalHandlerOptions.NO)`` this replaces rclpy's
    handlers, which shut the context down from a thread of their own while the node's threads
    may still be publishing or spinning: a rare segfault at Ctrl-C, and a double rcl_shutdown
    (ros2/rclpy#1352). Here the node's threads stop first, then the context shuts down once,
    from the main thread.
    """
    handlers = {sig: signal.signal(sig, lambda *_: stop()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


TEARDOWN_S = 3.0  # s the DDS teardown of a stopped node may take before the process leaves without it


def teardown_watchdog(name: str, seconds: float = TEARDOWN_S) -> threading.Timer:
    """Start a timer that ends the process if the node's DDS teardown has not returned within ``seconds``.

    Fast DDS can block in rcl's node teardown (rclpy's Node.destroy_node, after every publisher,
    subscription and timer of the node was destroyed): seen about once in 10-25 stops on a loaded 2-core
    machine. Nothing is published any more by then, so the process leaves, saying so, rather than wait
    for SIGKILL. Cancel the timer once the teardown returned.
    """

    def leave() -> None:
        print(f"{name}: DDS teardown did not finish within {seconds:g} s; exiting without it "
              "(the node publishes nothing any more)", file=sys.stderr, flush=True)
        os._exit(0)

    timer = threading.Timer(seconds, leave)
    timer.daemon = True
    timer.start()
    return timer


def spin_node(
    make_node: Callable[[], Node],
    name: str,
    startup_errors: tuple[type[Exception], ...],
    num_threads: int,
    args: list[str] | None = None,
    foreground: Callable[[Node, threading.Event], None] | None = None,
) -> int:
    """Build a node and spin it until SIGINT / SIGTERM, on a SingleThreadedExecutor for ``num_threads=1``.

    (rclpy's MultiThreadedExecutor busy-waits a core under use_sim_time: take one thread where
    the node can.) Callbacks spin on a helper thread; the main thread waits, or runs
    ``foreground(node, stopped)``, which returns once ``stopped`` is set (sim_node's physics, whose
    OpenGL context belongs to the main thread).

    An expected start-up error (bad parameter, checkpoint, ...) is printed in one line naming
    the node and the process exits with status 2; a clean shutdown exits with 0.
    """
    # A node that does not stop is killed by whoever started it; SIGUSR1 first makes it say where it hangs.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    watchdog: threading.Timer | None = None
    try:
        with rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO):
            try:
                node = make_node()
                try:
                    check_override_types(node, sys.argv if args is None else args)
                except ConfigError:
                    node.destroy_node()
                    raise
            except (*startup_errors, *NAME_ERRORS, ConfigError) as err:
                print(f"{name}: {' '.join(str(err).split())}", file=sys.stderr)  # one line
                return 2
            executor = SingleThreadedExecutor() if num_threads == 1 else MultiThreadedExecutor(num_threads=num_threads)
            executor.add_node(node)
            stopped = threading.Event()
            with stop_on_signals(stopped.set):
                spinner = BackgroundSpinner(executor, on_exit=stopped.set)
                try:
                    if foreground is None:
                        stopped.wait()
                    else:
                        foreground(node, stopped)
                finally:
                    stopped.set()
                    try:
                        spinner.stop()  # raises what a callback raised
                    finally:
                        watchdog = teardown_watchdog(name)  # over the node's teardown and the context's shutdown
                        node.destroy_node()
    except (KeyboardInterrupt, ExternalShutdownException):  # Ctrl-C while the node was still being built
        pass
    finally:
        if watchdog is not None:
            watchdog.cancel()
    return 0
