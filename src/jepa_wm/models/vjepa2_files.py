"""Official V-JEPA 2 / V-JEPA 2-AC ``.pt`` files: loading them, and ``jepa-ros import-vjepa2``.

Official files hold ``encoder`` / ``target_encoder`` / ``predictor`` state dicts whose keys
may carry ``module.`` and ``backbone.`` prefixes; they are read with
``torch.load(weights_only=True)``. What maps onto our modules:

* encoder: every ViT weight by name. The video patch embedding ``[D, 3, tubelet, p, p]`` loads
  as it is into an encoder with that ``tubelet_size`` (clips of distinct frames), or folded to
  ``[D, 3, p, p]`` by summing over the tubelet into an image encoder (``tubelet_size: 1``), which is
  exactly what the video model computes for a still image repeated over the tubelet. A RoPE
  encoder's file may carry a ``pos_embed`` entry (the released ones do): RoPE does not use it and
  it is left out, as the official hub loader does. A non-RoPE file's table keeps its first
  frame's rows, interpolated bicubically (as the reference does) when the file was trained at
  another image size (``source_image_size``).
* predictor (2-AC): every weight by name into ``predictor.variant: vjepa2_ac``, which computes
  what V-JEPA 2-AC computes (:mod:`~jepa_wm.models.ac_predictor`). This package's own predictor
  (``variant: jepa_ros``) positions tokens with learned tables and predicts a residual, so an
  official predictor is refused there rather than loaded into a model that computes something
  else; ``parts="encoder"`` takes the encoder alone (frozen, as V-JEPA 2-AC trains its predictor).

``jepa-ros import-vjepa2 FILE --model-config CONFIG --robot PRESET --out DIR`` writes such a file as a
checkpoint folder of this package (weights unchanged), which the node and the demo run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from jepa_wm.config import EncoderConfig, WorldModelConfig
from jepa_wm.models.checkpoint import CheckpointError, load_state_checked, load_torch_file
from jepa_wm.models.world_model import WorldModel


def strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove the ``module.`` (DDP) and ``backbone.`` (wrapper) prefixes from state-dict keys."""
    out = {}
    for key, value in state.items():
        for prefix in ("module.", "backbone."):
            while key.startswith(prefix):
                key = key[len(prefix) :]
        out[key] = value
    return out


def encoder_state_from_vjepa2(state: dict[str, torch.Tensor], config: EncoderConfig, source: str,
                              source_image_size: int | None = None) -> dict[str, torch.Tensor]:
    """Adapt a V-JEPA 2 encoder state dict to ``config`` (tubelet kept or folded, positions as the model uses them).

    source_image_size: the image size the file was trained at (default: config.image_size); it
    says how many position rows one frame has in a non-RoPE file's table.
    """
    state = strip_prefixes(state)
    weight = state.get("patch_embed.proj.weight")
    if weight is not None and weight.ndim == 5 and config.tubelet_size == 1:  # [D, C, tubelet, p, p]
        state["patch_embed.proj.weight"] = weight.sum(dim=2)
    pos = state.pop("pos_embed", None)
    if pos is None or config.use_rope:  # a RoPE encoder has no table; the released files still carry one
        return state
    size = config.image_size if source_image_size is None else source_image_size
    side, g = size // config.patch_size, config.grid_size
    if pos.ndim != 3 or pos.shape[1] % (side * side):
        raise CheckpointError(
            f"{source}: pos_embed {tuple(pos.shape)} is not a whole number of {side}x{side} position grids "
            f"(image size {size}, patch {config.patch_size}); give the image size the file was trained at"
        )
    first = pos[:, : side * side].float()  # frame 0: a still image repeated over the tubelet
    if side != g:
        grid = first.reshape(1, side, side, -1).permute(0, 3, 1, 2)
        grid = torch.nn.functional.interpolate(grid, size=(g, g), mode="bicubic")
        first = grid.permute(0, 2, 3, 1).reshape(1, g * g, -1)
    state["pos_embed"] = first.to(pos.dtype).contiguous()
    return state


def load_vjepa2(path: str | Path, config: WorldModelConfig, encoder_key: str = "target_encoder",
                parts: str = "all", source_image_size: int | None = None) -> WorldModel:
    """WorldModel with weights from an official V-JEPA 2 (or 2-AC) ``.pt`` file; ``config`` must match its sizes.

    parts: "all" (the encoder, and a 2-AC predictor where the file has one) or "encoder" (the
    predictor keeps its fresh weights). source_image_size: see :func:`encoder_state_from_vjepa2`.
    """
    path = Path(path)
    if parts not in ("all", "encoder"):
        raise ValueError(f"parts={parts!r}: expected 'all' or 'encoder'")
    if not path.is_file():
        raise CheckpointError(f"V-JEPA 2 checkpoint {path} does not exist")
    checkpoint = load_torch_file(path)
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path}: expected a dict with 'encoder'/'target_encoder'/'predictor', got {type(checkpoint).__name__}")
    key = encoder_key if encoder_key in checkpoint else "encoder"
    if key not in checkpoint:
        raise CheckpointError(f"{path}: no '{encoder_key}' or 'encoder' entry; keys are {sorted(checkpoint)}")
    model = WorldModel(config)  # latent_norm (own variant) starts as the identity (mean 0, variance 1)
    encoder_state = encoder_state_from_vjepa2(checkpoint[key], config.encoder, f"{path}:{key}", source_image_size)
    load_state_checked(model.encoder, encoder_state, f"{path}:{key}")
    predictor_state = strip_prefixes(checkpoint.get("predictor") or {})
    # Only a 2-AC predictor (it has an action encoder) fits; V-JEPA 2's masked-video predictor does not.
    if parts == "encoder" or "action_encoder.weight" not in predictor_state:
        return model
    if config.predictor.variant != "vjepa2_ac":
        raise CheckpointError(
            f"{path}: its predictor is V-JEPA 2-AC's, which this model's predictor (variant "
            f"{config.predictor.variant!r}) does not compute; set predictor.variant: vjepa2_ac to load it, "
            f"or take the encoder alone (--init-parts encoder)"
        )
    if config.action_space != "end_effector":
        raise CheckpointError(
            f"{path}: its predictor was trained on V-JEPA 2-AC's 7-D end-effector poses and pose deltas, this "
            f"model's actions are joint deltas of {list(config.joint_names)}; set world_model.action_space: "
            f"end_effector, or take the encoder alone (--init-parts encoder) and train a predictor"
        )
    load_state_checked(model.predictor, predictor_state, f"{path}:predictor")
    return model


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `jepa-ros import-vjepa2`."""
    parser.add_argument("file", help="an official V-JEPA 2 or V-JEPA 2-AC .pt file")
    parser.add_argument("--model-config", required=True,
                        help="YAML with a 'world_model' section that fits the file (config/models/vjepa2_ac_*.yaml)")
    parser.add_argument("--robot", required=True, help="robot preset it will run on: its joints and kinematics")
    parser.add_argument("--out", required=True, help="checkpoint folder to write")
    parser.add_argument("--parts", choices=("all", "encoder"), default="all",
                        help="'all': the file's 2-AC predictor too; 'encoder': a fresh predictor (to train)")
    parser.add_argument("--period", type=float, default=None,
                        help="seconds one action spans (V-JEPA 2-AC's DROID data: 0.25 at 4 fps); stored, and "
                             "the controller refuses another control rate; default: not stored, not checked")
    parser.add_argument("--source-image-size", type=int, default=None,
                        help="image size the file was trained at, for an absolute-position encoder at another size")


def run(args: argparse.Namespace) -> int:
    """Write an official file as a checkpoint folder (weights unchanged) for the named robot."""
    import dataclasses

    from jepa_wm.config import ConfigError, load_robot, load_yaml
    from jepa_wm.models.checkpoint import save_checkpoint

    robot = load_robot(args.robot)
    config = load_yaml(args.model_config, WorldModelConfig, "world_model")
    config = dataclasses.replace(config, joint_names=tuple(robot.joint_names))
    if args.period is not None and not args.period > 0:
        raise ConfigError(f"--period {args.period}: expected seconds > 0")
    model = load_vjepa2(args.file, config, parts=args.parts, source_image_size=args.source_image_size)
    metadata = {"command": f"jepa-ros import-vjepa2 {args.file}", "imported_from": str(Path(args.file).resolve()),
                "parts": args.parts, "robot": robot.name}
    if args.period is not None:
        metadata["period_s"] = args.period
    out = save_checkpoint(model, args.out, metadata)
    counts = {name: sum(p.numel() for p in part.parameters()) / 1e6
              for name, part in (("encoder", model.encoder), ("predictor", model.predictor))}
    print(f"{args.file} -> {out}: encoder {counts['encoder']:.0f} M, predictor {counts['predictor']:.0f} M parameters "
          f"({'from the file' if args.parts == 'all' else 'fresh'}), {config.action_space} actions for "
          f"{robot.name} {list(robot.joint_names)}"
          + ("" if args.period is not None else "; no --period: the control rate is not checked"))
    return 0
