"""Cross-entropy method over action sequences, as V-JEPA 2-AC plans in latent space.

Each iteration samples ``num_samples`` sequences from a diagonal Gaussian, scores them
all in one batched rollout, and moves the Gaussian toward the ``num_elites`` cheapest,
with momentum on mean and std. The answer is the final mean.
"""

from __future__ import annotations

import torch
from torch import Tensor

from jepa_wm.config import PlannerConfig
from jepa_wm.planning.base import (
    CostFn,
    PlanResult,
    RolloutFn,
    initial_mean,
    initial_std,
    make_generator,
    sample_candidates,
    score,
    select_elites,
)


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
    device = warm_start.device if warm_start is not None else torch.device("cpu")
    generator = generator if generator is not None else make_generator(config, device)
    mean = initial_mean(config, action_dim, warm_start, device)
    std = initial_std(config, action_dim, device)
    energies: list[float] = []
    for _ in range(config.iterations):
        candidates = sample_candidates(mean, std, config.num_samples, config.action_bound, generator)  # [S, H, A]
        costs = score(rollout, cost, candidates)  # [S]
        elites, elite_costs = select_elites(candidates, costs, config.num_elites)  # [K, H, A], [K]
        energies.append(float(elite_costs[0]))
        elite_std = elites.std(dim=0, correction=0) if config.num_elites > 1 else torch.zeros_like(std)
        # Momentum keeps part of the old distribution, which damps jumps between iterations.
        mean = config.momentum_mean * mean + (1.0 - config.momentum_mean) * elites.mean(dim=0)
        std = config.momentum_std * std + (1.0 - config.momentum_std) * elite_std
        std = std.clamp(config.min_std, config.max_std)
    # A convex mix of clipped samples stays inside the bounds; clamp guards float round-off.
    mean = mean.clamp(-config.action_bound, config.action_bound)
    return PlanResult(actions=mean, std=std, energy=energies[-1], iteration_energies=tuple(energies))
