"""Planners on toy problems with a known optimum; costs by hand; warm start; bad input."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from jepa_wm.config import PlannerConfig
from jepa_wm.planning import (
    PlanningError,
    action_cost,
    cem,
    latent_distance,
    latent_goal_cost,
    make_generator,
    mppi,
    plan,
    shift_plan,
)
from jepa_wm.planning.mppi import elite_weights

PLANNERS = [cem, mppi]
TOY = PlannerConfig(horizon=3, num_samples=256, iterations=12, num_elites=24, cost="l2", cost_over_horizon=True)


def identity_rollout(actions: torch.Tensor) -> torch.Tensor:
    """The latent after each step is the action itself: [S, H, A] -> [S, H, 1, A]."""
    return actions.unsqueeze(2)


def integrator_rollout(start: torch.Tensor, mixing: torch.Tensor):
    """A linear system z_{h+1} = z_h + mixing @ a_h: [S, H, A] -> [S, H, 1, D]."""

    def rollout(actions: torch.Tensor) -> torch.Tensor:
        steps = torch.einsum("da,sha->shd", mixing, actions)
        return (start + steps.cumsum(dim=1)).unsqueeze(2)

    return rollout


@pytest.mark.parametrize("planner", PLANNERS, ids=["cem", "mppi"])
def test_converges_to_known_optimum(planner):
    goal = torch.tensor([[0.3, -0.5, 0.7]])  # [N=1, D=3]; optimum: every action equals the goal
    result = planner(identity_rollout, latent_goal_cost(goal, TOY), TOY, action_dim=3)
    assert result.actions.shape == (3, 3)
    assert torch.allclose(result.actions, goal.expand(3, 3), atol=0.05), result.actions
    assert result.energy < 2e-3
    assert result.iteration_energies[-1] <= result.iteration_energies[0]


@pytest.mark.parametrize("planner", PLANNERS, ids=["cem", "mppi"])
def test_reaches_goal_of_linear_system(planner):
    generator = torch.Generator().manual_seed(3)
    mixing = torch.randn(4, 2, generator=generator)  # D=4 latent, A=2 actions
    start = torch.zeros(4)
    mean_action = torch.tensor([0.4, -0.3])
    goal = (start + 3 * mixing @ mean_action).unsqueeze(0)  # [1, 4] after H=3 steps
    config = dataclasses.replace(TOY, cost_over_horizon=False, iterations=20)
    result = planner(integrator_rollout(start, mixing), latent_goal_cost(goal, config), config, action_dim=2)
    final = integrator_rollout(start, mixing)(result.actions.unsqueeze(0))[0, -1, 0]
    assert torch.linalg.vector_norm(final - goal[0]) < 0.1
    # mixing has full column rank, so the optimum fixes the summed action (not its split).
    assert torch.allclose(result.actions.mean(dim=0), mean_action, atol=0.03), result.actions


@pytest.mark.parametrize("planner", PLANNERS, ids=["cem", "mppi"])
def test_never_leaves_action_bounds(planner):
    config = dataclasses.replace(TOY, action_bound=0.8, init_std=1.0, max_std=2.0)
    bound = torch.tensor(0.8).item()  # 0.8 as float32 holds it
    largest_seen = []

    def recording_rollout(actions):
        largest_seen.append(float(actions.abs().max()))
        return identity_rollout(actions)

    goal = torch.tensor([[1.5, -2.0, 0.2]])  # outside the bound: the best plan sits on it
    result = planner(recording_rollout, latent_goal_cost(goal, config), config, action_dim=3)
    assert max(largest_seen) <= bound
    assert float(result.actions.abs().max()) <= bound
    assert torch.allclose(result.actions[:, :2], torch.tensor([0.8, -0.8]).expand(3, 2), atol=0.05)


@pytest.mark.parametrize("planner", PLANNERS, ids=["cem", "mppi"])
def test_warm_start_is_scored_and_kept(planner):
    goal = torch.tensor([[0.3, -0.5, 0.7]])
    config = dataclasses.replace(TOY, iterations=1, num_samples=8, num_elites=2)
    cost = latent_goal_cost(goal, config)
    cold = planner(identity_rollout, cost, config, action_dim=3)
    warm = planner(identity_rollout, cost, config, action_dim=3, warm_start=goal.expand(3, 3).clone())
    assert warm.energy == pytest.approx(0.0, abs=1e-9)  # candidate 0 is the warm start itself
    assert cold.energy > 0.01
    # An out-of-bound warm start is clipped, not trusted.
    wild = planner(identity_rollout, cost, config, action_dim=3, warm_start=torch.full((3, 3), 9.0))
    assert float(wild.actions.abs().max()) <= config.action_bound


@pytest.mark.parametrize("method", ["cem", "mppi"])
def test_receding_horizon_loop_reaches_far_goal(method):
    """Closed loop on an integrator: execute the first action, re-plan from the new state."""
    # Summing the distance over the horizon rewards arriving early, so the first action is never idle.
    config = dataclasses.replace(TOY, method=method, iterations=3, num_samples=64, num_elites=8)
    goal = torch.tensor([[2.5, -2.0]])  # needs at least 3 full-bound steps
    cost = latent_goal_cost(goal, config)
    generator = make_generator(config)
    state, warm_start, errors = torch.zeros(2), None, []
    for _ in range(10):
        result = plan(integrator_rollout(state, torch.eye(2)), cost, config, 2, warm_start=warm_start, generator=generator)
        state = state + result.actions[0]
        warm_start = shift_plan(result.actions)
        errors.append(float(torch.linalg.vector_norm(state - goal[0])))
    assert min(errors[:4]) < 0.1, errors  # arrives about as fast as the bound allows
    assert max(errors[4:]) < 0.3, errors  # and holds there (sampling noise jitters a little)


def test_shift_plan_drops_first_and_holds_still_at_end():
    actions = torch.arange(12, dtype=torch.float32).view(4, 3)
    shifted = shift_plan(actions)
    assert torch.equal(shifted[:3], actions[1:])
    assert torch.equal(shifted[3], torch.zeros(3))
    assert torch.equal(actions[0], torch.tensor([0.0, 1.0, 2.0]))  # input untouched
    with pytest.raises(PlanningError, match=r"\[H, A\]"):
        shift_plan(torch.zeros(4))


@pytest.mark.parametrize("method", ["cem", "mppi"])
def test_seeded_and_reproducible(method):
    config = dataclasses.replace(TOY, method=method, iterations=2)
    cost = latent_goal_cost(torch.tensor([[0.3, -0.5, 0.7]]), config)
    first = plan(identity_rollout, cost, config, 3)
    again = plan(identity_rollout, cost, config, 3)
    other = plan(identity_rollout, cost, config, 3, generator=torch.Generator().manual_seed(99))
    assert torch.equal(first.actions, again.actions)
    assert not torch.equal(first.actions, other.actions)


def test_mppi_std_stays_in_range_and_weights_follow_temperature():
    config = dataclasses.replace(TOY, method="mppi", min_std=0.1, max_std=0.3, init_std=0.3)
    result = mppi(identity_rollout, latent_goal_cost(torch.tensor([[0.3, -0.5, 0.7]]), config), config, 3)
    assert float(result.std.min()) >= 0.1 - 1e-6 and float(result.std.max()) <= 0.3 + 1e-6
    weights = elite_weights(torch.tensor([1.0, 2.0, 3.0]), temperature=0.5)
    assert float(weights.sum()) == pytest.approx(1.0)
    assert float(weights[2] / weights[0]) == pytest.approx(torch.exp(torch.tensor(-2.0)).item())
    # Scale-free: costs 1000x larger give the same weights.
    assert torch.allclose(weights, elite_weights(torch.tensor([1000.0, 2000.0, 3000.0]), temperature=0.5))


@pytest.mark.parametrize("planner", PLANNERS, ids=["cem", "mppi"])
def test_non_finite_candidates_are_never_elites(planner):
    goal = torch.tensor([[0.3, -0.5, 0.7]])

    def half_broken(actions):
        latents = identity_rollout(actions).clone()
        latents[1::2] = float("nan")
        return latents

    result = planner(half_broken, latent_goal_cost(goal, TOY), TOY, action_dim=3)
    assert torch.isfinite(result.actions).all()
    assert result.energy < 0.01
    with pytest.raises(PlanningError, match="non-finite"):
        planner(lambda a: torch.full((a.shape[0], a.shape[1], 1, 3), float("nan")), latent_goal_cost(goal, TOY), TOY, 3)


def test_bad_shapes_are_named():
    cost = latent_goal_cost(torch.zeros(1, 3), TOY)
    with pytest.raises(PlanningError, match=r"warm_start has shape \(2, 3\), expected \[H, A\] = \[3, 3\]"):
        cem(identity_rollout, cost, TOY, 3, warm_start=torch.zeros(2, 3))
    with pytest.raises(PlanningError, match="rollout returned shape"):
        cem(lambda a: a[:1].unsqueeze(2), cost, TOY, 3)
    with pytest.raises(PlanningError, match="goal latent has shape"):
        latent_goal_cost(torch.zeros(2, 2, 3), TOY)
    with pytest.raises(PlanningError, match=r"expected \[N, D\] = \[1, 3\]"):
        latent_distance(torch.zeros(2, 3, 1, 3), torch.zeros(1, 4))


def test_costs_by_hand():
    goal = torch.tensor([[1.0, 0.0], [0.0, 0.0]])  # [N=2, D=2]
    predicted = torch.zeros(1, 2, 2, 2)  # [S=1, H=2, N, D]
    predicted[0, 1] = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    actions = torch.tensor([[[1.0, -1.0], [0.0, 2.0]]])  # [S=1, H=2, A=2]
    assert torch.allclose(latent_distance(predicted, goal, "l1"), torch.tensor([[0.25, 0.5]]))
    assert torch.allclose(latent_distance(predicted, goal, "l2"), torch.tensor([[0.25, 1.0]]))
    assert torch.allclose(action_cost(actions), torch.tensor([1.5]))
    end_l1 = latent_goal_cost(goal, PlannerConfig(cost="l1"))
    assert torch.allclose(end_l1(predicted, actions), torch.tensor([0.5]))
    summed_l2 = latent_goal_cost(goal.unsqueeze(0), PlannerConfig(cost="l2", cost_over_horizon=True, action_penalty=0.1))
    assert torch.allclose(summed_l2(predicted, actions), torch.tensor([1.25 + 0.15]))
    with pytest.raises(PlanningError, match="'l3'"):
        latent_distance(predicted, goal, "l3")
