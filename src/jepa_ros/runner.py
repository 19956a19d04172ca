"""`jepa-ros up <graph> [name:=value ...]`: start a node graph as separate processes, no `ros2 launch`.

The graph comes from :mod:`jepa_ros.graphs`, the description the launch files use too. Each node
runs as ``<executable> [arguments] --ros-args -r __node:=<name> --params-file <file> -r from:=to
-p name:=value`` in its own process group; its output is prefixed with its name. Ctrl-C or
SIGTERM stops the graph: SIGINT to every group, then SIGTERM, then SIGKILL (after SIGUSR1, on which a node
prints its threads' stacks), each after a deadline,
so no process is left behind.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from jepa_ros.graphs import (
    GRAPHS,
    PACKAGE,
    Argument,
    Graph,
    IncludeSpec,
    NodeSpec,
    PresetField,
    SharePath,
    Value,
    Xacro,
    fill_template,
    is_text,
)
from jepa_wm.config import ConfigError, load_robot, package_share

_TRUE, _FALSE = ("true", "1"), ("false", "0")  # what launch's IfCondition accepts


def resolve_arguments(graph: Graph, overrides: Sequence[str]) -> dict[str, str]:
    """Argument values of ``graph``: defaults, replaced by ``name:=value`` overrides (validated)."""
    values = {a.name: _default(a.default) for a in graph.arguments if not isinstance(a.default, (PresetField, type(None)))}
    arguments = {argument.name: argument for argument in graph.arguments}
    for override in overrides:
        name, separator, value = override.partition(":=")
        if not separator:
            raise ConfigError(f"argument {override!r}: expected name:=value")
        if name not in arguments:
            raise ConfigError(f"graph {graph.name} has no argument {name!r}; arguments are {sorted(arguments)}")
        _check_kind(arguments[name], value)
        values[name] = value
    required = [a.name for a in graph.arguments if a.default is None and a.name not in values]
    if required:
        raise ConfigError(f"graph {graph.name} needs {', '.join(f'{name}:=...' for name in required)}")
    for argument in graph.arguments:  # preset defaults once the preset argument is known
        if isinstance(argument.default, PresetField) and argument.name not in values:
            robot = load_robot(values[argument.default.robot_argument])
            values[argument.name] = str(getattr(robot, argument.default.field))
    return values


def _check_kind(argument: Argument, value: str) -> None:
    if argument.choices and value not in argument.choices:
        raise ConfigError(f"argument {argument.name}:={value!r}: expected one of {list(argument.choices)}")
    parse = {"int": int, "float": float}.get(argument.kind)
    try:
        if parse is not None:
            parse(value)
    except ValueError:
        raise ConfigError(f"argument {argument.name}:={value!r}: expected {'an integer' if parse is int else 'a number'}") from None


def is_true(value: str, name: str = "condition") -> bool:
    """Launch-style truth of an argument value; anything but true/false is an error."""
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ConfigError(f"{name}={value!r}: expected true or false")


def condition_holds(condition: str, values: dict[str, str]) -> bool:
    """Whether an entry with ``condition`` ("arg", "!arg" or empty) runs."""
    if not condition:
        return True
    name = condition.lstrip("!")
    holds = is_true(values[name], name)
    return not holds if condition.startswith("!") else holds


def _default(default: str | SharePath | PresetField | None) -> str:
    if default is None:
        return "(required)"
    if isinstance(default, PresetField):
        return f"(robot preset's {default.field})"
    return str(package_share() / default.path) if isinstance(default, SharePath) else default


def render_value(value: Value, values: dict[str, str]) -> str:
    """A value as command-line text: placeholders filled, package paths made absolute."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, SharePath):
        return str((package_share() / value.path).resolve())
    if isinstance(value, Xacro):
        import xacro  # only graphs with a robot_description need it

        mappings = {name: render_value(text, values) for name, text in value.mappings}
        return xacro.process_file(str(package_share() / value.path), mappings=mappings).toxml()
    if isinstance(value, str):
        return fill_template(value, values)
    return str(value)


def find_executable(package: str, executable: str, ros_args: bool = True) -> str:
    """Path of a package's executable: ament index ``lib/<package>``, this Python's bin folder, then PATH."""
    searched: list[str] = []
    if ros_args:
        try:
            from ament_index_python.packages import get_package_prefix

            candidate = Path(get_package_prefix(package)) / "lib" / package / executable
            searched.append(str(candidate))
            if os.access(candidate, os.X_OK):
                return str(candidate)
        except (ImportError, LookupError, OSError) as err:  # no ament index here, or no such package
            searched.append(f"ament index ({err})")
        if package == PACKAGE:  # pip / venv install: console scripts sit beside the interpreter
            candidate = Path(sys.executable).parent / executable
            searched.append(str(candidate))
            if os.access(candidate, os.X_OK):
                return str(candidate)
    on_path = shutil.which(executable)
    if on_path and (not ros_args or package == PACKAGE):
        return on_path
    searched.append(f"PATH for {executable}")
    raise ConfigError(f"executable {executable!r} of package {package!r} not found; searched {searched}")


@dataclass
class Command:
    """One process of a started graph."""

    name: str
    argv: list[str]
    after: str = ""
    oneshot: bool = False
    ends_graph: bool = False
    process: subprocess.Popen | None = None
    reader: threading.Thread | None = None


def build_commands(graph: Graph, values: dict[str, str], workdir: Path, resolve: bool = True) -> list[Command]:
    """Command lines of every entry of ``graph`` whose condition holds.

    With ``resolve`` every executable must be found (all missing ones are named in one error);
    without it the bare executable names stand in (for --dry-run on machines lacking them).
    """
    commands, missing = [], []
    arguments = {argument.name: argument for argument in graph.arguments}
    for item in (*graph.includes, *graph.nodes):
        if not condition_holds(item.condition, values):
            continue
        try:
            program = _program(item) if resolve else None
        except ConfigError as err:
            missing.append(str(err))
            continue
        if isinstance(item, IncludeSpec):
            argv = [render_value(part, values) for part in item.command]
            commands.append(Command(item.name, [program or argv[0], *argv[1:]]))
        else:
            commands.append(_node_command(item, values, workdir, program or item.executable, arguments))
    if missing:
        raise ConfigError(f"graph {graph.name} cannot start here:\n  " + "\n  ".join(missing))
    return commands


def _program(item: NodeSpec | IncludeSpec) -> str:
    if isinstance(item, NodeSpec):
        return find_executable(item.package, item.executable, item.ros_args)
    program = shutil.which(str(item.command[0]))
    if program is None:
        raise ConfigError(f"{item.name}: {item.command[0]!r} (run in place of {item.package}/{item.launch_file}) is not on PATH")
    return program


def _node_command(node: NodeSpec, values: dict[str, str], workdir: Path, program: str, arguments: dict[str, Argument]) -> Command:
    argv = [program]
    argv += [render_value(argument, values) for argument in node.arguments]
    if not node.ros_args:
        return Command(node.name, argv, node.after, node.oneshot, node.ends_graph)
    argv += ["--ros-args", "-r", f"__node:={node.name}"]
    for param_file in node.param_files:
        argv += ["--params-file", render_value(param_file, values)]
    # Long (multi-line) values such as robot_description go through a parameter file.
    long_values = {name: render_value(v, values) for name, v in node.parameters if isinstance(v, Xacro)}
    if long_values:
        path = workdir / f"{node.name}_parameters.yaml"
        path.write_text(yaml.safe_dump({"/**": {"ros__parameters": long_values}}))
        argv += ["--params-file", str(path)]
    for source, target in node.remaps:
        argv += ["-r", f"{fill_template(source, values)}:={fill_template(target, values)}"]
    for name, value in node.parameters:
        if not isinstance(value, Xacro):
            text = render_value(value, values)
            # rcl reads a -p value as YAML: strings are quoted so "", "true" or "64" stay strings
            argv += ["-p", f"{name}:={json.dumps(text) if is_text(value, arguments) or not text else text}"]
    return Command(node.name, argv, node.after, node.oneshot, node.ends_graph)


# Resolved in the parent: between fork and exec the child only calls an already loaded function.
_PRCTL = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None
_PR_SET_PDEATHSIG = 1


def _prepare_child() -> None:
    """In the child, before exec: default SIGINT / SIGTERM, and SIGTERM when the runner dies.

    A runner started in the background by a script inherits SIGINT ignored (POSIX shells do that
    for `&` jobs) and would pass that on, so the nodes would miss the SIGINT that stops them
    cleanly. PR_SET_PDEATHSIG (Linux) sends SIGTERM if the runner dies without cleaning up.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


class GraphRunner:
    """Starts the processes of a graph in order and stops them all."""

    def __init__(self, commands: list[Command], env: dict[str, str], output=None) -> None:
        self.commands = commands
        self.env = env
        self.output = output or sys.stdout
        self._print_lock = threading.Lock()
        self.failure: str | None = None
        self.hurry = threading.Event()  # set while stopping: skip the rest of the current wait

    def _say(self, name: str, line: str) -> None:
        with self._print_lock:
            self.output.write(f"[{name}] {line}\n")
            self.output.flush()

    def _start(self, command: Command) -> None:
        command.process = subprocess.Popen(
            command.argv,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: signals reach its children too
            preexec_fn=_prepare_child,
        )
        self._say("runner", f"started {command.name} pid={command.process.pid}: {shlex.join(command.argv)}")
        command.reader = threading.Thread(target=self._pump, args=(command,), daemon=True)
        command.reader.start()

    def _pump(self, command: Command) -> None:
        assert command.process is not None and command.process.stdout is not None
        for raw in command.process.stdout:
            self._say(command.name, raw.decode(errors="replace").rstrip())

    def step(self) -> bool:
        """Start what is due, notice exits; False once the graph must stop (a node failed or all ended)."""
        by_name = {command.name: command for command in self.commands}
        for command in self.commands:
            if command.process is None:
                dependency = by_name.get(command.after)
                if dependency is None or (dependency.process is not None and dependency.process.poll() == 0):
                    self._start(command)
                continue
            code = command.process.poll()
            if code is not None and command.ends_graph and code == 0:
                self._say("runner", f"{command.name} finished: the graph stops")
                return False
            if code is None or (command.oneshot and code == 0):
                continue
            self.failure = f"{command.name} exited with code {code}"
            self._say("runner", self.failure)
            return False
        return any(c.process is None or c.process.poll() is None for c in self.commands)

    def pids(self) -> list[int]:
        """Process ids (= process group ids) of the processes started so far."""
        return [c.process.pid for c in self.commands if c.process is not None]

    def stop(self, sigint_timeout: float = 5.0, sigterm_timeout: float = 5.0) -> None:
        """SIGINT every process group, then SIGTERM, then SIGKILL, each after its deadline."""
        groups = self.pids()
        for sig, timeout in ((signal.SIGINT, sigint_timeout), (signal.SIGTERM, sigterm_timeout), (signal.SIGKILL, 5.0)):
            alive = [pgid for pgid in groups if _group_alive(pgid, self.commands)]
            if not alive:
                break
            if sig != signal.SIGINT:
                self._say("runner", f"{len(alive)} process group(s) still running: sending {signal.Signals(sig).name}")
            if sig == signal.SIGKILL:  # first, where each is stuck: the nodes print their threads' stacks on SIGUSR1
                for pgid in alive:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(pgid, signal.SIGUSR1)
                time.sleep(1.0)
            for pgid in alive:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgid, sig)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and any(_group_alive(p, self.commands) for p in alive):
                if self.hurry.wait(0.05):  # a second Ctrl-C: escalate now
                    self.hurry.clear()
                    break
        for command in self.commands:
            if command.reader is not None:
                command.reader.join(timeout=2.0)
            if command.process is not None and command.process.stdout is not None:
                command.process.stdout.close()


def _group_alive(pgid: int, commands: list[Command]) -> bool:
    """Whether any process of group ``pgid`` still runs (its leader is reaped first, so zombies don't count)."""
    for command in commands:
        if command.process is not None and command.process.pid == pgid:
            command.process.poll()
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:  # the group id was reused by someone else's process
        return False


def graph_environment(graph: Graph, values: dict[str, str]) -> dict[str, str]:
    """The runner's environment with the graph's additions; Python children flush output at once."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    for name, value in graph.environment:
        text = render_value(value, values)
        env[name] = os.pathsep.join(filter(None, [env.get(name, ""), text]))
    return env


def get_graph(name: str | Graph) -> Graph:
    """The graph called ``name`` (a Graph is returned as it is)."""
    if isinstance(name, Graph):
        return name
    if name not in GRAPHS:
        raise ConfigError(f"unknown graph {name!r}; graphs are {sorted(GRAPHS)}")
    return GRAPHS[name]


@contextlib.contextmanager
def start_graph(name: str | Graph, overrides: Sequence[str] = (), output=None, sigint_timeout: float = 5.0) -> Iterator[GraphRunner]:
    """Start graph ``name`` in the background; stop all of it when the block ends."""
    graph = get_graph(name)
    values = resolve_arguments(graph, overrides)
    with tempfile.TemporaryDirectory(prefix=f"jepa_ros_{graph.name}_") as workdir:
        runner = GraphRunner(build_commands(graph, values, Path(workdir)), graph_environment(graph, values), output)
        stop = threading.Event()

        # One thread starts, watches and stops every process: a child's parent-death signal is tied
        # to the thread that started it, so that thread must outlive the child.
        def supervise() -> None:
            try:
                while not stop.is_set() and runner.step():
                    stop.wait(0.1)
                stop.wait()
            finally:
                runner.stop(sigint_timeout=sigint_timeout)

        supervisor = threading.Thread(target=supervise, name=f"jepa_ros_{graph.name}_supervisor", daemon=True)
        supervisor.start()
        try:
            yield runner
        finally:
            stop.set()
            supervisor.join(timeout=sigint_timeout + 15.0)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Command-line options of `jepa-ros up`."""
    parser.add_argument("graph", choices=sorted(GRAPHS), help="node graph to start (as launch/<graph>.launch.py)")
    parser.add_argument(
        "overrides", nargs="*", metavar="name:=value", help="graph arguments (see --show-args); options go before or after all of them"
    )
    parser.add_argument("--show-args", action="store_true", help="list the graph's arguments with descriptions and exit")
    parser.add_argument("--dry-run", action="store_true", help="print the command lines and exit")
    parser.add_argument("--sigint-timeout", type=float, default=5.0, help="seconds to wait after SIGINT before SIGTERM")
    parser.add_argument("--sigterm-timeout", type=float, default=5.0, help="seconds to wait after SIGTERM before SIGKILL")


def run(args: argparse.Namespace) -> int:
    """Start the graph and supervise it until Ctrl-C, SIGTERM or a node failure."""
    try:
        return _run(args)
    except ConfigError as err:
        print(f"jepa-ros up: error: {err}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    graph = get_graph(args.graph)
    if args.show_args:
        for argument in graph.arguments:
            choices = f" {list(argument.choices)}" if argument.choices else ""
            print(f"{argument.name}:={_default(argument.default)!r}{choices}\n    {argument.description}")
        return 0
    values = resolve_arguments(graph, args.overrides)
    with tempfile.TemporaryDirectory(prefix=f"jepa_ros_{graph.name}_") as workdir:
        commands = build_commands(graph, values, Path(workdir), resolve=not args.dry_run)
        if args.dry_run:
            for command in commands:
                after = f"  # after {command.after} exits" if command.after else ""
                print(f"{command.name}: {shlex.join(command.argv)}{after}")
            return 0
        stop = threading.Event()
        runner = GraphRunner(commands, graph_environment(graph, values))

        def on_signal(*_: object) -> None:
            if stop.is_set():  # asked again while stopping: don't wait out the deadline
                runner.hurry.set()
            stop.set()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            while not stop.is_set() and runner.step():
                stop.wait(0.1)
        finally:
            runner._say("runner", "stopping the graph")
            runner.stop(args.sigint_timeout, args.sigterm_timeout)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    return 1 if runner.failure else 0
