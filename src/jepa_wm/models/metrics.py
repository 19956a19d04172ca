"""Quality measures of a trained world model on held-out episodes.

* multi-step latent prediction error next to the copy-last-latent baseline;
* collapse checks: per-dimension standard deviation and effective rank of the latents;
* a linear probe from one frame's latent to the joint positions (R^2).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from jepa_wm.models.world_model import WorldModel


@torch.inference_mode()
def encode_frames(model: WorldModel, frames: np.ndarray, batch_size: int = 256) -> torch.Tensor:
    """uint8 frames [T, H, W, 3] -> latents [T, N, D] in batches."""
    chunks = [model.encode(torch.from_numpy(frames[i : i + batch_size])) for i in range(0, len(frames), batch_size)]
    return torch.cat(chunks)


@torch.inference_mode()
def horizon_errors(
    model: WorldModel,
    latents: Sequence[torch.Tensor],
    joint_positions: Sequence[np.ndarray],
    actions: Sequence[np.ndarray],
    horizons: Sequence[int] = (1, 2, 4, 8),
) -> dict[str, float]:
    """Mean L1 latent error of open-loop rollouts at each horizon, and of copying the last latent.

    Per episode: latents [T, N, D], joint_positions [T, J] rad, actions [T, J] rad. Every
    start step with ``max(horizons)`` future steps is rolled out from one observed frame.
    """
    H = max(horizons)
    model_err = {h: [] for h in horizons}
    copy_err = {h: [] for h in horizons}
    for z, q, a in zip(latents, joint_positions, actions):
        starts = len(z) - H
        if starts < 1:
            continue
        q_t = torch.as_tensor(q, dtype=z.dtype)
        a_t = torch.as_tensor(a, dtype=z.dtype) / model.config.action_scale
        plans = torch.stack([a_t[s : s + H] for s in range(starts)])  # [S, H, J]
        predicted = model.imagine(z[:starts], q_t[:starts], plans, None)  # [S, H, N, D]
        for h in horizons:
            truth = z[h : starts + h]  # [S, N, D]
            model_err[h].append((predicted[:, h - 1] - truth).abs().mean(dim=(1, 2)))
            copy_err[h].append((z[:starts] - truth).abs().mean(dim=(1, 2)))
    if not model_err[H]:
        raise ValueError(f"no episode is longer than the longest horizon {H}")
    result: dict[str, float] = {}
    for h in horizons:
        m, c = torch.cat(model_err[h]).mean().item(), torch.cat(copy_err[h]).mean().item()
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


def linear_probe_r2(
    train_latents: torch.Tensor, train_targets: np.ndarray, val_latents: torch.Tensor, val_targets: np.ndarray,
    ridge: float | None = None,
) -> float:
    """Ridge regression latent [M, ...] -> targets [M, J] fit on train; mean R^2 over targets on val."""
    return float(np.mean(linear_probe_scores(train_latents, train_targets, val_latents, val_targets, ridge)))


def linear_probe_scores(
    train_latents: torch.Tensor, train_targets: np.ndarray, val_latents: torch.Tensor, val_targets: np.ndarray,
    ridge: float | None = None,
) -> np.ndarray:
    """R^2 on val of each target column [J] for a ridge probe fit on train (ridge scaled by sample count).

    ``ridge`` None chooses it per target from PROBE_RIDGES by cross-validation on train, in
    PROBE_FOLDS contiguous blocks (rows come episode by episode, so a block holds whole episodes
    and no frame is scored against its own neighbours). A fixed small ridge over-fits a target the
    latent does not hold and scores it far below 0; the chosen one scores such a target near 0.
    """
    x_train, x_val = _probe_features(train_latents), _probe_features(val_latents)
    mean, scale = x_train[:, :-1].mean(0), x_train[:, :-1].std(0) + 1e-8
    x_train[:, :-1] = (x_train[:, :-1] - mean) / scale
    x_val[:, :-1] = (x_val[:, :-1] - mean) / scale
    y_train, y_val = (np.asarray(y, dtype=np.float64).reshape(len(y), -1) for y in (train_targets, val_targets))
    if ridge is None:
        ridges = _cross_validated_ridges(x_train, y_train)
    else:
        ridges = np.full(y_train.shape[1], float(ridge))
    predicted = np.empty_like(y_val)
    for value in np.unique(ridges):
        columns = ridges == value
        predicted[:, columns] = x_val @ _ridge_fit(x_train, y_train[:, columns], value)
    return 1.0 - ((y_val - predicted) ** 2).mean(axis=0) / (y_val.var(axis=0) + 1e-12)


def _probe_features(latents: torch.Tensor) -> np.ndarray:
    f = latents.flatten(1).double().numpy()
    return np.concatenate([f, np.ones((len(f), 1))], axis=1)


def _ridge_fit(x: np.ndarray, y: np.ndarray, ridge: float) -> np.ndarray:
    gram = x.T @ x + ridge * len(x) * np.eye(x.shape[1])
    return np.linalg.solve(gram, x.T @ y)


def _cross_validated_ridges(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per target column, the ridge of PROBE_RIDGES with the least held-out squared error."""
    blocks = np.array_split(np.arange(len(x)), PROBE_FOLDS)
    errors = np.zeros((len(PROBE_RIDGES), y.shape[1]))
    for held in blocks:
        fit = np.setdiff1d(np.arange(len(x)), held)
        for i, ridge in enumerate(PROBE_RIDGES):
            errors[i] += ((y[held] - x[held] @ _ridge_fit(x[fit], y[fit], ridge)) ** 2).sum(axis=0)
    return np.asarray(PROBE_RIDGES)[errors.argmin(axis=0)]
