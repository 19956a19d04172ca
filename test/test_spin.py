"""How the nodes spin and stop: errors in callbacks surface, signals stop in order."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from jepa_ros.nodes import BackgroundSpinner, stop_on_signals
from ros_processes import ProbeGraph


def test_a_callback_error_ends_the_spin_and_is_raised_by_stop():
    graph = ProbeGraph("spinner_probe")
    ended = threading.Event()

    def fail() -> None:
        raise RuntimeError("callback failed on purpose")

    graph.node.create_timer(0.01, fail)
    spinner = BackgroundSpinner(graph.executor, on_exit=ended.set)
    try:
        assert ended.wait(10.0), "the spin thread did not end on the callback's error"
        with pytest.raises(RuntimeError, match="callback failed on purpose"):
            spinner.stop()
    finally:
        graph.close()


def test_a_stopped_spinner_runs_callbacks_until_stop_and_raises_nothing():
    graph = ProbeGraph("spinner_probe")
    ticks: list[int] = []
    ended = threading.Event()
    graph.node.create_timer(0.01, lambda: ticks.append(1))
    spinner = BackgroundSpinner(graph.executor, on_exit=ended.set)
    try:
        assert not ended.wait(0.5), "the spin thread ended by itself"
        spinner.stop()
        assert ended.is_set() and len(ticks) > 5, len(ticks)
    finally:
        graph.close()


def test_sigint_and_sigterm_call_stop_inside_and_the_handlers_come_back_after():
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    calls: list[str] = []
    with stop_on_signals(lambda: calls.append("stop")):
        os.kill(os.getpid(), signal.SIGINT)  # no KeyboardInterrupt: the handler runs instead
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)  # Python runs the handlers on the main thread between bytecodes
    assert calls == ["stop", "stop"]
    assert {sig: signal.getsignal(sig) for sig in before} == before


def test_a_teardown_that_hangs_ends_the_process_saying_so_and_one_that_returns_does_not():
    import subprocess
    import sys

    script = ("import time; from jepa_ros.nodes import teardown_watchdog\n"
              "timer = teardown_watchdog('probe_node', 0.5)\n"
              "time.sleep(float(__import__('sys').argv[1]))\n"
              "timer.cancel(); print('returned')\n")
    hung = subprocess.run([sys.executable, "-c", script, "30"], capture_output=True, text=True, timeout=20)
    assert hung.returncode == 0 and "returned" not in hung.stdout
    assert "probe_node: DDS teardown did not finish within 0.5 s; exiting without it" in hung.stderr
    quick = subprocess.run([sys.executable, "-c", script, "0.1"], capture_output=True, text=True, timeout=20)
    assert quick.returncode == 0 and "returned" in quick.stdout and not quick.stderr
