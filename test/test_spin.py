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
