"""Score the commands a live node sent during a bag replay against the recorded ones (ROS-free).

Both command streams become joint-position targets in one joint order; each live command
is compared with the recorded command in force at the same bag time (the latest one at
or before it, as a position controller holds it), and both are turned into actions
(target minus the measured joint positions at that time) for direction agreement.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from jepa_wm.evaluation.episode_metrics import action_agreement


@dataclass
class CommandStream:
    """Joint-position targets over time, in ``joint_names`` order."""

    joint_names: tuple[str, ...]
    stamps_ns: list[int] = field(default_factory=list)
    targets: list[np.ndarray] = field(default_factory=list)  # each float64 [J] rad

    def add(self, stamp_ns: int, target: np.ndarray) -> None:
        """Append one command (stamps must not go back in time)."""
        self.stamps_ns.append(int(stamp_ns))
        self.targets.append(np.asarray(target, dtype=np.float64))

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Stamps [K] int64 and targets [K, J], sorted by stamp."""
        stamps = np.asarray(self.stamps_ns, dtype=np.int64)
        order = np.argsort(stamps, kind="stable")
        targets = np.stack(self.targets) if self.targets else np.zeros((0, len(self.joint_names)))
        return stamps[order], targets[order]


def command_target(payload: Any, joint_names: tuple[str, ...], where: str) -> np.ndarray:
    """A decoded command (Float64MultiArray array, or TrajectorySample) -> float64 [J] in ``joint_names`` order.

    A Float64MultiArray has no names: its values are in the controller's joint order,
    which is taken to be ``joint_names``. A trajectory's first point is the next target.
    """
    if isinstance(payload, np.ndarray):
        if payload.shape != (len(joint_names),):
            raise ValueError(
                f"{where}: command has {payload.size} values, expected {len(joint_names)} for {list(joint_names)}"
            )
        return payload.astype(np.float64)
    names, positions = tuple(payload.joint_names), np.asarray(payload.positions, dtype=np.float64)
    missing = [n for n in joint_names if n not in names]
    if missing or positions.shape[0] == 0:
        raise ValueError(f"{where}: trajectory joints {list(names)} with {positions.shape[0]} points; "
                         f"expected at least one point for {list(joint_names)}")
    return positions[0, [names.index(n) for n in joint_names]]


def latest_before(stamps_ns: np.ndarray, query_ns: np.ndarray) -> np.ndarray:
    """Index of the last stamp at or before each query, -1 where there is none: [Q] int64."""
    return np.searchsorted(stamps_ns, query_ns, side="right") - 1


def score_commands(
    live: CommandStream, recorded: CommandStream, joint_stamps_ns: np.ndarray, joint_positions: np.ndarray
) -> dict[str, Any]:
    """Live vs recorded commands at the live command times: target error (rad) and action agreement."""
    live_stamps, live_targets = live.arrays()
    rec_stamps, rec_targets = recorded.arrays()
    rec_index = latest_before(rec_stamps, live_stamps)
    joint_index = latest_before(np.asarray(joint_stamps_ns, dtype=np.int64), live_stamps)
    matched = (rec_index >= 0) & (joint_index >= 0)
    measured = joint_positions[joint_index[matched]]  # [K, J]
    live_action = live_targets[matched] - measured
    recorded_action = rec_targets[rec_index[matched]] - measured
    span_s = (live_stamps[-1] - live_stamps[0]) * 1e-9 if live_stamps.size > 1 else 0.0
    return {
        "live_commands": int(live_stamps.size),
        "recorded_commands": int(rec_stamps.size),
        "matched": int(matched.sum()),
        "live_rate_hz": float((live_stamps.size - 1) / span_s) if span_s > 0 else float("nan"),
        "target_abs_error_rad": float(np.abs(live_targets[matched] - rec_targets[rec_index[matched]]).mean())
        if matched.any() else float("nan"),
        "action": action_agreement(live_action, recorded_action),
    }
