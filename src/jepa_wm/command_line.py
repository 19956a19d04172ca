"""`jepa-ros` command line: ROS-free subcommands. jepa_ros.cli adds the ROS ones.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; this file only wires them, importing a module when it is used.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

# subcommand -> (module, one-line help)
CORE_COMMANDS: dict[str, tuple[str, str]] = {
    "collect": ("jepa_wm.data.collect", "generate exploration episodes from the MuJoCo arm into rosbag2 files"),
    "train": ("jepa_wm.training.command", "train the JEPA world model from rosbag2 episodes"),
    "evaluate": ("jepa_wm.evaluation.command", "evaluate a checkpoint offline on recorded rosbags"),
    "calibrate": ("jepa_wm.calibration", "calibrate when the arm counts as arrived at a goal (simulated arm or exploration bags) into a checkpoint"),
    "import-vjepa2": ("jepa_wm.models.vjepa2_files", "write an official V-JEPA 2 / 2-AC .pt file as a checkpoint folder"),
}


def build_parser(commands: dict[str, tuple[str, str]]) -> argparse.ArgumentParser:
    """Parser with one subparser per command; modules are imported lazily."""
    parser = argparse.ArgumentParser(prog="jepa-ros", description="JEPA world models for ROS 2 robot arms")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # the subcommand is the first word that is not an option; later words may be its arguments
    chosen = next((word for word in sys.argv[1:] if not word.startswith("-")), None)
    for name, (module_name, help_text) in commands.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(_module=module_name)
        # Only the chosen subcommand's module is imported (torch and rclpy are slow to load).
        if name == chosen:
            importlib.import_module(module_name).add_arguments(sub)
    return parser


def main(argv: Sequence[str] | None = None, commands: dict[str, tuple[str, str]] | None = None) -> int:
    """Entry point of the ROS-free command line."""
    commands = CORE_COMMANDS if commands is None else commands
    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    parser = build_parser(commands)
    args = parser.parse_args(argv)
    module = importlib.import_module(args._module)
    return int(module.run(args) or 0)


def console_main(argv: Sequence[str] | None = None, commands: dict[str, tuple[str, str]] | None = None) -> int:
    """main() for the console: bad input is one line naming what is wrong (exit 2), not a traceback."""
    try:
        return main(argv, commands)
    except (ValueError, OSError, RuntimeError) as err:
        # Bad input (a config, bag, checkpoint or image) already says what is wrong; the traceback
        # only hides it. JEPA_ROS_DEBUG=1 shows the traceback too.
        if os.environ.get("JEPA_ROS_DEBUG"):
            raise
        command = next((word for word in sys.argv[1:] if not word.startswith("-")), "")
        print(f"jepa-ros {command}: error: {type(err).__name__}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(console_main())
