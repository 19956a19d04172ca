"""MPPI over action sequences, as TD-MPC2 plans: temperature-weighted elites, clamped std.

Each iteration samples ``num_samples`` sequences, scores them in one batched rollout,
keeps the ``num_elites`` cheapest and refits mean and std as their exponentially
weighted average. The std is clamped to [min_std, max_std] so the search neither
collapses nor explodes. The answer is the final weighted mean.
"""

from __future__ import annotations

import torch
from torch import Tensor

from jepa_wm.config import PlannerConfig
from jepa_wm.planning.base import CostFn, PlanResult, RolloutFn, refine


def elite_weights(elite_costs: Tensor, temperature: float) -> Tensor:
    """Normalised weights [K] of elites with costs [K]: exp(-(cost - best) / (temperature * spread)).

    Latent distances have no fixed scale (it depends on the checkpoint), so the cost
    gap is measured in units of the elites' cost spread: with temperature 0.5 the worst
    elite weighs e^-2 of the best, whatever the checkpoint.
    """
    best = elite_costs.min()
    spread = (elite_costs.max() - best).clamp_min(1e-12)
    weights = torch.exp(-(elite_costs - best) / (temperature * spread))
    return weights / weights.sum()


@torch.no_grad()
def mppi(
    rollout: RolloutFn,
    cost: CostFn,
    config: PlannerConfig,
    action_dim: int,
    warm_start: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> PlanResult:
    """Plan ``config.horizon`` normalised actions with MPPI.

    rollout: actions [S, H, A] -> predicted latents [S, H, N, D]
    cost: (latents [S, H, N, D], actions [S, H, A]) -> [S], lower is better
    warm_start: [H, A] mean to start from (``shift_plan`` of the previous result) or None
    Returns PlanResult with actions [H, A] inside [-action_bound, action_bound].
    """
    def update(mean: Tensor, std: Tensor, elites: Tensor, elite_costs: Tensor) -> tuple[Tensor, Tensor]:
        weights = elite_weights(elite_costs, config.temperature).view(-1, 1, 1)  # [K, 1, 1]
        mean = (weights * elites).sum(dim=0)  # [H, A]
        variance = (weights * (elites - mean.unsqueeze(0)) ** 2).sum(dim=0)
        return mean, variance.sqrt().clamp(config.min_std, config.max_std)

    return refine(rollout, cost, config, action_dim, warm_start, generator, update)
