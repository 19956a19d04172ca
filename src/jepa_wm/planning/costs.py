"""Planning costs: how far an imagined future is from the goal, in latent space."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from jepa_wm.config import PlannerConfig
from jepa_wm.models.arm_appearance import ArmAppearance
from jepa_wm.planning.base import CostFn, PlanningError


def latent_distance(predicted: Tensor, goal_latent: Tensor, kind: str = "l1") -> Tensor:
    """Per-step distance to the goal: predicted [S, H, N, D], goal [N, D] -> [S, H].

    l1 is the mean absolute difference (the V-JEPA 2-AC energy); l2 the mean squared one.
    Means, not sums, so the value does not grow with the number of tokens.
    """
    if predicted.ndim != 4:
        raise PlanningError(f"predicted latents have shape {tuple(predicted.shape)}, expected [S, H, N, D]")
    if tuple(goal_latent.shape) != tuple(predicted.shape[2:]):
        raise PlanningError(
            f"goal latent has shape {tuple(goal_latent.shape)}, expected [N, D] = {list(predicted.shape[2:])}"
        )
    # at least float32: bfloat16 rollouts keep only ~3 digits, too few to sum hundreds of differences
    dtype = torch.promote_types(torch.promote_types(predicted.dtype, goal_latent.dtype), torch.float32)
    difference = predicted.to(dtype) - goal_latent.to(dtype)  # [S, H, N, D]
    if kind == "l1":
        return difference.abs().mean(dim=(2, 3))
    if kind == "l2":
        return difference.square().mean(dim=(2, 3))
    raise PlanningError(f"cost kind {kind!r}: expected 'l1' or 'l2'")


def action_cost(actions: Tensor) -> Tensor:
    """Mean squared normalised action per sequence: [S, H, A] -> [S]; favours small, calm moves."""
    return actions.square().mean(dim=(1, 2))


def latent_goal_cost(goal_latent: Tensor, config: PlannerConfig) -> CostFn:
    """Cost callable (predicted [S, H, N, D], actions [S, H, A]) -> [S] toward ``goal_latent``.

    goal_latent is [N, D] (a leading batch dimension of 1 is accepted). The distance is
    taken at the end of the horizon, or summed over it with ``cost_over_horizon``; plus
    ``action_penalty`` times the mean squared action.
    """
    goal = _goal_tokens(goal_latent)

    def cost(predicted: Tensor, actions: Tensor) -> Tensor:
        return _total(latent_distance(predicted, goal, config.cost), actions, config)

    return cost


def objects_goal_cost(goal_world: Tensor, config: PlannerConfig, arm: ArmAppearance, state: Tensor,
                      integrate: Callable[[Tensor, Tensor], Tensor]) -> CostFn:
    """Cost callable as latent_goal_cost's, comparing only what the arm does not explain (planner.goal: objects).

    ``goal_world`` [N, D] is the goal latent with the arm's part taken out (``arm.without_arm(goal_latent)``,
    at the state read from it: where the arm is in the goal image does not matter); the arm's part is
    taken out of each predicted latent at the state the candidate's actions lead to from ``state`` [A]
    (``integrate``: (states [S, A], actions [S, A]) -> [S, A]).
    """
    goal = _goal_tokens(goal_world)

    def cost(predicted: Tensor, actions: Tensor) -> Tensor:
        states, step_states = state.expand(actions.shape[0], -1), []
        for step in range(actions.shape[1]):
            states = integrate(states, actions[:, step])
            step_states.append(states)
        world = arm.without_arm(predicted, torch.stack(step_states, dim=1))  # [S, H, N, D]
        return _total(latent_distance(world, goal, config.cost), actions, config)

    return cost


def _goal_tokens(goal_latent: Tensor) -> Tensor:
    """A goal latent [N, D] or [1, N, D] -> [N, D], detached; PlanningError for any other shape."""
    if goal_latent.ndim == 3 and goal_latent.shape[0] == 1:
        goal_latent = goal_latent[0]
    if goal_latent.ndim != 2:
        raise PlanningError(f"goal latent has shape {tuple(goal_latent.shape)}, expected [N, D] or [1, N, D]")
    return goal_latent.detach()


def _total(distance: Tensor, actions: Tensor, config: PlannerConfig) -> Tensor:
    """Per-step distances [S, H] -> cost [S]: at the end of the horizon or summed over it, plus the action penalty."""
    total = distance.sum(dim=1) if config.cost_over_horizon else distance[:, -1]
    if config.action_penalty > 0:
        total = total + config.action_penalty * action_cost(actions)
    return total
