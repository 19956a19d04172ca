"""Tiny world-model fixtures shared by the model tests: small configs and real toy rosbags."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jepa_wm.config import EncoderConfig, PredictorConfig, WorldModelConfig
from jepa_wm.data import BagWriter

JOINTS = ("joint1", "joint2", "joint3")


def tiny_config(**predictor: int) -> WorldModelConfig:
    """A model small enough for millisecond forward passes."""
    return WorldModelConfig(
        encoder=EncoderConfig(image_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2),
        predictor=PredictorConfig(**{"embed_dim": 32, "depth": 2, "num_heads": 2, "latent_grid": 2, "max_steps": 12,
                                     **predictor}),
        joint_names=JOINTS,
        action_scale=0.1,
    )


def render_toy(joint_positions: np.ndarray, size: int = 32) -> np.ndarray:
    """A frame whose content is a deterministic function of the joints: two coloured squares."""
    image = np.full((size, size, 3), 40, dtype=np.uint8)
    for k, channel in ((0, 0), (1, 1)):
        centre = (np.tanh(joint_positions[[k, 2]]) * 0.4 + 0.5) * (size - 8)
        y, x = int(centre[0]), int(centre[1])
        image[y : y + 8, x : x + 8, channel] = 230
    return image


def write_toy_bags(folder: Path, episodes: int = 3, steps: int = 24, seed: int = 0) -> Path:
    """Bags of a toy 3-joint 'arm' that follows its position commands halfway each step."""
    rng = np.random.default_rng(seed)
    for e in range(episodes):
        q = rng.uniform(-1, 1, len(JOINTS))
        with BagWriter(folder / f"episode_{e:03d}") as bag:
            for t in range(steps):
                stamp = 1_000_000_000 + t * 100_000_000
                command = q + rng.uniform(-0.1, 0.1, len(JOINTS))
                bag.write_image("/camera/image_raw", stamp, render_toy(q))
                bag.write_joint_state("/joint_states", stamp, JOINTS, q)
                bag.write_command("/forward_position_controller/commands", stamp, command)
                q = q + 0.5 * (command - q)
    return folder
