"""Latent planners: pure torch functions over a rollout callable and a cost.

    cost = latent_goal_cost(goal_latent, config)
    result = plan(rollout, cost, config, action_dim, warm_start=None, generator=g)
    result.actions[0]            # execute this; next tick: warm_start=shift_plan(result.actions)
"""

from __future__ import annotations

import torch
from torch import Tensor

from jepa_wm.config import PlannerConfig
from jepa_wm.planning.base import (
    CostFn,
    PlanningError,
    PlanResult,
    RolloutFn,
    make_generator,
    shift_plan,
)
from jepa_wm.planning.cem import cem
from jepa_wm.planning.costs import action_cost, latent_distance, latent_goal_cost, objects_goal_cost
from jepa_wm.planning.mppi import mppi

PLANNERS = {"cem": cem, "mppi": mppi}


def plan(
    rollout: RolloutFn,
    cost: CostFn,
    config: PlannerConfig,
    action_dim: int,
    warm_start: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> PlanResult:
    """Run the planner named by ``config.method``; shapes as in :func:`cem` and :func:`mppi`."""
    return PLANNERS[config.method](rollout, cost, config, action_dim, warm_start=warm_start, generator=generator)


__all__ = [
    "CostFn",
    "PLANNERS",
    "PlanResult",
    "PlanningError",
    "RolloutFn",
    "action_cost",
    "cem",
    "latent_distance",
    "latent_goal_cost",
    "make_generator",
    "mppi",
    "objects_goal_cost",
    "plan",
    "shift_plan",
]
