"""`jepa-ros train`: train the JEPA world model from rosbag2 episodes.

    jepa-ros train --bags data/explore --config config/training/train.yaml --out runs/default [--resume] [--steps N]
    torchrun --nproc_per_node 2 -m jepa_wm.command_line train ...     # data-parallel (gloo on CPU, nccl on GPU)

RUN (``--out``) receives ``metrics.json``, ``loss_curve.png``, ``resume.pt`` (training state,
read back with ``weights_only=True``) and ``checkpoint/`` (the model in our safetensors format).
The loop itself lives in :mod:`jepa_wm.training.trainer`; this module only wires objects together.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

from jepa_wm.config import TrainConfig, WorldModelConfig, load_yaml, package_share
from jepa_wm.data.options import add_bag_arguments, bag_reading


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `jepa-ros train`."""
    share = package_share() / "config" / "training"
    parser.add_argument("--bags", nargs="+", required=True, help="bag folders/files, or folders searched for bags")
    parser.add_argument("--config", default=str(share / "train.yaml"), help="YAML with a 'train' section (TrainConfig)")
    parser.add_argument("--model-config", default=str(share / "world_model.yaml"),
                        help="YAML with a 'world_model' section (WorldModelConfig)")
    parser.add_argument("--out", required=True, help="run folder for metrics, plots, resume state and checkpoint")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/resume.pt")
    parser.add_argument("--steps", type=int, default=None, help="override train.steps")
    parser.add_argument("--seed", type=int, default=None, help="override train.seed")
    parser.add_argument("--init", default=None,
                        help="start from a checkpoint folder, or an official V-JEPA 2 .pt (encoder; needed by frozen_encoder)")
    parser.add_argument("--export", default=None, help="also copy the final checkpoint folder here")
    parser.add_argument("--device", default="auto", help="'auto' (cuda when available), 'cpu', 'cuda', ...")
    add_bag_arguments(parser)


def joint_range_of(episodes) -> dict[str, list[float]]:
    """Per-joint lower and upper joint position seen in training (the model knows nothing beyond)."""
    positions = np.concatenate([episode.joint_positions for episode in episodes])  # [T, J]
    return {"lower": positions.min(0).tolist(), "upper": positions.max(0).tolist()}


def run(args: argparse.Namespace) -> int:
    """Load configs and data, train, evaluate, save; returns the exit status."""
    from jepa_wm.data import read_episodes, split_episodes
    from jepa_wm.data.episodes import step_period_s
    from jepa_wm.models.checkpoint import read_checkpoint_config, save_checkpoint
    from jepa_wm.training.trainer import Trainer, build_model, distributed_context, evaluate_model, training_machine

    context = distributed_context(args.device)
    config = load_yaml(args.config, TrainConfig, "train")
    overrides = {k: v for k, v in (("steps", args.steps), ("seed", args.seed)) if v is not None}
    config = dataclasses.replace(config, **overrides)
    model_config = load_yaml(args.model_config, WorldModelConfig, "world_model")

    reading = bag_reading(args)
    episodes = read_episodes(args.bags, reading.topics, reading.period, reading.joint_names,
                             image_size=model_config.encoder.image_size, progress=context.is_main)
    # The bags (or the preset) define the robot: joint names and their order.
    model_config = dataclasses.replace(model_config, joint_names=tuple(episodes[0].joint_names))
    train_episodes, val_episodes = split_episodes(episodes, config.val_fraction, config.seed)

    torch.manual_seed(config.seed)
    model = build_model(model_config, config, args.init)

    out = Path(args.out)
    trainer = Trainer(model, config, train_episodes, val_episodes, out, context)
    if args.resume:
        trainer.resume(out / "resume.pt")
    trainer.fit()
    if context.is_main:
        # A proprio stage trains no predictor: its prediction errors would say nothing.
        horizons = () if config.mode == "proprio" else (1, 2, 4, 8)
        final = evaluate_model(model, train_episodes, val_episodes, horizons=horizons)
        trainer.write_training_report(final)
        metadata = {"command": " ".join(["jepa-ros", *sys.argv[1:]]), "train": dataclasses.asdict(config),
                    "bags": [str(b) for b in args.bags], "train_seconds": trainer.train_seconds,
                    "episodes": {"train": len(train_episodes), "val": len(val_episodes)}, "final": final,
                    "explored_joint_range": joint_range_of(train_episodes),
                    "period_s": step_period_s(train_episodes),  # the time one action spans
                    "machine": training_machine(context)}
        if args.init and Path(args.init).is_dir():  # the model trained on: its own record, so stages chain
            metadata["init"] = {"path": str(args.init), **read_checkpoint_config(args.init)[1]}
        save_checkpoint(model, out / "checkpoint", metadata)
        if args.export:
            shutil.copytree(out / "checkpoint", args.export, dirs_exist_ok=True)
        print({k: round(v, 4) for k, v in final.items()})
    context.close()
    return 0
