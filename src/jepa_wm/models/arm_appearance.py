"""What the arm alone contributes to a latent, so that a goal can be compared without it.

A push goal image shows the object where it should be, with the arm anywhere. Compared as a whole,
the latent distance is dominated by the arm (it fills more of the view and moves every step), so a
planner would bring the arm to where the goal image shows it rather than the object. This model
splits a latent into what the arm's state explains and the rest:

    latent ~ appearance(state) + the world's part

``appearance`` is a ridge regression on random Fourier features of the state (the expected latent of
the arm at that state, averaged over wherever objects were in the data), fitted in closed form on the
latents and states of exploration data (training.arm_fit), with no object labels. ``without_arm`` then
gives the world's part, which a planner compares with the goal's; for a goal image, whose arm state
nobody measured, the state comes from the model's state readout (models/state_readout.py).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class ArmAppearance(nn.Module):
    """state [.., A] -> the arm's expected latent [.., N, D]."""

    def __init__(self, state_dim: int, num_tokens: int, latent_dim: int, num_features: int) -> None:
        super().__init__()
        assert state_dim >= 1 and num_features >= 1, f"state_dim={state_dim}, num_features={num_features}"
        self.num_tokens, self.latent_dim = num_tokens, latent_dim
        width = num_tokens * latent_dim
        # filled by fit(); zeros until then (a checkpoint's weights replace them on load)
        self.register_buffer("state_mean", torch.zeros(state_dim))
        self.register_buffer("state_std", torch.ones(state_dim))
        self.register_buffer("frequencies", torch.zeros(state_dim, num_features))  # [A, K] per standardised state
        self.register_buffer("phases", torch.zeros(num_features))  # [K]
        self.register_buffer("appearance_weights", torch.zeros(num_features + 1, width))  # [K + 1, N*D]

    def features(self, states: Tensor) -> Tensor:
        """Random Fourier features of states [..., A] -> [..., K + 1] (the last one constant)."""
        standard = (states.to(self.frequencies.dtype) - self.state_mean) / self.state_std
        waves = torch.cos(standard @ self.frequencies + self.phases) * math.sqrt(2.0 / self.phases.numel())
        return torch.cat([waves, torch.ones_like(waves[..., :1])], dim=-1)

    def appearance(self, states: Tensor) -> Tensor:
        """The arm's expected latent at states [..., A] -> [..., N, D]."""
        flat = self.features(states) @ self.appearance_weights  # [..., N*D]
        return flat.unflatten(-1, (self.num_tokens, self.latent_dim))

    def without_arm(self, latents: Tensor, states: Tensor) -> Tensor:
        """The world's part of latents [..., N, D] with the arm at states [..., A]."""
        return latents.to(self.appearance_weights.dtype) - self.appearance(states)

    @torch.no_grad()
    def fit(self, latents: Tensor, states: Tensor, bandwidth: float, ridge: float, generator: torch.Generator) -> None:
        """Fit in closed form on latents [M, N, D] and states [M, A] of the same frames.

        bandwidth: length scale of the features in standard deviations of the state; ridge: the
        penalty per sample (evaluation.quality.ridge_fit).
        """
        assert latents.shape[0] == states.shape[0] >= 2, f"latents {tuple(latents.shape)}, states {tuple(states.shape)}"
        states, flat = states.double(), latents.double().flatten(1)  # [M, A], [M, N*D]
        self.state_mean.copy_(states.mean(0))
        self.state_std.copy_(states.std(0).clamp_min(1e-6))
        state_dim, num_features = self.frequencies.shape
        self.frequencies.copy_(torch.randn(state_dim, num_features, generator=generator, dtype=torch.float64) / bandwidth)
        self.phases.copy_(torch.rand(num_features, generator=generator, dtype=torch.float64) * 2 * math.pi)
        from jepa_wm.evaluation.quality import ridge_fit

        features = self.features(states).double()
        self.appearance_weights.copy_(torch.from_numpy(ridge_fit(features.numpy(), flat.numpy(), ridge)))
