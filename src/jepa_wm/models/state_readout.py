"""The arm's state read from a latent: a linear map fitted in closed form after training.

A goal image says where the arm should be, but nobody measured the arm's state in it. The readout
gives that state from the goal's latent, and from each camera frame's, with the same errors for
both: the controller compares the two through forward kinematics to say in metres how far the tool
is from where the goal image shows it (its arrival criterion), and a push model's planner takes the
arm's part out of a goal latent at the state read from it (models/arm_appearance.py).
Fitted by ``training.arm_fit.fit_state_readout`` on the exploration frames and their joint states, as
`jepa-ros evaluate`'s joint probe is fitted (the same function), and kept with the model.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class StateReadout(nn.Module):
    """latent [.., N, D] -> the arm's state [.., A] (joint positions, or the tool pose of end-effector models)."""

    def __init__(self, state_dim: int, num_tokens: int, latent_dim: int) -> None:
        super().__init__()
        assert state_dim >= 1, f"state_dim={state_dim}"
        # filled by fit(); zeros until then (a checkpoint's weights replace them on load)
        self.register_buffer("weights", torch.zeros(num_tokens * latent_dim + 1, state_dim))  # [N*D + 1, A]

    def forward(self, latents: Tensor) -> Tensor:
        """States read from latents [..., N, D] -> [..., A]."""
        flat = latents.to(self.weights.dtype).flatten(-2)  # [..., N*D]
        return torch.cat([flat, torch.ones_like(flat[..., :1])], dim=-1) @ self.weights

    @torch.no_grad()
    def fit(self, latents: Tensor, states: Tensor) -> None:
        """Fit on latents [M, N, D] and states [M, A] of the same frames, in episode order: the joint probe
        of `jepa-ros evaluate` (evaluation.quality.probe_weights, its ridge cross-validated per component)."""
        from jepa_wm.evaluation.quality import probe_weights

        assert latents.shape[0] == states.shape[0] >= 2, f"latents {tuple(latents.shape)}, states {tuple(states.shape)}"
        self.weights.copy_(torch.from_numpy(probe_weights(latents.cpu(), states.double().cpu().numpy())))
