"""Pieces shared by the CEM and MPPI planners: result type, warm start, sampling, scoring.

Shapes: ``S`` candidate sequences, ``H`` plan horizon, ``A`` action dimension (one per
joint), ``N`` latent tokens, ``D`` latent width. Actions are normalised: one unit is
``WorldModelConfig.action_scale`` radians of joint-position delta.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from jepa_wm.config import PlannerConfig

# actions [S, H, A] -> predicted latents [S, H, N, D]
RolloutFn = Callable[[Tensor], Tensor]
# (predicted latents [S, H, N, D], actions [S, H, A]) -> cost [S], lower is better
CostFn = Callable[[Tensor, Tensor], Tensor]


class PlanningError(RuntimeError):
    """The planner cannot produce a plan (bad shapes, or every candidate scored non-finite)."""


@dataclass(frozen=True)
class PlanResult:
    """What a planner returns; ``actions[0]`` is the action to execute now."""

    actions: Tensor  # [H, A] normalised, inside [-action_bound, action_bound]
    std: Tensor  # [H, A] sampling std after the last iteration
    energy: float  # lowest cost among the candidates of the last iteration
    iteration_energies: tuple[float, ...]  # lowest cost per iteration (how the search went)


def shift_plan(actions: Tensor, fill: float = 0.0) -> Tensor:
    """Receding-horizon warm start: drop the executed first step, append ``fill`` at the end.

    actions [H, A] -> [H, A]; ``fill`` 0 means "hold still", the prior of both planners.
    """
    if actions.ndim != 2:
        raise PlanningError(f"shift_plan expects actions of shape [H, A], got {tuple(actions.shape)}")
    shifted = torch.full_like(actions, fill)
    shifted[:-1] = actions[1:]
    return shifted


def make_generator(config: PlannerConfig, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator seeded from ``config.seed`` so a plan is reproducible."""
    generator = torch.Generator(device=device)
    generator.manual_seed(config.seed)
    return generator


def initial_mean(config: PlannerConfig, action_dim: int, warm_start: Tensor | None, device: torch.device) -> Tensor:
    """Start of the search [H, A]: the shifted previous plan if given, else zeros."""
    if action_dim < 1:
        raise PlanningError(f"action_dim={action_dim}: expected >= 1")
    if warm_start is None:
        return torch.zeros(config.horizon, action_dim, device=device)
    expected = (config.horizon, action_dim)
    if tuple(warm_start.shape) != expected:
        raise PlanningError(f"warm_start has shape {tuple(warm_start.shape)}, expected [H, A] = {list(expected)}")
    if not torch.isfinite(warm_start).all():
        raise PlanningError("warm_start contains NaN or inf")
    # A plan made with a wider bound (or by hand) must not leak out of this one.
    return warm_start.to(device=device, dtype=torch.float32).clamp(-config.action_bound, config.action_bound)


def initial_std(config: PlannerConfig, action_dim: int, device: torch.device) -> Tensor:
    """Sampling std [H, A] at the first iteration: init_std, kept inside [min_std, max_std]."""
    std = min(max(config.init_std, config.min_std), config.max_std)
    return torch.full((config.horizon, action_dim), std, device=device)


def sample_candidates(mean: Tensor, std: Tensor, num_samples: int, bound: float, generator: torch.Generator) -> Tensor:
    """Gaussian candidates around ``mean`` clipped to the bounds: [H, A] -> [S, H, A].

    Candidate 0 is the mean itself, so a good warm start (or the previous iteration's
    answer) is always scored and never lost to sampling noise.
    """
    noise = torch.randn((num_samples, *mean.shape), generator=generator, device=mean.device)  # [S, H, A]
    candidates = mean.unsqueeze(0) + std.unsqueeze(0) * noise
    candidates[0] = mean
    return candidates.clamp(-bound, bound)


def score(rollout: RolloutFn, cost: CostFn, candidates: Tensor) -> Tensor:
    """Roll out all candidates in one batch and cost them: [S, H, A] -> [S]; non-finite -> +inf."""
    num_samples, horizon = candidates.shape[:2]
    predicted = rollout(candidates)
    if predicted.ndim < 2 or tuple(predicted.shape[:2]) != (num_samples, horizon):
        raise PlanningError(
            f"rollout returned shape {tuple(predicted.shape)}, expected [S, H, ...] = [{num_samples}, {horizon}, ...]"
        )
    costs = cost(predicted, candidates)
    if tuple(costs.shape) != (num_samples,):
        raise PlanningError(f"cost returned shape {tuple(costs.shape)}, expected [S] = [{num_samples}]")
    # A candidate the model cannot score (NaN) must never become an elite.
    costs = torch.where(torch.isfinite(costs), costs, torch.full_like(costs, float("inf")))
    if not torch.isfinite(costs).any():
        raise PlanningError(f"all {num_samples} candidate action sequences have a non-finite cost")
    return costs


def select_elites(candidates: Tensor, costs: Tensor, num_elites: int) -> tuple[Tensor, Tensor]:
    """The ``num_elites`` cheapest candidates [K, H, A] and their costs [K], cheapest first."""
    elite_costs, index = torch.topk(costs, num_elites, largest=False, sorted=True)
    return candidates[index], elite_costs


# (mean [H, A], std [H, A], elites [K, H, A], elite costs [K]) -> new (mean, std)
UpdateFn = Callable[[Tensor, Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]


def refine(
    rollout: RolloutFn,
    cost: CostFn,
    config: PlannerConfig,
    action_dim: int,
    warm_start: Tensor | None,
    generator: torch.Generator | None,
    update: UpdateFn,
) -> PlanResult:
    """The sampling loop CEM and MPPI share; ``update`` is where they differ.

    Each iteration samples ``num_samples`` sequences [S, H, A] around (mean, std), scores them
    in one batched rollout, keeps the ``num_elites`` cheapest and lets ``update`` refit the
    Gaussian. Returns the final mean [H, A] clipped to [-action_bound, action_bound].
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
        mean, std = update(mean, std, elites, elite_costs)
    # A convex mix of clipped samples stays inside the bounds; clamp guards float round-off.
    mean = mean.clamp(-config.action_bound, config.action_bound)
    return PlanResult(actions=mean, std=std, energy=energies[-1], iteration_energies=tuple(energies))
