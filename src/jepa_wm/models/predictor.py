"""Action-conditioned latent predictor in the style of V-JEPA 2-AC.

Each time step t contributes one block of tokens ``[action a_t, state q_t, latent z_t (N tokens)]``.
Attention is block-causal over time: the tokens of step t see every token of steps <= t
and nothing later. The latent tokens of step t are read out as the prediction of z_{t+1}
(a residual on z_t). Because earlier steps never see later ones, their keys and values
can be cached: a rollout feeds one new step at a time and never recomputes the past.

Parameter names follow ``VisionTransformerPredictorAC`` (``predictor_embed``,
``action_encoder``, ``state_encoder``, ``predictor_blocks``, ``predictor_norm``,
``predictor_proj``); positions are learned tables (``time_embed``, ``token_embed``)
where V-JEPA 2-AC uses RoPE.
"""

from __future__ import annotations

import torch
from torch import nn

from jepa_wm.config import PredictorConfig
from jepa_wm.models.layers import Block, KVCache, init_weights, rescale_residual_branches

CONDITION_TOKENS = 2  # action, state


def block_causal_mask(num_steps: int, tokens_per_step: int, cached_tokens: int = 0) -> torch.Tensor:
    """Boolean mask [T*K, cached + T*K]: True where a query may attend (same or earlier step)."""
    step = torch.arange(num_steps).repeat_interleave(tokens_per_step)  # [T*K]
    new = step[:, None] >= step[None, :]  # [T*K, T*K]
    past = torch.ones(num_steps * tokens_per_step, cached_tokens, dtype=torch.bool)
    return torch.cat([past, new], dim=1)


class ActionConditionedPredictor(nn.Module):
    """(latents, joint states, actions) per step -> next-step latents, with a KV cache."""

    def __init__(self, config: PredictorConfig, latent_dim: int, action_dim: int, num_tokens: int) -> None:
        super().__init__()
        self.config = config
        self.num_tokens = num_tokens
        self.tokens_per_step = CONDITION_TOKENS + num_tokens
        E = config.embed_dim
        self.predictor_embed = nn.Linear(latent_dim, E)
        self.action_encoder = nn.Linear(action_dim, E)
        self.state_encoder = nn.Linear(action_dim, E)
        self.time_embed = nn.Parameter(torch.zeros(config.max_steps, E))
        self.token_embed = nn.Parameter(torch.zeros(self.tokens_per_step, E))
        self.predictor_blocks = nn.ModuleList(
            Block(E, config.num_heads, config.mlp_ratio) for _ in range(config.depth)
        )
        self.predictor_norm = nn.LayerNorm(E, eps=1e-6)
        self.predictor_proj = nn.Linear(E, latent_dim)
        init_weights(self)
        nn.init.trunc_normal_(self.time_embed, std=0.02)
        nn.init.trunc_normal_(self.token_embed, std=0.02)
        rescale_residual_branches(self.predictor_blocks)

    def forward(
        self,
        latents: torch.Tensor,
        joint_positions: torch.Tensor,
        actions: torch.Tensor,
        cache: list[KVCache] | None = None,
    ) -> tuple[torch.Tensor, list[KVCache]]:
        """Predict z_{t+1} for each given step t.

        latents [B, T, N, D], joint_positions [B, T, J] rad, actions [B, T, J] normalised;
        cache: per-layer keys/values of earlier steps (batch 1 or B) or None.
        Returns next latents [B, T, N, D] and the cache extended by these T steps.
        """
        tokens, first_step, cached_tokens = embed_steps(self, latents, joint_positions, actions, cache)
        tokens = tokens + self.token_embed + self.time_embed[first_step : first_step + latents.shape[1], None, :]
        x, new_cache = attend_steps(self.predictor_blocks, tokens, cached_tokens, cache)  # [B, T, N, E]
        return latents + self.predictor_proj(self.predictor_norm(x)), new_cache


def embed_steps(
    predictor: nn.Module, latents: torch.Tensor, states: torch.Tensor, actions: torch.Tensor,
    cache: list[KVCache] | None,
) -> tuple[torch.Tensor, int, int]:
    """Tokens [B, T, K, E] of each step, ``[action, state, latent tokens]``, checked against the predictor
    (``num_tokens``, ``config.max_steps``, ``action_encoder``, ``state_encoder``, ``predictor_embed``),
    the index of the first of these steps after the cached ones, and the number of cached tokens."""
    B, T, N, _ = latents.shape
    assert N == predictor.num_tokens, f"expected {predictor.num_tokens} latent tokens per step, got {N}"
    assert states.shape[:2] == (B, T) and actions.shape[:2] == (B, T), (
        f"latents {tuple(latents.shape)}, states {tuple(states.shape)} and "
        f"actions {tuple(actions.shape)} disagree on [B, T]"
    )
    cached_tokens = 0 if cache is None else cache[0][0].shape[2]
    first_step = cached_tokens // predictor.tokens_per_step
    assert first_step + T <= predictor.config.max_steps, (
        f"{first_step + T} steps exceed predictor.max_steps={predictor.config.max_steps}"
    )
    tokens = torch.cat(
        [
            predictor.action_encoder(actions).unsqueeze(2),  # [B, T, 1, E]
            predictor.state_encoder(states).unsqueeze(2),  # [B, T, 1, E]
            predictor.predictor_embed(latents),  # [B, T, N, E]
        ],
        dim=2,
    )
    return tokens, first_step, cached_tokens


def attend_steps(
    blocks: nn.ModuleList, tokens: torch.Tensor, cached_tokens: int, cache: list[KVCache] | None,
    positions: torch.Tensor | None = None,
) -> tuple[torch.Tensor, list[KVCache]]:
    """Step tokens [B, T, K, E] (``[action, state, frame tokens]`` each) through the blocks, block-causal
    over steps, after the cached ones.

    Returns the outputs of the frame tokens [B, T, K - CONDITION_TOKENS, E] and the cache extended by
    these steps; ``positions``: RoPE positions [3, T*K] of the new tokens (none for learned position
    tables). The last block computes outputs for the frame tokens only: the condition tokens' are
    never read, their keys and values are (a third fewer of that block's matmuls).
    """
    B, T, K, _ = tokens.shape
    x = tokens.flatten(1, 2)  # [B, T*K, E]
    # A single new step attends to everything cached and to itself: no mask needed.
    mask = None if T == 1 else block_causal_mask(T, K, cached_tokens).to(x.device)
    frame_tokens = (torch.arange(T)[:, None] * K + torch.arange(CONDITION_TOKENS, K)).flatten().to(x.device)
    new_cache: list[KVCache] = []
    for layer, block in enumerate(blocks):
        last = layer == len(blocks) - 1
        x, kv = block(x, attn_mask=mask, cache=None if cache is None else cache[layer], positions=positions,
                      queries=frame_tokens if last else None)
        new_cache.append(kv)
    return x.view(B, T, K - CONDITION_TOKENS, -1), new_cache
