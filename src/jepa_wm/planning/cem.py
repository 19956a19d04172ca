"""Cross-entropy method over action sequences, as V-JEPA 2-AC plans in latent space.

Each iteration samples ``num_samples`` sequences from a diagonal Gaussian, scores them
all in one batched rollout, and moves the Gaussian toward the ``num_elites`` cheapest,
with momentum on mean and std. The answer is the final mean.
"""

from __future__ import annotations

import torch
from torch import Tensor

from jepa_wm.config import PlannerConfig
from jepa_wm.planning.base import CostFn, PlanResult, RolloutFn, refine


@torch.no_grad()
def cem(
    rollout: RolloutFn,
    cost: CostFn,
    config: PlannerConfig,
    action_dim: int,
    warm_start: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> PlanResult:
    """Plan ``config.horizon`` normalised actions with CEM.

    rollout: actions [S, H, A] -> predicted latents [S, H, N, D]
    cost: (latents [S, H, N, D], actions [S, H, A]) -> [S], lower is better
    warm_start: [H, A] mean to start from (``shift_plan`` of the previous result) or None
    Returns PlanResult with actions [H, A] inside [-action_bound, action_bound].
    """
    def update(mean: Tensor, std: Tensor, elites: Tensor, elite_costs: Tensor) -> tuple[Tensor, Tensor]:
        elite_std = elites.std(dim=0, correction=0) if config.num_elites > 1 else torch.zeros_like(std)
        # Momentum keeps part of the old distribution, which damps jumps between iterations.
        mean = config.momentum_mean * mean + (1.0 - config.momentum_mean) * elites.mean(dim=0)
        std = config.momentum_std * std + (1.0 - config.momentum_std) * elite_std
        return mean, std.clamp(config.min_std, config.max_std)

    return refine(rollout, cost, config, action_dim, warm_start, generator, update)
