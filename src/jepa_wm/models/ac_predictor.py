"""V-JEPA 2-AC's action-conditioned predictor, computing what the published model computes.

Each time step t contributes ``[action a_t, state s_t, frame tokens z_t (H*W)]``; attention is
block-causal over time (the tokens of step t see every token of steps <= t). Positions are rotary
only, as in the reference's ``ACRoPEAttention``: every head rotates its first three segments of
``2 * (head_dim // 3 // 2)`` channels by the token's (time, row, column); action and state tokens
sit at (t, 0, 0), so only their time segment turns; rows and columns are scaled by
``grid_height / H`` and ``grid_height / W`` (1 on a square grid). The output of step t is the
prediction of z_{t+1} itself (not a residual on z_t), layer-normalised without affine parameters,
as V-JEPA 2-AC normalises both its targets and its predictions (``normalize_reps``).

Parameter names and shapes are those of ``VisionTransformerPredictorAC``, including its
``extrinsics_encoder`` (unused: the published model runs without extrinsics), so an official
``predictor`` state dict loads with no key left over or missing. The key/value cache works as in
:class:`~jepa_wm.models.predictor.ActionConditionedPredictor`: cached keys keep the rotation of
their step, and a new step is rotated by its absolute time index.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from jepa_wm.config import PredictorConfig
from jepa_wm.models.layers import Block, KVCache, grid_positions, init_weights, rescale_residual_branches
from jepa_wm.models.predictor import CONDITION_TOKENS, attend_steps, embed_steps


@functools.lru_cache(maxsize=64)  # a rollout asks for the same few every step: computed once each, never modified
def step_positions(first_step: int, steps: int, rows: int, cols: int) -> torch.Tensor:
    """RoPE positions [3, steps*(2+rows*cols)] of steps ``first_step ...`` laid out as [action, state, frame]."""
    frame = grid_positions(steps, rows, cols, first_frame=first_step).view(3, steps, rows * cols)
    frame[2] *= rows / cols  # the reference scales columns by grid_height / W (rows by grid_height / H = 1)
    conditions = torch.zeros(3, steps, CONDITION_TOKENS)
    conditions[0] = torch.arange(first_step, first_step + steps, dtype=torch.float32)[:, None]
    return torch.cat([conditions, frame], dim=2).flatten(1)


class VJEPA2ACPredictor(nn.Module):
    """(frame tokens, states, actions) per step -> next-step frame tokens, as V-JEPA 2-AC; with a KV cache."""

    def __init__(self, config: PredictorConfig, latent_dim: int, action_dim: int, grid: tuple[int, int]) -> None:
        super().__init__()
        self.config = config
        self.rows, self.cols = grid
        self.num_tokens = self.rows * self.cols
        self.tokens_per_step = CONDITION_TOKENS + self.num_tokens
        E = config.embed_dim
        self.predictor_embed = nn.Linear(latent_dim, E)
        self.action_encoder = nn.Linear(action_dim, E)
        self.state_encoder = nn.Linear(action_dim, E)
        self.extrinsics_encoder = nn.Linear(action_dim - 1, E)  # in the official files, unused as published
        self.predictor_blocks = nn.ModuleList(
            Block(E, config.num_heads, config.mlp_ratio, use_rope=True, grid_size=self.rows)
            for _ in range(config.depth)
        )
        self.predictor_norm = nn.LayerNorm(E, eps=1e-6)
        self.predictor_proj = nn.Linear(E, latent_dim)
        init_weights(self)
        rescale_residual_branches(self.predictor_blocks)

    def forward(
        self,
        latents: torch.Tensor,
        states: torch.Tensor,
        actions: torch.Tensor,
        cache: list[KVCache] | None = None,
    ) -> tuple[torch.Tensor, list[KVCache]]:
        """Predict z_{t+1} for each given step t.

        latents [B, T, N, D] (layer-normalised encoder tokens), states [B, T, A], actions [B, T, A];
        cache: per-layer keys/values of earlier steps (batch 1 or B) or None.
        Returns next latents [B, T, N, D] (layer-normalised) and the cache extended by these T steps.
        """
        tokens, first_step, cached_tokens = embed_steps(self, latents, states, actions, cache)
        positions = step_positions(first_step, latents.shape[1], self.rows, self.cols).to(tokens.device)
        x, new_cache = attend_steps(self.predictor_blocks, tokens, cached_tokens, cache, positions)  # [B, T, N, E]
        predicted = self.predictor_proj(self.predictor_norm(x))  # [B, T, N, D]
        return F.layer_norm(predicted, (latents.shape[-1],)), new_cache
