"""Offline metrics of a world model on recorded episodes (pure torch / numpy).

Shapes: ``T`` steps of an episode, ``N`` latent tokens, ``D`` latent width, ``J`` joints,
``B`` start points evaluated together, ``H`` prediction horizon, ``M`` random sequences.
Actions given to the model are normalised (rad / action_scale); reported action errors
are in rad.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from jepa_wm.config import PlannerConfig
from jepa_wm.data.episodes import gap_breaks
from jepa_wm.evaluation.quality import BatchRollout, fit_probe, prediction_errors, r_squared  # noqa: F401 - evaluate's too
from jepa_wm.planning import latent_goal_cost, plan

# (context latent [1, N, D], context joints [1, J]) -> rollout callable for the planner
RolloutFactory = Callable[[Tensor, Tensor], Callable[[Tensor], Tensor]]


def segment_ids(stamps_ns: np.ndarray, gap_factor: float = 3.0) -> np.ndarray:
    """Index of the gap-free segment each step belongs to: [T] int64 (a gap starts a new segment)."""
    stamps = np.asarray(stamps_ns, dtype=np.int64)
    if stamps.size == 0:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([[0], np.cumsum(gap_breaks(stamps, gap_factor))]).astype(np.int64)


def valid_starts(segments: np.ndarray, span: int) -> np.ndarray:
    """Steps t whose window t..t+span stays inside one gap-free segment: [K] int64."""
    steps = segments.size
    if steps <= span:
        return np.zeros(0, dtype=np.int64)
    t = np.arange(steps - span)
    return t[segments[t] == segments[t + span]]


def every(starts: np.ndarray, stride: int) -> np.ndarray:
    """Every ``stride``-th of ``starts`` (none when stride is 0), so the work grows with recorded time."""
    return starts[::stride] if stride > 0 else starts[:0]


def linear_probe(
    latents: list[Tensor], joint_positions: list[Tensor], folds: int = 5, holdout: float = 0.25
) -> dict[str, list]:
    """Joint-position probe (the one of :func:`jepa_wm.evaluation.quality.fit_probe`) cross-validated by episode.

    latents[e] [T_e, N, D], joint_positions[e] [T_e, J]. With several episodes each fold leaves
    whole episodes out; with one, the last ``holdout`` of it is held out. Returns per-episode probe
    MAE (rad) and the MAE of predicting the fitting frames' mean (the floor to beat), and per-joint
    MAE and R^2 over all held-out frames.
    """
    episodes = len(latents)
    if episodes >= 2:
        fold_of = np.arange(episodes) % min(folds, episodes)
        splits = [(np.nonzero(fold_of != k)[0], np.nonzero(fold_of == k)[0]) for k in range(min(folds, episodes))]
    else:
        splits = [(np.array([0]), np.array([0]))]
    probe_mae = [float("nan")] * episodes
    mean_mae = [float("nan")] * episodes
    predicted_all, truth_all = [], []
    for train_idx, test_idx in splits:
        if episodes >= 2:
            x_train = torch.cat([latents[i] for i in train_idx])
            y_train = torch.cat([joint_positions[i] for i in train_idx]).double().numpy()
            tests = [(i, latents[i], joint_positions[i].double().numpy()) for i in test_idx]
        else:
            cut = int(round(latents[0].shape[0] * (1 - holdout)))
            x_train, y_train = latents[0][:cut], joint_positions[0][:cut].double().numpy()
            tests = [(0, latents[0][cut:], joint_positions[0][cut:].double().numpy())]
        predict = fit_probe(x_train, y_train)
        for i, x_test, y_test in tests:
            predicted = predict(x_test)  # [K, J]
            predicted_all.append(predicted)
            truth_all.append(y_test)
            probe_mae[i] = float(np.abs(predicted - y_test).mean())
            mean_mae[i] = float(np.abs(y_train.mean(0) - y_test).mean())
    if not truth_all:
        return {"probe_mae": probe_mae, "mean_baseline_mae": mean_mae, "per_joint_mae": [], "per_joint_r2": []}
    predicted, truth = np.concatenate(predicted_all), np.concatenate(truth_all)
    r2 = r_squared(truth, predicted)
    return {"probe_mae": probe_mae, "mean_baseline_mae": mean_mae,
            "per_joint_mae": np.abs(truth - predicted).mean(axis=0).tolist(), "per_joint_r2": r2.tolist()}


def action_agreement(planned: np.ndarray, recorded: np.ndarray, min_magnitude: float = 1e-3) -> dict[str, object]:
    """Compare actions [K, J] (rad): mean abs error, mean cosine, per-joint sign agreement.

    Sign agreement counts only joints where the recorded action moves more than
    ``min_magnitude`` rad (a sign of ~0 is noise).
    """
    planned = np.asarray(planned, dtype=np.float64)
    recorded = np.asarray(recorded, dtype=np.float64)
    assert planned.shape == recorded.shape, f"planned {planned.shape} vs recorded {recorded.shape}"
    if planned.shape[0] == 0:
        return {"count": 0, "abs_error": float("nan"), "cosine": float("nan"), "sign_agreement": []}
    norms = np.linalg.norm(planned, axis=1) * np.linalg.norm(recorded, axis=1)
    cosine = np.sum(planned * recorded, axis=1) / np.maximum(norms, 1e-12)
    moving = np.abs(recorded) > min_magnitude
    agree = (np.sign(planned) == np.sign(recorded)) & moving
    with np.errstate(invalid="ignore"):
        sign = agree.sum(0) / moving.sum(0)
    return {
        "count": int(planned.shape[0]),
        "abs_error": float(np.abs(planned - recorded).mean()),
        "per_joint_abs_error": np.abs(planned - recorded).mean(0).tolist(),
        "cosine": float(cosine[norms > 0].mean()) if (norms > 0).any() else float("nan"),
        "sign_agreement": [None if np.isnan(v) else float(v) for v in sign],
        # no joint moved in any recorded action: nothing to agree with (not an agreement of 0)
        "sign_agreement_mean": float(agree.sum() / moving.sum()) if moving.any() else float("nan"),
    }


@dataclass(frozen=True)
class PlanComparison:
    """First planned action beside the recorded one, at each evaluated start (rad)."""

    starts: np.ndarray  # [K]
    planned: np.ndarray  # [K, J]
    recorded: np.ndarray  # [K, J]
    energies: np.ndarray  # [K] planner energy of its plan


def planner_agreement(
    rollout_factory: RolloutFactory,
    latents: Tensor,
    joint_positions: Tensor,
    actions_rad: Tensor,
    starts: np.ndarray,
    goal_offset: int,
    config: PlannerConfig,
    action_scale: float,
    step: Callable[[], None] = lambda: None,
) -> PlanComparison:
    """Plan from frame t toward frame t+k and keep the first planned action (rad); one plan per start."""
    planned, energies = [], []
    generator = torch.Generator().manual_seed(config.seed)
    for t in starts.tolist():
        rollout = rollout_factory(latents[t : t + 1], joint_positions[t : t + 1])
        cost = latent_goal_cost(latents[t + goal_offset], config)
        result = plan(rollout, cost, config, actions_rad.shape[1], generator=generator)
        planned.append((result.actions[0] * action_scale).double().numpy())
        energies.append(result.energy)
        step()
    recorded = actions_rad[torch.as_tensor(starts, dtype=torch.long)].double().numpy()
    planned_array = np.stack(planned) if planned else np.zeros_like(recorded)
    return PlanComparison(starts, planned_array, recorded, np.asarray(energies, dtype=np.float64))


@torch.no_grad()
def energy_ranks(
    rollout: BatchRollout,
    latents: Tensor,
    joint_positions: Tensor,
    actions: Tensor,
    starts: np.ndarray,
    goal_offset: int,
    config: PlannerConfig,
    num_random: int = 15,
    batch_starts: int = 16,
    pool: np.ndarray | None = None,
) -> np.ndarray:
    """Rank of the recorded sequence's energy among alternatives, per start: [K, 2] in [0, 1], 0 = lowest.

    Column 0 ranks the recorded normalised actions t..t+k-1 among ``num_random`` draws
    from the planner's own prior (N(0, init_std) clipped to the bound); column 1 among
    ``num_random`` recorded sequences from other start points (``pool``, default
    ``starts``), which have the same size and style, so only the model's sense of where
    an action leads can tell them apart. All are rolled out from frame t and scored toward
    frame t+k with the planner's cost. Chance level is 0.5.
    """
    generator = torch.Generator().manual_seed(config.seed + 1)
    pool = torch.as_tensor(starts if pool is None else pool, dtype=torch.long)
    joints, steps = actions.shape[1], torch.arange(goal_offset)
    repeat = 2 * num_random + 1
    ranks = []
    for chunk in np.array_split(starts, max(1, int(np.ceil(starts.size / batch_starts)))):
        if chunk.size == 0:
            continue
        t = torch.as_tensor(chunk, dtype=torch.long)
        recorded = actions[t[:, None] + steps]  # [B, k, J]
        noise = torch.randn(chunk.size, num_random, goal_offset, joints, generator=generator) * config.init_std
        prior = noise.clamp(-config.action_bound, config.action_bound)  # [B, M, k, J]
        other_starts = pool[torch.randint(pool.numel(), (chunk.size, num_random), generator=generator)]  # [B, M]
        others = actions[other_starts[..., None] + steps]  # [B, M, k, J]
        candidates = torch.cat([recorded[:, None], prior, others], dim=1)  # [B, 2M+1, k, J]
        context = latents[t].repeat_interleave(repeat, dim=0)[:, None]  # [B*(2M+1), 1, N, D]
        context_joints = joint_positions[t].repeat_interleave(repeat, dim=0)[:, None]  # [B*(2M+1), 1, J]
        flat = candidates.reshape(-1, goal_offset, joints)  # [B*(2M+1), k, J]
        predicted = rollout(context, context_joints, flat).reshape(chunk.size, repeat, goal_offset, *latents.shape[1:])
        for b, start in enumerate(chunk.tolist()):
            energy = latent_goal_cost(latents[start + goal_offset], config)(predicted[b], candidates[b])  # [2M+1]
            # A draw of the same start from the pool is the recorded sequence itself: it ties, never "beats".
            ranks.append([float((energy[1 : num_random + 1] < energy[0]).double().mean()),
                          float((energy[num_random + 1 :] < energy[0]).double().mean())])
    return np.asarray(ranks, dtype=np.float64).reshape(-1, 2)
