"""Say what is still readable in a broken bag, so an error can report it.

Used only on the error path of rosbag_io: a truncated MCAP (no footer or summary) is
scanned record by record up to the break; a damaged sqlite3 file is counted per topic as
far as SQLite can go; metadata.yaml says what the bag was supposed to hold.
"""

from __future__ import annotations

import sqlite3
import struct
import sys
from collections import Counter
from pathlib import Path

import yaml

if sys.version_info >= (3, 14):
    from compression import zstd
else:
    from backports import zstd

MCAP_MAGIC = b"\x89MCAP0\r\n"
_OP_CHANNEL, _OP_MESSAGE, _OP_CHUNK = 0x04, 0x05, 0x06


def describe_readable(path: Path) -> str:
    """One sentence on what a damaged bag still holds (never raises)."""
    parts = []
    try:
        storage_files = [path] if path.is_file() else sorted(
            p for p in path.iterdir() if p.suffix in (".mcap", ".db3", ".zstd"))
        expected = _expected_counts(path / "metadata.yaml") if path.is_dir() else None
        if expected:
            parts.append("metadata.yaml lists " + _format(expected))
        for storage in storage_files:
            if storage.suffix == ".mcap":
                counts, stop = _scan_mcap(storage)
                parts.append(f"{storage.name} ({storage.stat().st_size} bytes) holds readable messages {_format(counts)}"
                             + (f" before {stop}" if stop else ""))
            elif storage.suffix == ".db3":
                parts.append(f"{storage.name}: {_count_sqlite(storage)}")
        if path.is_dir() and not storage_files:
            parts.append("the folder holds no .mcap or .db3 file")
    except Exception as err:  # a report about a broken file must not itself fail
        parts.append(f"could not scan it further ({err})")
    return "; ".join(parts) + "." if parts else "Nothing else could be read."


def _format(counts: Counter[str] | dict[str, int]) -> str:
    return "{" + ", ".join(f"{topic}: {n}" for topic, n in sorted(counts.items())) + "}" if counts else "{none}"


def _expected_counts(metadata: Path) -> dict[str, int] | None:
    if not metadata.is_file():
        return None
    info = yaml.safe_load(metadata.read_text())["rosbag2_bagfile_information"]
    return {t["topic_metadata"]["name"]: int(t["message_count"]) for t in info.get("topics_with_message_count", [])}


def _records(data: bytes, start: int) -> tuple[list[tuple[int, bytes]], str]:
    """Complete (opcode, body) records from ``start``; also where and why the scan stopped ('' at a clean end)."""
    records, offset = [], start
    while offset < len(data):
        if offset + 9 > len(data):
            return records, f"a truncated record header at byte {offset}"
        opcode, length = data[offset], struct.unpack_from("<Q", data, offset + 1)[0]
        if offset + 9 + length > len(data):
            return records, f"a record cut off at byte {offset} (needs {length} bytes, {len(data) - offset - 9} left)"
        records.append((opcode, data[offset + 9: offset + 9 + length]))
        offset += 9 + length
    return records, ""


def _scan_mcap(path: Path) -> tuple[Counter[str], str]:
    data = path.read_bytes()
    if not data.startswith(MCAP_MAGIC):
        return Counter(), "the start (the MCAP magic is missing)"
    body_end = len(data) - len(MCAP_MAGIC) if data.endswith(MCAP_MAGIC) and len(data) > 16 else len(data)
    top, stop = _records(data[:body_end], len(MCAP_MAGIC))
    topics: dict[int, str] = {}
    counts: Counter[str] = Counter()

    def visit(records: list[tuple[int, bytes]]) -> None:
        for opcode, body in records:
            if opcode == _OP_CHANNEL:
                channel_id, _schema, size = struct.unpack_from("<HHI", body)
                topics[channel_id] = body[8: 8 + size].decode(errors="replace")
            elif opcode == _OP_MESSAGE:
                counts[topics.get(struct.unpack_from("<H", body)[0], "?")] += 1
            elif opcode == _OP_CHUNK:
                visit(_chunk_records(body))

    visit(top)
    return counts, stop


def _chunk_records(body: bytes) -> list[tuple[int, bytes]]:
    (size,) = struct.unpack_from("<I", body, 28)
    compression = body[32: 32 + size].decode()
    (length,) = struct.unpack_from("<Q", body, 32 + size)
    payload = body[40 + size: 40 + size + length]
    if compression == "zstd":
        payload = zstd.decompress(payload)
    elif compression:
        return []  # lz4 and others are not scanned
    return _records(payload, 0)[0]


def _count_sqlite(path: Path) -> str:
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            rows = db.execute("SELECT topics.name, count(messages.id) FROM topics "
                              "LEFT JOIN messages ON topics.id = messages.topic_id GROUP BY topics.id").fetchall()
        return "readable messages " + _format(dict(rows))
    except sqlite3.Error as err:
        return f"SQLite cannot read it ({err})"
