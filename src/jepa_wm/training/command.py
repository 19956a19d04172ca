"""`jepa-ros train`: train the JEPA world model from rosbag2 episodes.

    jepa-ros train --bags DIR [--robot PRESET] --out runs/mine          # the shipped recipe, every stage
    jepa-ros train --bags DIR --config config/training/joint.yaml --init runs/mine/checkpoint --out runs/more
    torchrun --nproc_per_node 2 -m jepa_wm.command_line train ...       # data-parallel (gloo on CPU, nccl on GPU)

``--config`` names a recipe (a ``stages`` list of stage files, run in order, each from the model the one
before made) or one stage (a ``train`` section). Each stage's folder receives ``metrics.json``,
``loss_curve.png``, ``resume.pt`` (training state, read back with ``weights_only=True``) and
``checkpoint/`` (our safetensors format); a recipe's last checkpoint is also ``OUT/checkpoint``.
What depends on the robot comes from the bags: the joints and their order, the image, the time step
and the action scale. The loop itself lives in :mod:`jepa_wm.training.trainer`.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
import yaml

from jepa_wm.config import ConfigError, TrainConfig, WorldModelConfig, from_dict, load_yaml, package_share, require
from jepa_wm.data.options import add_bag_arguments, bag_reading

ACTION_QUANTILE = 0.99  # the action scale covers this share of the recorded per-joint actions
NICE_STEPS = (1.0, 1.5, 2.0, 3.0, 5.0, 10.0)  # the scale is rounded up to one of these times a power of ten


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `jepa-ros train`."""
    share = package_share() / "config" / "training"
    parser.add_argument("--bags", nargs="+", required=True, help="bag folders/files, or folders searched for bags")
    parser.add_argument("--config", default=str(share / "recipe.yaml"),
                        help="a recipe YAML ('stages': stage files run in order) or one stage ('train' section, "
                             "TrainConfig); default: the shipped recipe")
    parser.add_argument("--model-config", default=str(share / "world_model.yaml"),
                        help="YAML with a 'world_model' section (WorldModelConfig)")
    parser.add_argument("--out", required=True, help="run folder for metrics, plots, resume state and checkpoint")
    parser.add_argument("--resume", action="store_true",
                        help="continue from OUT/resume.pt (a recipe: skip its finished stages, resume the next)")
    parser.add_argument("--steps", type=int, default=None, help="override train.steps (one stage only)")
    parser.add_argument("--seed", type=int, default=None, help="override train.seed")
    parser.add_argument("--augment", action="store_true",
                        help="train.augment in every stage that encodes images: each frame seen through its own "
                             "light, colour, view shift, noise and JPEG, so the latent learns to ignore them")
    parser.add_argument("--action-scale", type=float, default=None,
                        help="rad of joint motion per unit of normalised action; default: from the recorded actions")
    parser.add_argument("--init", default=None,
                        help="start from a checkpoint folder, or an official V-JEPA 2 .pt (encoder; needed by frozen_encoder)")
    parser.add_argument("--init-parts", choices=("all", "encoder"), default="all",
                        help="what to take from an official .pt: 'all' (its 2-AC predictor too, into predictor.variant "
                             "vjepa2_ac) or 'encoder' (a fresh predictor, trained on the frozen encoder)")
    parser.add_argument("--export", default=None, help="also copy the final checkpoint folder here")
    parser.add_argument("--device", default="auto", help="'auto' (cuda when available), 'cpu', 'cuda', ...")
    add_bag_arguments(parser)


def load_stages(path: str | Path) -> list[tuple[str, TrainConfig]]:
    """(name, config) of each stage: a recipe's stages in order, or the one stage a ``train`` file holds."""
    path = Path(path)
    require(path.is_file(), f"training config {path} does not exist")
    data = yaml.safe_load(path.read_text()) or {}
    if "train" in data:
        return [(path.stem, from_dict(TrainConfig, data["train"], f"{path}:train"))]
    stages = data.get("stages")
    require(isinstance(stages, list) and stages and all(isinstance(s, str) for s in stages),
            f"{path}: expected a 'train' section (one stage) or 'stages': a list of stage files; got keys {sorted(data)}")
    names = [Path(stage).stem for stage in stages]
    require(len(set(names)) == len(names), f"{path}: stage names {names} repeat; each stage needs its own folder")
    return [(name, load_yaml(path.parent / stage, TrainConfig, "train")) for name, stage in zip(names, stages)]


def action_scale_of(episodes) -> float:
    """Rad per unit of normalised action: the recorded actions' 99th percentile (over joints and steps),
    rounded up to 1, 1.5, 2, 3 or 5 times a power of ten, so the planner's bound of 1 spans what was explored."""
    magnitudes = np.abs(np.concatenate([episode.actions for episode in episodes]))
    quantile = float(np.quantile(magnitudes, ACTION_QUANTILE))
    require(math.isfinite(quantile) and quantile > 0,
            f"the recorded actions' {ACTION_QUANTILE:.0%} quantile is {quantile} rad: the arm never moved "
            "(is the command topic right?)")
    power = 10.0 ** math.floor(math.log10(quantile))
    return next(step * power for step in NICE_STEPS if step * power >= quantile * (1 - 1e-9))


def joint_range_of(episodes) -> dict[str, list[float]]:
    """Per-joint lower and upper joint position seen in training (the model knows nothing beyond)."""
    positions = np.concatenate([episode.joint_positions for episode in episodes])  # [T, J]
    return {"lower": positions.min(0).tolist(), "upper": positions.max(0).tolist()}


def run(args: argparse.Namespace) -> int:
    """Load configs and data, train every stage, evaluate, save; returns the exit status."""
    from jepa_wm.data import read_episodes
    from jepa_wm.training.trainer import distributed_context

    stages = load_stages(args.config)
    if args.steps is not None and len(stages) > 1:
        raise ConfigError(f"--steps {args.steps}: {args.config} has {len(stages)} stages; give one stage's file as --config")
    overrides = {k: v for k, v in (("steps", args.steps), ("seed", args.seed)) if v is not None}
    stages = [(name, dataclasses.replace(config, **overrides)) for name, config in stages]
    if args.augment:  # a frozen latent is encoded once, as recorded: nothing to augment there
        stages = [(name, dataclasses.replace(config, augment=config.mode != "frozen_encoder")) for name, config in stages]
    context = distributed_context(args.device)
    model_config = load_yaml(args.model_config, WorldModelConfig, "world_model")
    reading = bag_reading(args)
    episodes = read_episodes(args.bags, reading.topics, reading.period, reading.joint_names,
                             image_size=model_config.encoder.image_size, progress=context.is_main)
    # The bags (or the preset) define the robot: joint names and their order, and the size of an action.
    from jepa_wm.data.end_effector import end_effector_episodes, in_action_space, tool_pose_of

    joint_names, joint_episodes = tuple(episodes[0].joint_names), episodes
    episodes = in_action_space(episodes, model_config, reading.robot)  # the tool's pose (or x, y) and its change
    if model_config.action_space == "planar" and not model_config.tool_pose:  # held as the data held it
        from jepa_wm.kinematics import ArmKinematics

        tool_pose = tool_pose_of(end_effector_episodes(joint_episodes, ArmKinematics.of_robot(reading.robot)))
        model_config = dataclasses.replace(model_config, tool_pose=tool_pose)
        if context.is_main:
            print(f"planar tool held at {tool_pose[0]:.3f} m, roll-pitch-yaw "
                  f"{', '.join(f'{v:.3f}' for v in tool_pose[1:])} rad (from the recorded poses)")
    unit = {"end_effector": "m or rad of pose change", "planar": "m of tool motion"}.get(model_config.action_space, "rad")
    scale = args.action_scale if args.action_scale is not None else action_scale_of(episodes)
    require(math.isfinite(scale) and scale > 0, f"--action-scale {scale}: expected {unit} > 0")
    model_config = dataclasses.replace(model_config, joint_names=joint_names, action_scale=scale)
    beyond = float((np.abs(np.concatenate([e.actions for e in episodes])) > scale).mean())
    if context.is_main:
        print(f"joints {list(model_config.joint_names)}; action scale {scale:g} {unit} "
              f"({beyond:.1%} of the recorded actions are larger)")

    out, init = Path(args.out), args.init
    for index, (name, config) in enumerate(stages):
        stage_out = out if len(stages) == 1 else out / f"{index + 1}_{name}"
        if len(stages) > 1 and args.resume and (stage_out / "checkpoint" / "config.json").is_file():
            if context.is_main:
                print(f"stage {index + 1}/{len(stages)} {name}: done already ({stage_out / 'checkpoint'})")
        else:
            if context.is_main and len(stages) > 1:
                print(f"stage {index + 1}/{len(stages)} {name}: {config.mode}, {config.steps} steps -> {stage_out}")
            resume = args.resume and (stage_out / "resume.pt").is_file() if len(stages) > 1 else args.resume
            train_stage(config, model_config, episodes, joint_episodes, reading, args, init, stage_out, resume, context,
                        last=index == len(stages) - 1)
        init = str(stage_out / "checkpoint")
    if context.is_main:
        if len(stages) > 1:
            shutil.copytree(init, out / "checkpoint", dirs_exist_ok=True)
        if args.export:
            shutil.copytree(init, args.export, dirs_exist_ok=True)
    context.close()
    return 0


def train_stage(config: TrainConfig, model_config: WorldModelConfig, episodes: list, joint_episodes: list, reading,
                args: argparse.Namespace, init: str | None, out: Path, resume: bool, context, last: bool = True) -> None:
    """One stage: build (or load ``init``), fit, evaluate on the held-out episodes, save ``out/checkpoint``.

    ``joint_episodes``: the same episodes in joint space (``episodes`` may be end-effector ones),
    whose training split gives the explored joint range. ``last``: the last stage, after which the state
    readout (and for a planar model, whose planner compares goals without the arm, the arm-appearance
    model) is fitted (training/arm_fit.py)."""
    from jepa_wm.data import split_episodes
    from jepa_wm.data.episodes import step_period_s
    from jepa_wm.evaluation.quality import readiness_of_training
    from jepa_wm.models.checkpoint import read_checkpoint_config, save_checkpoint
    from jepa_wm.training.trainer import Trainer, build_model, evaluate_model, training_machine

    if (not config.proprio_joint_weights and reading.robot is not None and reading.robot.readout_weights
            and model_config.action_space == "joint"):
        weights = dict(zip(reading.robot.joint_names, reading.robot.readout_weights))
        config = dataclasses.replace(config, proprio_joint_weights=tuple(weights[n] for n in model_config.joint_names))
    train_episodes, val_episodes = split_episodes(episodes, config.val_fraction, config.seed)
    torch.manual_seed(config.seed)
    model = build_model(model_config, config, init, args.init_parts)
    trainer = Trainer(model, config, train_episodes, val_episodes, out, context)
    if resume:
        trainer.resume(out / "resume.pt")
    trainer.fit()
    if not context.is_main:
        return
    # A proprio stage trains no predictor: its prediction errors would say nothing.
    horizons = () if config.mode == "proprio" else (1, 2, 4, 8)
    final = evaluate_model(model, train_episodes, val_episodes, horizons=horizons)
    if last:
        from jepa_wm.training.arm_fit import fit_state_readout

        final.update(fit_state_readout(model, train_episodes, val_episodes, config.seed,
                                       appearance=model_config.action_space == "planar"))
    trainer.write_training_report(final)
    metadata = {"command": " ".join(["jepa-ros", *sys.argv[1:]]), "train": dataclasses.asdict(config),
                "bags": [str(b) for b in args.bags], "train_seconds": trainer.train_seconds,
                "episodes": {"train": len(train_episodes), "val": len(val_episodes)}, "final": final,
                "explored_joint_range": joint_range_of(split_episodes(joint_episodes, config.val_fraction, config.seed)[0]),
                "period_s": step_period_s(train_episodes),  # the time one action spans
                "machine": training_machine(context)}
    if args.robot:
        metadata["robot"] = args.robot  # the preset it was trained for: the demo and calibration simulate it
    if init and Path(init).is_dir():  # the model trained on: its own record, so stages chain
        metadata["init"] = {"path": str(init), **read_checkpoint_config(init)[1]}
    save_checkpoint(model, out / "checkpoint", metadata)
    print({k: round(v, 4) for k, v in final.items()})
    if horizons:
        print(readiness_of_training(final, model.config.state_names).statement)
