"""Bag health checks shared by offline evaluation and live replay (ROS-free, rosbags only).

`scan_bag` reads every record of a bag without deserialising it, so a truncated or
corrupt file fails here with its name, what is wrong and what could still be read
(jepa_wm.data.salvage), before any message is published. `find_gaps` reports holes in
a stream; callers skip them rather than interpolate across them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rosbags.highlevel import AnyReader

from jepa_wm.data.episodes import gap_breaks
from jepa_wm.data.rosbag_io import BagError, require_topics
from jepa_wm.data.salvage import describe_readable


@dataclass
class TopicSummary:
    """What one topic of a bag holds."""

    name: str
    msgtype: str
    count: int = 0
    first_ns: int = 0
    last_ns: int = 0
    log_times_ns: list[int] = field(default_factory=list)  # for gap reports


@dataclass
class BagSummary:
    """Topics, message counts and time range of one bag."""

    path: Path
    topics: dict[str, TopicSummary] = field(default_factory=dict)

    @property
    def start_ns(self) -> int:
        """Log time of the first message."""
        return min((t.first_ns for t in self.topics.values() if t.count), default=0)

    @property
    def end_ns(self) -> int:
        """Log time of the last message."""
        return max((t.last_ns for t in self.topics.values() if t.count), default=0)

    @property
    def duration_s(self) -> float:
        """Recorded span in seconds."""
        return (self.end_ns - self.start_ns) * 1e-9

    def describe(self) -> str:
        """One line per topic: name, type, count."""
        if not self.topics:
            return "no topics"
        topics = sorted(self.topics.values(), key=lambda t: t.name)
        return "; ".join(f"{t.name} [{t.msgtype}] x{t.count}" for t in topics)


@dataclass(frozen=True)
class Gap:
    """A hole in a stream: no message between these two stamps."""

    start_ns: int
    end_ns: int

    @property
    def seconds(self) -> float:
        """Length of the hole."""
        return (self.end_ns - self.start_ns) * 1e-9


def scan_bag(path: str | Path) -> BagSummary:
    """Read every record of a bag (no deserialisation); raise BagError saying what is wrong."""
    path = Path(path)
    if not path.exists():
        raise BagError(f"bag {path} does not exist")
    summary = BagSummary(path)
    try:
        with AnyReader([path]) as reader:
            for connection in reader.connections:
                summary.topics.setdefault(connection.topic, TopicSummary(connection.topic, connection.msgtype))
            for connection, log_ns, _ in reader.messages():
                _count(summary, connection.topic, connection.msgtype, log_ns)
    except Exception as err:  # rosbags raises many types (ReaderError, sqlite3, struct, zstd): all mean unreadable
        read = summary.describe() if any(t.count for t in summary.topics.values()) else "nothing"
        raise BagError(
            f"bag {path} is truncated or corrupt: {type(err).__name__}: {str(err).rstrip('.')}. "
            f"Read before the error: {read}. {describe_readable(path)}"
        ) from err
    return summary


def require_summary_topics(summary: BagSummary, wanted: dict[str, str]) -> None:
    """Raise BagError if a wanted topic (role -> name) is absent or empty, listing the bag's topics."""
    require_topics(summary.path, {t.name: t.msgtype for t in summary.topics.values()}, wanted,
                   {t.name: t.count for t in summary.topics.values()})


def find_gaps(stamps_ns: np.ndarray, factor: float = 3.0) -> list[Gap]:
    """Holes longer than ``factor`` x the median spacing of a sorted stamp series."""
    stamps = np.asarray(stamps_ns, dtype=np.int64)
    return [Gap(int(stamps[i]), int(stamps[i + 1])) for i in np.flatnonzero(gap_breaks(stamps, factor))]


def _count(summary: BagSummary, topic: str, msgtype: str, log_ns: int) -> None:
    info = summary.topics.setdefault(topic, TopicSummary(topic, msgtype))
    if info.count == 0:
        info.first_ns = log_ns
    info.count += 1
    info.log_times_ns.append(log_ns)
    info.first_ns = min(info.first_ns, log_ns)
    info.last_ns = max(info.last_ns, log_ns)
