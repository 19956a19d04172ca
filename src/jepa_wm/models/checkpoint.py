"""World-model checkpoints: our folder format, and official V-JEPA 2 / V-JEPA 2-AC ``.pt`` files.

Our format is a folder with ``model.safetensors`` (weights) and ``config.json``
(``world_model``: the WorldModelConfig, plus image size, joint names, action scale and
training ``metadata``). Loading never unpickles anything.

Official files hold ``encoder`` / ``target_encoder`` / ``predictor`` state dicts whose keys
may carry ``module.`` and ``backbone.`` prefixes; they are read with
``torch.load(weights_only=True)``. What maps onto our modules:

* encoder: every ViT weight by name; the video patch embedding ``[D, 3, tubelet, p, p]``
  is folded to ``[D, 3, p, p]`` by summing over the tubelet, which is exactly what the
  video model computes for a still image repeated over the tubelet; a ``pos_embed`` table
  (non-RoPE models) keeps its first frame's ``g*g`` rows. RoPE models have no table.
* predictor (2-AC): ``predictor_embed``, ``action_encoder``, ``state_encoder``,
  ``predictor_blocks.*``, ``predictor_norm``, ``predictor_proj`` by name; the official
  ``extrinsics_encoder`` is dropped and our ``time_embed`` / ``token_embed`` keep their
  initial values (V-JEPA 2-AC positions its tokens with RoPE instead), so the predictor
  needs fine-tuning (``train.mode: frozen_encoder``) before it is used for planning.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from jepa_wm.config import ConfigError, WorldModelConfig, from_dict, to_dict
from jepa_wm.models.world_model import WorldModel

FORMAT = "jepa_ros.world_model"
VERSION = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.json"


class CheckpointError(ValueError):
    """A checkpoint is missing, malformed, or does not fit the model it is loaded into."""


def save_checkpoint(model: WorldModel, folder: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``model`` to ``folder`` (created) as safetensors weights + config.json; returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    save_file(state, str(folder / WEIGHTS), metadata={"format": FORMAT})
    config = model.config
    document = {
        "format": FORMAT,
        "version": VERSION,
        "world_model": to_dict(config),
        "image_size": config.encoder.image_size,
        "joint_names": list(config.joint_names),
        "action_scale": config.action_scale,
        "metadata": metadata or {},
    }
    (folder / CONFIG).write_text(json.dumps(document, indent=2) + "\n")
    return folder


def read_checkpoint_config(folder: str | Path) -> tuple[WorldModelConfig, dict[str, Any]]:
    """The WorldModelConfig and training metadata stored in a checkpoint folder."""
    path = Path(folder) / CONFIG
    if not path.is_file():
        raise CheckpointError(f"{folder}: no {CONFIG}; expected a folder written by save_checkpoint")
    try:
        document = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: not valid JSON ({err})") from err
    if document.get("format") != FORMAT or "world_model" not in document:
        raise CheckpointError(f"{path}: format={document.get('format')!r}, expected {FORMAT!r} with a 'world_model' key")
    try:
        config = from_dict(WorldModelConfig, document["world_model"], f"{path}:world_model")
    except ConfigError as err:
        raise CheckpointError(str(err)) from err
    return config, document.get("metadata", {})


def explored_joint_range(folder: str | Path, joint_names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray] | None:
    """Joint range of the training data stored with a checkpoint, in ``joint_names`` order (None if absent)."""
    config, metadata = read_checkpoint_config(folder)
    explored = metadata.get("explored_joint_range")
    if explored is None:
        return None
    order = [config.joint_names.index(name) for name in joint_names]
    lower, upper = np.asarray(explored["lower"], dtype=np.float64), np.asarray(explored["upper"], dtype=np.float64)
    if lower.shape != (len(config.joint_names),) or upper.shape != lower.shape:
        raise CheckpointError(f"{folder}: explored_joint_range has {lower.shape} / {upper.shape} values, "
                              f"expected {len(config.joint_names)} (one per joint)")
    return lower[order], upper[order]


def load_checkpoint(folder: str | Path, map_location: str | torch.device = "cpu") -> WorldModel:
    """Rebuild the WorldModel stored in ``folder`` (no pickle); a shape/key mismatch names what differs."""
    config, _ = read_checkpoint_config(folder)
    weights = Path(folder) / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"{folder}: no {WEIGHTS}")
    model = WorldModel(config)
    load_state_checked(model, load_file(str(weights), device=str(map_location)), f"{weights}")
    return model.to(map_location).eval()


def load_state_checked(module: torch.nn.Module, state: dict[str, torch.Tensor], source: str,
                       allow_missing: tuple[str, ...] = ()) -> None:
    """load_state_dict that raises CheckpointError listing missing, unexpected and mis-shaped keys."""
    own = module.state_dict()
    missing = [k for k in own if k not in state and not k.startswith(allow_missing)]
    unexpected = [k for k in state if k not in own]
    mismatched = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys {_short(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_short(unexpected)}")
    if mismatched:
        problems.append(f"shapes differ: {_short(mismatched)}")
    if problems:
        raise CheckpointError(f"{source} does not fit {type(module).__name__}: " + "; ".join(problems))
    module.load_state_dict({k: v for k, v in state.items()}, strict=False)


def _short(items: list[str], limit: int = 8) -> str:
    more = f" ... and {len(items) - limit} more" if len(items) > limit else ""
    return "[" + ", ".join(items[:limit]) + "]" + more


# ---- official V-JEPA 2 / V-JEPA 2-AC checkpoints --------------------------------------


def strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove the ``module.`` (DDP) and ``backbone.`` (wrapper) prefixes from state-dict keys."""
    out = {}
    for key, value in state.items():
        for prefix in ("module.", "backbone."):
            while key.startswith(prefix):
                key = key[len(prefix) :]
        out[key] = value
    return out


def encoder_state_from_vjepa2(state: dict[str, torch.Tensor], grid_size: int) -> dict[str, torch.Tensor]:
    """Adapt a V-JEPA 2 encoder state dict to the image encoder (fold tubelet, first-frame positions)."""
    state = strip_prefixes(state)
    weight = state.get("patch_embed.proj.weight")
    if weight is not None and weight.ndim == 5:  # [D, C, tubelet, p, p]
        state["patch_embed.proj.weight"] = weight.sum(dim=2)
    pos = state.get("pos_embed")
    if pos is not None and pos.shape[1] > grid_size * grid_size:
        state["pos_embed"] = pos[:, : grid_size * grid_size].clone()
    return state


def load_vjepa2(path: str | Path, config: WorldModelConfig, encoder_key: str = "target_encoder",
                load_predictor: bool = True) -> WorldModel:
    """WorldModel with weights from an official V-JEPA 2 (or 2-AC) ``.pt`` file; ``config`` must match its sizes."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"V-JEPA 2 checkpoint {path} does not exist")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path}: expected a dict with 'encoder'/'target_encoder'/'predictor', got {type(checkpoint).__name__}")
    key = encoder_key if encoder_key in checkpoint else "encoder"
    if key not in checkpoint:
        raise CheckpointError(f"{path}: no '{encoder_key}' or 'encoder' entry; keys are {sorted(checkpoint)}")
    model = WorldModel(config)  # latent_norm starts as the identity (mean 0, variance 1)
    encoder_state = encoder_state_from_vjepa2(checkpoint[key], config.encoder.grid_size)
    load_state_checked(model.encoder, encoder_state, f"{path}:{key}")
    predictor_state = strip_prefixes(checkpoint.get("predictor") or {})
    # Only a 2-AC predictor (it has an action encoder) fits; V-JEPA 2's masked-video predictor does not.
    if load_predictor and "action_encoder.weight" in predictor_state:
        predictor_state = {k: v for k, v in predictor_state.items() if not k.startswith("extrinsics_encoder")}
        load_state_checked(model.predictor, predictor_state, f"{path}:predictor",
                           allow_missing=("time_embed", "token_embed"))
    return model
