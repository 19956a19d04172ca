"""Quality measures of a trained world model on held-out episodes.

* multi-step latent prediction error next to the copy-last-latent baseline;
* collapse checks: per-dimension standard deviation and effective rank of the latents;
* a linear probe from one frame's latent to the joint positions (R^2 and MAE from one fit).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from jepa_wm.models.world_model import WorldModel

# (context latents [B, 1, N, D], context joints [B, 1, J], actions [B, H, J]) -> [B, H, N, D]
BatchRollout = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@torch.inference_mode()
def encode_frames(
    model: WorldModel, frames: np.ndarray, batch_size: int = 256, progress: Callable[[int], object] | None = None
) -> torch.Tensor:
    """uint8 frames [T, H, W, 3] -> latents [T, N, D] in batches; ``progress(n)`` after each batch of n frames."""
    chunks = []
    for begin in range(0, len(frames), batch_size):
        chunks.append(model.encode(torch.from_numpy(np.ascontiguousarray(frames[begin : begin + batch_size]))))
        if progress is not None:
            progress(len(chunks[-1]))
    return torch.cat(chunks)


@torch.no_grad()
def prediction_errors(
    rollout: BatchRollout,
    latents: torch.Tensor,
    joint_positions: torch.Tensor,
    actions: torch.Tensor,
    starts: np.ndarray,
    horizon: int,
    batch_size: int = 256,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean L1 latent error per horizon 1..H of the model and of copy-last: two [H] arrays.

    latents [T, N, D], joint_positions [T, J], actions [T, J] normalised; the action at t
    leads from frame t to frame t+1, so step h of a rollout from t is compared to t+h.
    """
    if starts.size == 0:  # a run shorter than the horizon: no figure rather than a fake zero
        return np.full(horizon, np.nan), np.full(horizon, np.nan)
    model_sum = torch.zeros(horizon, dtype=torch.float64)
    copy_sum = torch.zeros(horizon, dtype=torch.float64)
    offsets = torch.arange(1, horizon + 1)
    for chunk in np.array_split(starts, max(1, int(np.ceil(starts.size / batch_size)))):
        if chunk.size == 0:
            continue
        t = torch.as_tensor(chunk, dtype=torch.long)
        future = t[:, None] + offsets[None, :]  # [B, H]
        targets = latents[future]  # [B, H, N, D]
        predicted = rollout(latents[t][:, None], joint_positions[t][:, None], actions[future - 1])  # [B, H, N, D]
        model_sum += (predicted - targets).abs().mean(dim=(2, 3)).sum(dim=0).double()
        copy_sum += (latents[t][:, None] - targets).abs().mean(dim=(2, 3)).sum(dim=0).double()
    return (model_sum / starts.size).numpy(), (copy_sum / starts.size).numpy()


def horizon_errors(
    model: WorldModel,
    latents: Sequence[torch.Tensor],
    joint_positions: Sequence[np.ndarray],
    actions: Sequence[np.ndarray],
    horizons: Sequence[int] = (1, 2, 4, 8),
) -> dict[str, float]:
    """Mean L1 latent error of open-loop rollouts at each horizon, and of copying the last latent.

    Per episode: latents [T, N, D], joint_positions [T, J] rad, actions [T, J] rad. Every start step
    with ``max(horizons)`` future steps is rolled out from one observed frame (:func:`prediction_errors`,
    the error `jepa-ros evaluate` reports), and the errors are averaged over all starts.
    """
    longest = max(horizons)
    model_sum, copy_sum, count = np.zeros(longest), np.zeros(longest), 0
    for z, q, a in zip(latents, joint_positions, actions):
        starts = np.arange(max(0, len(z) - longest))
        if starts.size == 0:
            continue
        q_t = torch.as_tensor(q, dtype=z.dtype)
        a_t = torch.as_tensor(a, dtype=z.dtype) / model.config.action_scale
        model_err, copy_err = prediction_errors(model.rollout, z, q_t, a_t, starts, longest)
        model_sum, copy_sum, count = model_sum + model_err * starts.size, copy_sum + copy_err * starts.size, count + starts.size
    if count == 0:
        raise ValueError(f"no episode is longer than the longest horizon {longest}")
    result: dict[str, float] = {}
    for h in horizons:
        m, c = float(model_sum[h - 1] / count), float(copy_sum[h - 1] / count)
        result[f"h{h}_error"], result[f"h{h}_copy_error"], result[f"h{h}_error_ratio"] = m, c, m / max(c, 1e-12)
    return result


def latent_statistics(latents: torch.Tensor) -> dict[str, float]:
    """Collapse checks on flattened latents [M, F]: per-dimension std and effective rank."""
    x = latents.flatten(1).double()
    std = x.std(dim=0)
    singular = torch.linalg.svdvals(x - x.mean(0))
    p = singular / singular.sum()
    effective_rank = torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum()).item()
    return {
        "latent_std_min": std.min().item(),
        "latent_std_mean": std.mean().item(),
        "latent_effective_rank": effective_rank,
        "latent_features": x.shape[1],
    }


PROBE_RIDGES = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)  # per-sample ridge penalties the probe chooses from
PROBE_FOLDS = 5


@dataclass(frozen=True)
class ProbeScores:
    """How well a linear probe reads each target (joint) from the latents of held-out frames."""

    r2: np.ndarray  # [J] coefficient of determination
    mae: np.ndarray  # [J] mean absolute error, in the targets' unit (rad for joints)
    baseline_mae: np.ndarray  # [J] mean absolute error of predicting the fitting frames' mean: the floor to beat


def fit_probe(
    latents: torch.Tensor, targets: np.ndarray, ridge: float | None = None
) -> Callable[[torch.Tensor], np.ndarray]:
    """Ridge regression latents [M, ...] -> targets [M, J] (:func:`probe_weights`); returns the predictor
    latents [K, ...] -> [K, J]."""
    weights = probe_weights(latents, targets, ridge)
    return lambda new_latents: _probe_features(new_latents) @ weights


def probe_weights(latents: torch.Tensor, targets: np.ndarray, ridge: float | None = None) -> np.ndarray:
    """Weights [F + 1, J] of a ridge regression from flattened latents [M, F] and a constant to targets [M, J].

    Features are standardised for the fit (the weights returned apply to the latents as they are); the
    ridge is scaled by the sample count. ``ridge`` None chooses it per target from PROBE_RIDGES by
    cross-validation on the fitting frames, in PROBE_FOLDS contiguous blocks (rows come episode by
    episode, so a block holds whole episodes and no frame is scored against its own neighbours). A
    fixed small ridge over-fits a target the latent does not hold and scores it far below 0; the chosen
    one scores such a target near 0. The model's state readout is this probe (models/state_readout.py).
    """
    x = _probe_features(latents)
    mean, scale = x[:, :-1].mean(0), x[:, :-1].std(0) + 1e-8
    x[:, :-1] = (x[:, :-1] - mean) / scale
    y = np.asarray(targets, dtype=np.float64).reshape(len(targets), -1)
    ridges = _cross_validated_ridges(x, y) if ridge is None else np.full(y.shape[1], float(ridge))
    weights = np.empty((x.shape[1], y.shape[1]))
    for value in np.unique(ridges):
        columns = ridges == value
        weights[:, columns] = ridge_fit(x, y[:, columns], value)
    weights[:-1] /= scale[:, None]  # back to the latents as they are
    weights[-1] -= mean @ weights[:-1]
    return weights


def r_squared(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """R^2 of each column [J] of predictions [M, J]; nan for a column whose truth never varied (nothing to judge)."""
    spread = truth.var(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(spread > 1e-12, 1.0 - ((truth - predicted) ** 2).mean(axis=0) / spread, np.nan)


def probe_scores(
    train_latents: torch.Tensor, train_targets: np.ndarray, val_latents: torch.Tensor, val_targets: np.ndarray,
    ridge: float | None = None,
) -> ProbeScores:
    """R^2 and MAE on val of each target column [J] for a probe fit on train (:func:`fit_probe`)."""
    y_train, y_val = (np.asarray(y, dtype=np.float64).reshape(len(y), -1) for y in (train_targets, val_targets))
    predicted = fit_probe(train_latents, y_train, ridge)(val_latents)
    return ProbeScores(
        r2=r_squared(y_val, predicted),
        mae=np.abs(y_val - predicted).mean(axis=0),
        baseline_mae=np.abs(y_val - y_train.mean(axis=0)).mean(axis=0),
    )


def _probe_features(latents: torch.Tensor) -> np.ndarray:
    f = latents.flatten(1).double().numpy()
    return np.concatenate([f, np.ones((len(f), 1))], axis=1)


def ridge_fit(x: np.ndarray, y: np.ndarray, ridge: float) -> np.ndarray:
    """Weights [F, T] minimising |x @ W - y|^2 + ridge * M * |W|^2 (x [M, F], y [M, T])."""
    gram = x.T @ x + ridge * len(x) * np.eye(x.shape[1])
    return np.linalg.solve(gram, x.T @ y)


def _cross_validated_ridges(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per target column, the ridge of PROBE_RIDGES with the least held-out squared error."""
    blocks = np.array_split(np.arange(len(x)), PROBE_FOLDS)
    errors = np.zeros((len(PROBE_RIDGES), y.shape[1]))
    for held in blocks:
        fit = np.setdiff1d(np.arange(len(x)), held)
        for i, ridge in enumerate(PROBE_RIDGES):
            errors[i] += ((y[held] - x[held] @ ridge_fit(x[fit], y[fit], ridge)) ** 2).sum(axis=0)
    return np.asarray(PROBE_RIDGES)[errors.argmin(axis=0)]


# What "fit to plan with" asks of a model, on held-out data.
READY_ERROR_RATIO = 0.9  # latent error at every horizon at most this fraction of copying the last frame's
READY_PROBE_R2 = 0.5  # every joint readable from one frame's latent at least this well
READY_ENERGY_RANK = 0.5  # the recorded actions rank, on average, below the middle of random ones
READY_PROBE_FRAMES = 1000  # fewer frames than this fit a linear probe of a few hundred latent features badly


@dataclass(frozen=True)
class Readiness:
    """Whether a model is fit to plan with, and each check behind the verdict."""

    ready: bool
    checks: tuple[tuple[str, bool, str], ...]  # (name, passed, what was measured against what)
    unjudged: tuple[str, ...] = ()  # checks left out, and why

    @property
    def statement(self) -> str:
        """One line for the verdict, one per check."""
        verdict = ("READY: the model is fit to plan with" if self.ready
                   else "NOT READY: do not plan with this model (failed: "
                   + ", ".join(name for name, passed, _ in self.checks if not passed) + ")")
        return "\n".join([verdict, *(f"  [{'ok' if passed else 'FAIL'}] {name}: {text}" for name, passed, text in self.checks),
                          *(f"  [--] {text}" for text in self.unjudged)])


def readiness(error_ratios: dict[int, float], probe_r2: dict[str, float], energy_rank: float | None = None,
              probe_frames: int | None = None) -> Readiness:
    """The verdict from held-out figures: prediction error over copy-last per horizon, the probe's R^2 per joint
    and, where measured (`jepa-ros evaluate`), the recorded actions' mean energy rank among random ones.

    A model that does not beat copying the last frame is never ready, whatever else it does well. A probe
    fit on fewer than READY_PROBE_FRAMES frames (``probe_frames``) is not judged, and the statement says so.
    """
    checks, notes = [], []
    finite = {h: r for h, r in sorted(error_ratios.items()) if np.isfinite(r)}
    worst = max(finite.values()) if finite else float("nan")
    text = ", ".join(f"h{h} {r:.3f}" for h, r in finite.items()) or "not measured"
    checks.append(("beats copy-last", bool(finite) and worst <= READY_ERROR_RATIO,
                   f"latent error / copy-last error {text} (at most {READY_ERROR_RATIO} at every horizon)"))
    low = {name: r2 for name, r2 in probe_r2.items() if np.isfinite(r2) and not r2 >= READY_PROBE_R2}
    text = ", ".join(f"{name} {r2:.3f}" if np.isfinite(r2) else f"{name} n/a (never varied)"
                     for name, r2 in probe_r2.items())
    if probe_frames is not None and probe_frames < READY_PROBE_FRAMES:
        notes.append(f"sees every joint: not judged, {probe_frames} frames are too few for the probe "
                     f"(at least {READY_PROBE_FRAMES}); probe R^2 {text}")
    else:
        checks.append(("sees every joint", bool(probe_r2) and not low,
                       f"probe R^2 {text} (at least {READY_PROBE_R2}; an unseen joint cannot be planned)"))
    if energy_rank is not None:
        checks.append(("ranks the recorded actions", bool(energy_rank < READY_ENERGY_RANK),
                       f"mean energy rank {energy_rank:.3f} among random actions (below {READY_ENERGY_RANK})"))
    return Readiness(all(passed for _, passed, _ in checks), tuple(checks), tuple(notes))


def readiness_of_training(final: dict[str, float], joint_names: Sequence[str]) -> Readiness:
    """:func:`readiness` from the held-out figures `jepa-ros train` records (``h{k}_error_ratio``, ``probe_r2_<joint>``)."""
    ratios = {int(key[1:].split("_")[0]): value for key, value in final.items() if key.endswith("_error_ratio")}
    return readiness(ratios, {name: final[f"probe_r2_{name}"] for name in joint_names if f"probe_r2_{name}" in final})
