"""The `jepa-ros` command line: subcommands listed, bad input reported without a traceback."""

import subprocess
import sys
from pathlib import Path


def jepa_ros(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jepa_ros.cli", *args], capture_output=True, text=True, timeout=120)


def test_help_lists_every_subcommand():
    result = jepa_ros("--help")
    assert result.returncode == 0
    for command in ("collect", "train", "evaluate", "record", "replay", "up", "demo"):
        assert command in result.stdout


def test_bad_input_is_one_clear_line(tmp_path: Path):
    result = jepa_ros("evaluate", "--bag", str(tmp_path), "--checkpoint", "checkpoints/default", "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "jepa-ros evaluate: error: BagError: no bags" in result.stderr
    assert str(tmp_path) in result.stderr
    assert "Traceback" not in result.stderr
