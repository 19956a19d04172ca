"""ROS parameters <-> typed config dataclasses (jepa_wm.config).

A dataclass is declared field by field (nested dataclasses become dotted names, e.g.
``encoder.image_size``) with a descriptor that states its type and meaning; reading
the parameters back builds the dataclass through ``jepa_wm.config.from_dict``, so a bad
value fails at start-up with a ``ConfigError`` naming the parameter and what was expected.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import re
import textwrap
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import InvalidParameterTypeException, ParameterUninitializedException
from rclpy.node import Node
from rclpy.parameter import Parameter

from jepa_wm.config import ConfigError, from_dict

T = TypeVar("T")

_SCALAR_TYPES = {bool: Parameter.Type.BOOL, int: Parameter.Type.INTEGER, float: Parameter.Type.DOUBLE, str: Parameter.Type.STRING}
_ARRAY_TYPES = {
    bool: Parameter.Type.BOOL_ARRAY,
    int: Parameter.Type.INTEGER_ARRAY,
    float: Parameter.Type.DOUBLE_ARRAY,
    str: Parameter.Type.STRING_ARRAY,
}


@functools.cache
def field_comments(cls: type) -> dict[str, str]:
    """Trailing ``# comments`` of a dataclass's field lines, used as parameter descriptions."""
    try:
        lines = textwrap.dedent(inspect.getsource(cls)).splitlines()
    except (OSError, TypeError):  # no source (e.g. frozen app): descriptions fall back to the type
        return {}
    comments = {}
    for node in ast.parse("\n".join(lines)).body[0].body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            line = lines[node.lineno - 1]
            if "#" in line:
                comments[node.target.id] = line.split("#", 1)[1].strip()
    return comments


def _parameter_type(hint: Any, name: str) -> tuple[Parameter.Type, str]:
    """ROS parameter type and a human description of the accepted values for a field type."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        choices = typing.get_args(hint)
        return Parameter.Type.STRING, f"one of {list(choices)}"
    if origin is tuple:
        item = typing.get_args(hint)[0]
        if item in _ARRAY_TYPES:
            return _ARRAY_TYPES[item], f"list of {item.__name__}"
    if hint in _SCALAR_TYPES:
        return _SCALAR_TYPES[hint], hint.__name__
    raise ConfigError(f"parameter {name}: field type {hint} has no ROS parameter type")


def _fields(cls: type, prefix: str) -> list[tuple[str, dataclasses.Field, Any]]:
    hints = typing.get_type_hints(cls)
    return [(f"{prefix}{f.name}", f, hints[f.name]) for f in dataclasses.fields(cls) if f.init]


def declare_config(
    node: Node,
    cls: type,
    prefix: str = "",
    defaults: Any | None = None,
    descriptions: dict[str, str] | None = None,
) -> None:
    """Declare one ROS parameter per field of dataclass ``cls`` (defaults from ``defaults`` or the class)."""
    descriptions = descriptions or {}
    comments = field_comments(cls)
    for name, fld, hint in _fields(cls, prefix):
        if defaults is not None:
            default = getattr(defaults, fld.name)
        elif fld.default is not dataclasses.MISSING:
            default = fld.default
        elif fld.default_factory is not dataclasses.MISSING:
            default = fld.default_factory()
        else:
            default = dataclasses.MISSING
        if dataclasses.is_dataclass(hint):
            declare_config(node, hint, f"{name}.", default if default is not dataclasses.MISSING else None, descriptions)
            continue
        ros_type, accepted = _parameter_type(hint, name)
        meaning = descriptions.get(name) or comments.get(fld.name) or f"{cls.__name__}.{fld.name}"
        descriptor = ParameterDescriptor(
            description=f"{meaning} ({accepted})",
            # integers given for a float field (e.g. camera_rate:=30) are accepted and converted on read
            dynamic_typing=hint is float,
        )
        value = list(default) if isinstance(default, tuple) else default
        try:
            if default is dataclasses.MISSING or value == []:  # an empty list has no type of its own
                node.declare_parameter(name, ros_type, descriptor)
            else:
                node.declare_parameter(name, value, descriptor)
        except InvalidParameterTypeException as err:  # an override of the wrong type, e.g. image_size:=abc
            raise ConfigError(f"parameter {name}: {err}; expected {accepted}") from err


def _values(node: Node, cls: type, prefix: str) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for name, fld, hint in _fields(cls, prefix):
        if dataclasses.is_dataclass(hint):
            data[fld.name] = _values(node, hint, f"{name}.")
            continue
        try:
            value = node.get_parameter(name).value
        except ParameterUninitializedException as err:
            if fld.default is dataclasses.MISSING and fld.default_factory is dataclasses.MISSING:
                raise ConfigError(f"parameter {name} is required ({_parameter_type(hint, name)[1]}) but was not set") from err
            continue  # an empty list default: keep the dataclass default
        # array parameters come back as array.array; from_dict expects lists
        data[fld.name] = list(value) if not isinstance(value, (str, bytes)) and hasattr(value, "__len__") else value
    return data


def read_config(node: Node, cls: type[T], prefix: str = "") -> T:
    """Build dataclass ``cls`` from the node's (already declared) parameters; bad values raise ConfigError."""
    return from_dict(cls, _values(node, cls, prefix), where=f"{node.get_name()}" + (f".{prefix.rstrip('.')}" if prefix else ""))


def load_config(
    node: Node,
    cls: type[T],
    prefix: str = "",
    defaults: T | None = None,
    descriptions: dict[str, str] | None = None,
) -> T:
    """Declare the parameters of ``cls`` and read them back: the usual first line of a node's __init__."""
    declare_config(node, cls, prefix, defaults, descriptions)
    return read_config(node, cls, prefix)


# ---------------------------------------------------------------------------------------
# overrides of the wrong type: rcl drops them silently when another source (a params file) also
# sets the parameter, and the node would start with the file's value; they are refused here instead

_YAML_TYPES = {bool: Parameter.Type.BOOL, int: Parameter.Type.INTEGER, float: Parameter.Type.DOUBLE,
               str: Parameter.Type.STRING}
_ARRAY_OF = {Parameter.Type.BOOL: Parameter.Type.BOOL_ARRAY, Parameter.Type.INTEGER: Parameter.Type.INTEGER_ARRAY,
             Parameter.Type.DOUBLE: Parameter.Type.DOUBLE_ARRAY, Parameter.Type.STRING: Parameter.Type.STRING_ARRAY}


def _yaml_type(value: Any) -> Parameter.Type | None:
    """The ROS parameter type rcl gives a YAML value (None: an empty list or a type ROS has no parameter for)."""
    if isinstance(value, list):
        types = {_YAML_TYPES.get(type(item)) for item in value}
        return _ARRAY_OF.get(types.pop()) if len(types) == 1 else None
    return _YAML_TYPES.get(type(value))


def _node_matches(key: str, node: Node) -> bool:
    """Whether a params-file node key (``/**``, ``name``, ``/ns/name``, with * and ** wildcards) selects ``node``."""
    full = node.get_fully_qualified_name()
    pattern = key if key.startswith("/") else f"/{key}"
    expression = re.escape(pattern).replace(r"/\*\*", "(/[^/]+)*").replace(r"\*", "[^/]*")
    return key in (node.get_name(), full) or re.fullmatch(expression, full) is not None


def _flatten(parameters: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in parameters.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def command_line_overrides(node: Node, argv: list[str]) -> list[tuple[str, Any, str]]:
    """(parameter, value, source) for every value ``argv``'s ROS arguments give ``node``, in order.

    Sources are ``--params-file`` files (the sections that select this node) and ``-p`` / ``--param``
    ``[node:]name:=value`` arguments, as rcl reads them.
    """
    overrides: list[tuple[str, Any, str]] = []
    inside, index = False, 0
    while index < len(argv):
        token = argv[index]
        if token == "--ros-args":
            inside = True
        elif token == "--":
            inside = False
        elif inside and token in ("-p", "--param") and index + 1 < len(argv):
            index += 1
            target, _, text = argv[index].partition(":=")
            node_name, _, name = target.rpartition(":")
            if not node_name or _node_matches(node_name, node):
                try:
                    value = yaml.safe_load(text) if text else ""
                except yaml.YAMLError:
                    value = text
                overrides.append((name, value, f"-p {argv[index]}"))
        elif inside and token == "--params-file" and index + 1 < len(argv):
            index += 1
            try:
                document = yaml.safe_load(Path(argv[index]).read_text()) or {}
            except (OSError, yaml.YAMLError) as err:
                raise ConfigError(f"--params-file {argv[index]}: {err}") from None
            for key, section in document.items() if isinstance(document, dict) else ():
                if _node_matches(str(key), node) and isinstance(section, dict):
                    for name, value in _flatten(section.get("ros__parameters") or {}).items():
                        overrides.append((name, value, f"--params-file {argv[index]}"))
        index += 1
    return overrides


def check_override_types(node: Node, argv: list[str]) -> None:
    """Refuse a command-line or params-file value whose type the declared parameter does not take.

    rcl keeps the first value of a parameter when a later one has another type, so
    ``--params-file f.yaml -p planner.horizon:=abc`` would start with the file's horizon, silently.
    """
    for name, value, source in command_line_overrides(node, argv):
        if not node.has_parameter(name):
            continue
        descriptor = node.describe_parameter(name)
        declared = Parameter.Type(descriptor.type)
        given = _yaml_type(value)
        if given is None or given == declared:
            continue
        if descriptor.dynamic_typing and {declared, given} <= {Parameter.Type.DOUBLE, Parameter.Type.INTEGER}:
            continue  # an integer for a float field is read as a float
        raise ConfigError(
            f"parameter {name}={value!r} ({source}) is {given.name.lower()}; expected {declared.name.lower()} "
            f"({descriptor.description})"
        )
