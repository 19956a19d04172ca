"""World-model checkpoints: the package's folder format.

Our format is a folder with ``model.safetensors`` (weights) and ``config.json``
(``world_model``: the WorldModelConfig, plus image size, joint names, action scale and
training ``metadata``). Loading never unpickles anything.

Official V-JEPA 2 / 2-AC ``.pt`` files: :mod:`jepa_wm.models.vjepa2_files`; any other ``.pt``
file is read with :func:`load_torch_file` (``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from jepa_wm.config import ConfigError, WorldModelConfig, check_joint_names, from_dict, to_dict
from jepa_wm.models.world_model import WorldModel

FORMAT = "jepa_ros.world_model"
VERSION = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.json"


def default_checkpoint() -> Path:
    """The embedded checkpoint folder: ``checkpoints/default`` in the package share (source tree or install)."""
    from jepa_wm.config import package_share

    return package_share() / "checkpoints" / "default"


def push_checkpoint() -> Path:
    """The push checkpoint `make checkpoint-push` makes: ``checkpoints/push`` in the package share (refused,
    with what makes one, where there is none)."""
    from jepa_wm.config import package_share

    folder = package_share() / "checkpoints" / "push"
    if not (folder / CONFIG).is_file():
        raise CheckpointError(f"no push checkpoint in {folder}: `make checkpoint-push` makes one from exploration data "
                              "(about 45 minutes on a 2-core CPU), or give --checkpoint")
    return folder


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


def update_metadata(folder: str | Path, **fields: Any) -> None:
    """Add or replace metadata fields of a checkpoint folder (e.g. a calibration), leaving the weights alone."""
    read_checkpoint_config(folder)  # refuses what is not a checkpoint
    path = Path(folder) / CONFIG
    document = json.loads(path.read_text())
    document["metadata"] = {**document.get("metadata", {}), **fields}
    path.write_text(json.dumps(document, indent=2) + "\n")


def checkpoint_robot(folder: str | Path) -> str:
    """The robot preset a checkpoint was trained for (``jepa-ros train --robot``, kept in its metadata).

    A checkpoint without one is taken for the project's arm only when its joints are that arm's.
    """
    config, metadata = read_checkpoint_config(folder)
    if metadata.get("robot"):
        return str(metadata["robot"])
    if config.joint_names == WorldModelConfig.joint_names:
        return "jepa_arm"
    raise ConfigError(f"checkpoint {folder} names no robot preset and its joints {list(config.joint_names)} are not "
                      "jepa_arm's: pass the robot (--robot / robot:=)")


def training_seconds(folder: str | Path) -> float:
    """Seconds of training behind a checkpoint: its own record's and those of the stages it started from."""
    record, total = read_checkpoint_config(folder)[1], 0.0
    while record:
        total += float(record.get("train_seconds", 0.0))
        record = record.get("init")
    return total


def read_checkpoint_config(folder: str | Path) -> tuple[WorldModelConfig, dict[str, Any]]:
    """The WorldModelConfig and training metadata stored in a checkpoint folder."""
    path = Path(folder) / CONFIG
    if not path.is_file():
        raise CheckpointError(f"{folder}: no {CONFIG}; expected a folder written by save_checkpoint")
    try:
        document = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as err:
        raise CheckpointError(f"{path}: not UTF-8 text ({err}); expected the JSON written by save_checkpoint") from None
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(document, dict):
        raise CheckpointError(f"{path}: holds a JSON {type(document).__name__}; expected an object with 'format'")
    if document.get("format") != FORMAT or "world_model" not in document:
        raise CheckpointError(f"{path}: format={document.get('format')!r}, expected {FORMAT!r} with a 'world_model' key")
    metadata = document.get("metadata", {})
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{path}: metadata is a {type(metadata).__name__}; expected an object")
    try:
        config = from_dict(WorldModelConfig, document["world_model"], f"{path}:world_model")
    except ConfigError as err:
        raise CheckpointError(str(err)) from None
    return config, metadata


def explored_joint_range(folder: str | Path, joint_names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray] | None:
    """Joint range of the training data stored with a checkpoint, in ``joint_names`` order (None if absent).

    Refuses, naming the file: joints other than the checkpoint's, a malformed range, a non-finite
    or inverted (lower > upper) value.
    """
    config, metadata = read_checkpoint_config(folder)
    explored = metadata.get("explored_joint_range")
    if explored is None:
        return None
    where = f"{Path(folder) / CONFIG}: metadata.explored_joint_range"
    try:
        check_joint_names(config.joint_names, joint_names)
    except ConfigError as err:
        raise CheckpointError(f"{folder}: {err}") from None
    try:
        lower = np.asarray(explored["lower"], dtype=np.float64)
        upper = np.asarray(explored["upper"], dtype=np.float64)
    except (TypeError, KeyError, ValueError) as err:
        raise CheckpointError(f"{where} is {explored!r}; expected lists 'lower' and 'upper' of numbers") from err
    if lower.shape != (len(config.joint_names),) or upper.shape != lower.shape:
        raise CheckpointError(f"{where} has {lower.shape} / {upper.shape} values, "
                              f"expected {len(config.joint_names)} (one per joint)")
    bad = [f"{name} [{low}, {high}]" for name, low, high in zip(config.joint_names, lower, upper)
           if not (np.isfinite(low) and np.isfinite(high) and low <= high)]
    if bad:
        raise CheckpointError(f"{where}: {', '.join(bad)}; expected finite values with lower <= upper")
    order = [config.joint_names.index(name) for name in joint_names]
    return lower[order], upper[order]


def load_checkpoint(folder: str | Path, map_location: str | torch.device = "cpu") -> WorldModel:
    """Rebuild the WorldModel stored in ``folder`` (no pickle); a shape/key mismatch names what differs.

    The weights file's header is checked against the architecture in config.json before anything
    is allocated: a corrupt file or an architecture larger than its weights is refused, naming the file.
    """
    config, _ = read_checkpoint_config(folder)
    weights = Path(folder) / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"{folder}: no {WEIGHTS}")
    try:
        with safe_open(str(weights), framework="pt") as header:
            shapes = {key: tuple(header.get_slice(key).get_shape()) for key in header.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{weights}: not a readable safetensors file ({err})") from None
    with torch.device("meta"):  # shapes only: nothing is allocated for a config that does not fit
        skeleton = WorldModel(config)
    check_state_shapes(skeleton, shapes, f"{weights}")
    model = WorldModel(config)
    try:
        state = load_file(str(weights), device=str(map_location))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{weights}: could not be read ({err})") from None
    load_state_checked(model, state, f"{weights}")
    return model.to(map_location).eval()


def check_state_shapes(module: torch.nn.Module, shapes: dict[str, tuple[int, ...]], source: str,
                       allow_missing: tuple[str, ...] = ()) -> None:
    """Raise CheckpointError listing the missing, unexpected and mis-shaped keys of ``shapes`` for ``module``."""
    own = module.state_dict()
    missing = [k for k in own if k not in shapes and not k.startswith(allow_missing)]
    unexpected = [k for k in shapes if k not in own]
    mismatched = [
        f"{k}: checkpoint {tuple(shapes[k])} vs model {tuple(own[k].shape)}"
        for k in own
        if k in shapes and tuple(shapes[k]) != tuple(own[k].shape)
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


def load_state_checked(module: torch.nn.Module, state: dict[str, torch.Tensor], source: str,
                       allow_missing: tuple[str, ...] = ()) -> None:
    """load_state_dict that raises CheckpointError listing missing, unexpected and mis-shaped keys."""
    check_state_shapes(module, {key: tuple(value.shape) for key, value in state.items()}, source, allow_missing)
    bad = [key for key, value in state.items() if value.is_floating_point() and not torch.isfinite(value).all()]
    if bad:
        raise CheckpointError(f"{source}: non-finite weights in {_short(bad)}; expected finite values")
    module.load_state_dict({k: v for k, v in state.items()}, strict=False)


def _short(items: list[str], limit: int = 8) -> str:
    more = f" ... and {len(items) - limit} more" if len(items) > limit else ""
    return "[" + ", ".join(items[:limit]) + "]" + more


def load_torch_file(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """A ``.pt`` file read with ``torch.load(weights_only=True)``: tensors and plain containers, never code.

    A file that holds anything else (code, arbitrary objects) is refused as it is: it is not loaded.
    """
    path = Path(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        # torch's own text advises turning the guard off: only its reason is repeated here
        reason = str(err).split("WeightsUnpickler error:")[-1].split("Check the documentation")[0].strip()
        if "Unsupported global" not in reason:  # not a pickle of objects at all: damaged or another format
            raise CheckpointError(f"{path}: not a readable torch file ({reason})") from None
        raise CheckpointError(
            f"{path} holds code or Python objects other than tensors and plain containers; this project loads "
            f"only weights from .pt files and will not load it"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: not a readable torch file ({type(err).__name__}: {err})") from None
