"""Smooth random joint-space exploration for collecting world-model training data."""

from __future__ import annotations

import numpy as np


class RandomWalkExplorer:
    """A random walk of joint-position deltas with momentum that stays inside a joint box.

    Each step moves at most ``max_delta`` rad per joint. The direction is a low-passed random
    vector (``smoothing`` in [0, 1): higher is smoother) that is redrawn now and then, and it
    bounces off the box walls so the walk covers the box instead of sticking to its faces.
    """

    def __init__(
        self,
        lower: np.ndarray,
        upper: np.ndarray,
        max_delta: float = 0.1,
        smoothing: float = 0.8,
        seed: int = 0,
        resample_probability: float = 0.1,
    ) -> None:
        self.lower = np.asarray(lower, dtype=np.float64)
        self.upper = np.asarray(upper, dtype=np.float64)
        if self.lower.shape != self.upper.shape or self.lower.ndim != 1 or not np.all(self.lower < self.upper):
            raise ValueError(f"explorer box lower={self.lower.tolist()} upper={self.upper.tolist()}: expected lower < upper per joint")
        if not max_delta > 0:
            raise ValueError(f"explorer max_delta={max_delta}: expected > 0 rad")
        if not 0 <= smoothing < 1:
            raise ValueError(f"explorer smoothing={smoothing}: expected [0, 1)")
        if not 0 <= resample_probability <= 1:
            raise ValueError(f"explorer resample_probability={resample_probability}: expected [0, 1]")
        self.max_delta = float(max_delta)
        self.smoothing = float(smoothing)
        self.resample_probability = float(resample_probability)
        self.rng = np.random.default_rng(seed)
        self._direction = self.rng.uniform(-1.0, 1.0, self.lower.shape)
        self._velocity = np.zeros_like(self.lower)  # smoothed delta, in units of max_delta

    def turn_back(self) -> None:
        """Reverse the walk (the next step heads back where it came from), e.g. before an obstacle."""
        self._velocity *= -1.0
        self._direction *= -1.0

    def next_delta(self, joint_positions: np.ndarray) -> np.ndarray:
        """Joint-position delta (rad) [J] for the next step from ``joint_positions``; |delta| <= max_delta."""
        joint_positions = np.asarray(joint_positions, dtype=np.float64)
        if joint_positions.shape != self.lower.shape:
            raise ValueError(f"joint_positions has shape {list(joint_positions.shape)}, expected [{self.lower.size}]")
        if self.rng.random() < self.resample_probability:
            self._direction = self.rng.uniform(-1.0, 1.0, self.lower.shape)
        self._velocity = self.smoothing * self._velocity + (1.0 - self.smoothing) * self._direction
        # bounce: a joint heading out of the box turns around, and keeps heading back in
        ahead = joint_positions + self._velocity * self.max_delta
        leaving = ((ahead > self.upper) & (self._velocity > 0)) | ((ahead < self.lower) & (self._velocity < 0))
        self._velocity[leaving] *= -1.0
        self._direction[leaving] = np.abs(self._direction[leaving]) * np.sign(self._velocity[leaving])
        delta = np.clip(self._velocity, -1.0, 1.0) * self.max_delta
        # from outside the box (e.g. the start pose) head straight back in, no faster than max_delta
        target = np.clip(joint_positions + delta, self.lower, self.upper)
        return np.clip(target - joint_positions, -self.max_delta, self.max_delta)
