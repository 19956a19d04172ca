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
import textwrap
import typing
from typing import Any, Literal, TypeVar

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
