"""Fit what a trained model reads of the arm on its exploration frames, in closed form on frozen latents.

At the end of `jepa-ros train`: the state readout (models/state_readout.py) for every model (the
controller's arrival criterion in metres, where a goal image's arm is), and for planar (push) models the
arm-appearance model (models/arm_appearance.py), with which the planner compares push goals without the
arm (planner.goal: objects). Under a minute on a CPU; frames and the arm's states only, no object labels.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from jepa_wm.models.arm_appearance import ArmAppearance
from jepa_wm.models.state_readout import StateReadout
from jepa_wm.models.world_model import WorldModel

ARM_FEATURES = 512  # random Fourier features of the state
ARM_BANDWIDTH = 0.35  # their length scale, in standard deviations of each state component
# ridge penalty per sample: about 1e-4 of the normal equations' mean diagonal (each feature's square
# averages 1/ARM_FEATURES, the constant's 1)
ARM_RIDGE = 4e-7
FIT_FRAMES = 12000  # training frames drawn for a fit


def fit_state_readout(model: WorldModel, train_episodes: list, val_episodes: list, seed: int = 0,
                      appearance: bool = False) -> dict[str, float]:
    """Attach and fit ``model.readout`` (and with ``appearance`` ``model.arm``) on training frames; returns
    held-out figures: the state read back from a latent (RMS error per component) and, with appearance,
    the share of the latent's variance that the arm's state explains. The model's config records both."""
    from jepa_wm.training.trainer import encode_frames

    model.config = dataclasses.replace(model.config, state_readout=True,
                                       arm_features=ARM_FEATURES if appearance else model.config.arm_features)
    model.readout = StateReadout(model.config.action_dim, model.num_tokens, model.latent_dim)
    rng = np.random.default_rng(seed)
    frames = np.concatenate([e.frames for e in train_episodes])
    states = np.concatenate([e.joint_positions for e in train_episodes])
    keep = np.sort(rng.permutation(len(frames))[:FIT_FRAMES])
    latents, states = encode_frames(model, frames[keep]), torch.from_numpy(states[keep])
    model.readout.fit(latents, states)
    val_latents = torch.cat([encode_frames(model, e.frames) for e in val_episodes])  # [M, N, D]
    val_states = torch.from_numpy(np.concatenate([e.joint_positions for e in val_episodes]))  # [M, A]
    with torch.no_grad():
        read_error = (model.readout(val_latents) - val_states).square().mean(0).sqrt()  # [A]
    figures = {f"read_rmse_{name}": float(v) for name, v in zip(model.config.state_names, read_error)}
    if appearance:
        model.arm = ArmAppearance(model.config.action_dim, model.num_tokens, model.latent_dim, ARM_FEATURES)
        model.arm.fit(latents, states, ARM_BANDWIDTH, ARM_RIDGE, torch.Generator().manual_seed(seed))
        with torch.no_grad():
            remaining = model.arm.without_arm(val_latents, val_states).flatten(1).var(0).sum()
        figures["arm_explained_variance"] = 1.0 - float(remaining / val_latents.flatten(1).var(0).sum())
    return figures
