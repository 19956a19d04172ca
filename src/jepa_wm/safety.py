"""Pure functions that keep joint commands inside position and velocity limits.

Every command to a robot, simulated or real, passes through here. Malformed commands raise
:class:`CommandError`; commands that are well formed but unsafe are clamped, and each clamp is
reported as a warning string naming the joint, the value and the limit, for the caller to log.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


class CommandError(ValueError):
    """A joint command is malformed: wrong length, or a value is NaN or infinite."""


@dataclass(frozen=True)
class ClampResult:
    """The command that is safe to send, and one warning per joint that had to be clamped."""

    command: np.ndarray  # float64 [J]
    warnings: list[str] = field(default_factory=list)


def non_finite(values: Sequence[float] | np.ndarray, joint_names: Sequence[str]) -> list[str]:
    """``name=value`` for each joint whose value is NaN or infinite (empty when all are finite)."""
    return [f"{name}={value}" for name, value in zip(joint_names, np.asarray(values, dtype=np.float64).reshape(-1))
            if not math.isfinite(value)]


def check_command(values: Sequence[float] | np.ndarray, joint_names: Sequence[str]) -> np.ndarray:
    """Return ``values`` as float64 [J]; raise CommandError on a wrong length or a NaN / inf value."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.shape[0] != len(joint_names):
        raise CommandError(
            f"command has shape {list(array.shape)}, expected [{len(joint_names)}] values for joints {list(joint_names)}"
        )
    bad = non_finite(array, joint_names)
    if bad:
        raise CommandError(f"command has non-finite values: {', '.join(bad)}; expected finite positions in rad")
    return array


def clamp_to_limits(
    target: Sequence[float] | np.ndarray,
    lower: Sequence[float] | np.ndarray,
    upper: Sequence[float] | np.ndarray,
    joint_names: Sequence[str],
) -> ClampResult:
    """Clamp a position target into [lower, upper], with a warning per clamped joint."""
    target = check_command(target, joint_names)
    lower, upper = _limits(lower, upper, joint_names)
    command = np.clip(target, lower, upper)
    warnings = [
        _limit_warning(name, value, low, high)
        for name, value, low, high in zip(joint_names, target, lower, upper)
        if not low <= value <= high
    ]
    return ClampResult(command=command, warnings=warnings)


def clamp_command(
    target: Sequence[float] | np.ndarray,
    current: Sequence[float] | np.ndarray,
    lower: Sequence[float] | np.ndarray,
    upper: Sequence[float] | np.ndarray,
    velocity_limits: Sequence[float] | np.ndarray,
    dt: float,
    joint_names: Sequence[str],
    allowed_range: tuple[Sequence[float] | np.ndarray, Sequence[float] | np.ndarray] | None = None,
) -> ClampResult:
    """Clamp a position target to the limits, then to at most velocity_limits * dt away from current.

    ``lower`` / ``upper`` are the robot's position limits; ``allowed_range`` is an optional
    narrower range (e.g. the joint range a model was trained on), intersected with them. The
    velocity clamp comes last: a target past a limit or outside the range is approached at the
    velocity limit, never jumped to. A joint measured outside its position limits by more than
    one step at the velocity limit cannot be commanded within both limits: CommandError.
    """
    target = check_command(target, joint_names)
    current = check_command(current, joint_names)
    lower, upper = _limits(lower, upper, joint_names)
    velocity_limits = np.asarray(velocity_limits, dtype=np.float64)
    if velocity_limits.shape != target.shape or not np.all(np.isfinite(velocity_limits) & (velocity_limits > 0)):
        raise CommandError(
            f"velocity_limits={velocity_limits.tolist()}: expected {len(joint_names)} finite values > 0 rad/s"
        )
    if not (np.isfinite(dt) and dt > 0):
        raise CommandError(f"dt={dt}: expected a finite time step > 0 s")
    range_lower, range_upper = lower, upper
    if allowed_range is not None:
        range_lower, range_upper = _limits(*allowed_range, joint_names, what="allowed range")
        range_lower, range_upper = np.clip(range_lower, lower, upper), np.clip(range_upper, lower, upper)

    max_step = velocity_limits * dt
    unreachable = (current < lower - max_step) | (current > upper + max_step)
    if unreachable.any():
        details = ", ".join(
            f"{joint_names[i]} at {current[i]:.4f} rad (limits [{lower[i]:.4f}, {upper[i]:.4f}], "
            f"one step {max_step[i]:.4f} rad)"
            for i in np.flatnonzero(unreachable)
        )
        raise CommandError(
            f"joints measured outside their position limits by more than one step at the velocity limit: "
            f"{details}; no command is within both limits"
        )
    wanted = np.clip(target, range_lower, range_upper)
    # velocity last; the final position clip only ever moves a command toward current here
    command = np.clip(np.clip(wanted, current - max_step, current + max_step), lower, upper)
    warnings = []
    for i, name in enumerate(joint_names):
        reasons = []
        if not lower[i] <= target[i] <= upper[i]:
            reasons.append(_limit_warning(name, target[i], lower[i], upper[i]))
        elif not range_lower[i] <= target[i] <= range_upper[i]:
            reasons.append(
                f"{name}: target {target[i]:.4f} rad is outside the allowed range "
                f"[{range_lower[i]:.4f}, {range_upper[i]:.4f}] rad; clamped"
            )
        if command[i] != wanted[i]:
            reasons.append(
                f"{name}: step {wanted[i] - current[i]:+.4f} rad from {current[i]:.4f} rad exceeds velocity limit "
                f"{velocity_limits[i]:.4f} rad/s x dt {dt:.4f} s = {max_step[i]:.4f} rad; "
                f"commanded {command[i]:.4f} rad"
            )
        if reasons:
            warnings.append("; ".join(reasons))
    return ClampResult(command=command, warnings=warnings)


def _limits(
    lower: Sequence[float] | np.ndarray,
    upper: Sequence[float] | np.ndarray,
    joint_names: Sequence[str],
    what: str = "limits",
) -> tuple[np.ndarray, np.ndarray]:
    lower = np.asarray(lower, dtype=np.float64)
    upper = np.asarray(upper, dtype=np.float64)
    expected = (len(joint_names),)
    if lower.shape != expected or upper.shape != expected:
        raise CommandError(
            f"{what} have shapes {list(lower.shape)} and {list(upper.shape)}, expected [{len(joint_names)}] "
            f"for joints {list(joint_names)}"
        )
    for name, low, high in zip(joint_names, lower, upper):
        if not (math.isfinite(low) and math.isfinite(high) and low <= high):
            raise CommandError(f"{name}: {what} [{low}, {high}]: expected finite values with lower <= upper")
    return lower, upper


def _limit_warning(name: str, value: float, lower: float, upper: float) -> str:
    side, limit = ("below lower", lower) if value < lower else ("above upper", upper)
    return f"{name}: target {value:.4f} rad is {side} limit {limit:.4f} rad; clamped"
