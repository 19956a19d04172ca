"""Helpers for tests over real DDS: nodes as subprocesses, a test-side rclpy node, waits with deadlines."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node


class NodeProcess:
    """A python module run as its own process; output goes to a file so a full pipe never blocks it."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.log_path = Path(tempfile.mkstemp(prefix="jepa_node_", suffix=".log")[1])
        self._log = self.log_path.open("wb")
        # a crash (segfault) prints every thread's Python stack into the log the failing assert shows
        env = {**os.environ, "PYTHONFAULTHANDLER": "1", **(env or {})}
        self.process = subprocess.Popen([sys.executable, *args], stdout=self._log, stderr=subprocess.STDOUT, env=env)

    @classmethod
    def node(cls, module: str, env: dict[str, str] | None = None, **parameters: Any) -> NodeProcess:
        """Start ``python -m module --ros-args -p name:=value ...``."""
        args = ["-m", module, "--ros-args"]
        for name, value in parameters.items():
            text = str(value).lower() if isinstance(value, bool) else str(value)
            args += ["-p", f"{name}:={text}"]
        return cls(args, env)

    def output(self) -> str:
        """Everything the process printed so far."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        """Exit code, waiting at most ``timeout`` s (raises subprocess.TimeoutExpired)."""
        return self.process.wait(timeout)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        """Send ``sig``, wait with a deadline, kill if it does not exit; returns the exit code of a clean stop."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
                return None
        self._log.close()
        return self.process.returncode

    def close(self) -> None:
        """Kill if still running and remove the log file."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)
        self._log.close()
        self.log_path.unlink(missing_ok=True)


class ProbeGraph:
    """A private rclpy context with one node, spun on demand from the test thread."""

    def __init__(self, name: str = "test_probe", domain_id: int | None = None) -> None:
        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = Node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def spin_for(self, seconds: float) -> None:
        """Process callbacks for ``seconds``."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=min(0.05, max(0.0, end - time.monotonic())))

    def wait_for(self, condition: Callable[[], bool], timeout: float, what: str, process: NodeProcess | None = None) -> None:
        """Spin until ``condition()`` holds; fail after ``timeout`` s naming ``what`` (with the process's output)."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                log = f"\n--- process output ---\n{process.output()[-4000:]}" if process else ""
                raise AssertionError(f"timed out after {timeout} s waiting for {what}{log}")
            if process is not None and process.process.poll() is not None:
                raise AssertionError(f"process exited ({process.process.returncode}) while waiting for {what}\n{process.output()[-4000:]}")
            self.executor.spin_once(timeout_sec=0.05)

    def call(self, client: Any, request: Any, timeout: float, process: NodeProcess | None = None) -> Any:
        """Call a service with deadlines on discovery and on the response."""
        self.wait_for(client.service_is_ready, timeout, f"service {client.srv_name}", process)
        future = client.call_async(request)
        self.wait_for(future.done, timeout, f"response of {client.srv_name}", process)
        return future.result()

    def close(self) -> None:
        """Destroy the node and shut the context down."""
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
