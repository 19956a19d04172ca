"""Fit a trained model's arm-appearance model (models/arm_appearance.py) on its exploration frames.

Runs at the end of `jepa-ros train` for planar (push) models: the planner then compares push goals
without the arm (planner.goal: objects). Closed form on frozen latents, under a minute on a CPU. Uses
the frames and the arm's states only: no object labels.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from jepa_wm.models.arm_appearance import ArmAppearance
from jepa_wm.models.world_model import WorldModel

ARM_FEATURES = 512  # random Fourier features of the state
ARM_BANDWIDTH = 0.35  # their length scale, in standard deviations of each state component
ARM_RIDGE = 1e-4  # ridge penalty, relative to the mean diagonal of the normal equations
ARM_FIT_FRAMES = 12000  # training frames drawn for the fit


def fit_arm_appearance(model: WorldModel, train_episodes: list, val_episodes: list, seed: int = 0) -> dict[str, float]:
    """Attach ``model.arm`` (its config says arm_features) and fit it on training frames; returns held-out
    figures: the state read back from a latent (RMS error per component) and the share of the latent's
    variance that the arm's state explains."""
    from jepa_wm.training.trainer import encode_frames

    model.config = dataclasses.replace(model.config, arm_features=ARM_FEATURES)
    model.arm = ArmAppearance(model.config.action_dim, model.num_tokens, model.latent_dim, ARM_FEATURES)
    rng = np.random.default_rng(seed)
    frames = np.concatenate([e.frames for e in train_episodes])
    states = np.concatenate([e.joint_positions for e in train_episodes])
    keep = np.sort(rng.permutation(len(frames))[:ARM_FIT_FRAMES])
    model.arm.fit(encode_frames(model, frames[keep]), torch.from_numpy(states[keep]), ARM_BANDWIDTH, ARM_RIDGE,
                  torch.Generator().manual_seed(seed))
    val_latents = torch.cat([encode_frames(model, e.frames) for e in val_episodes])  # [M, N, D]
    val_states = torch.from_numpy(np.concatenate([e.joint_positions for e in val_episodes]))  # [M, A]
    with torch.no_grad():
        read_error = (model.arm.read_state(val_latents) - val_states).square().mean(0).sqrt()  # [A]
        remaining = model.arm.without_arm(val_latents, val_states).flatten(1).var(0).sum()
    explained = 1.0 - float(remaining / val_latents.flatten(1).var(0).sum())
    return {"arm_explained_variance": explained,
            **{f"arm_read_rmse_{name}": float(v) for name, v in zip(model.config.state_names, read_error)}}
