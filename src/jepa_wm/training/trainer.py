"""The training loop behind `jepa-ros train`: windows, optimisation, validation, resume, reports."""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from jepa_wm.config import TrainConfig, WorldModelConfig
from jepa_wm.data.augment import augment_frames
from jepa_wm.data.dataset import EpisodeWindows
from jepa_wm.evaluation.quality import encode_frames, horizon_errors, latent_statistics, probe_scores
from jepa_wm.models.checkpoint import load_torch_file
from jepa_wm.models.objectives import JEPAObjective
from jepa_wm.models.world_model import WorldModel


@dataclass
class DistributedContext:
    """Where this process trains: rank and world size (1 without torchrun) and its device."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0 writes files and shows progress."""
        return self.rank == 0

    def close(self) -> None:
        """Leave the process group, if any, all processes together.

        Rank 0 evaluates and writes the checkpoint after the last step while the others are done; a
        process that tore its gloo group down meanwhile was seen to abort ("terminate called without an
        active exception", about one torchrun run in ten here), so everyone waits for rank 0 first.
        """
        if dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


def training_machine(context: DistributedContext) -> dict[str, object]:
    """What a run's numerics depend on beyond its config and data: versions, CPU kernels, threads.

    Training is deterministic for one thread count on one CPU, not across CPUs: the same
    `make checkpoint` stage landed at a one-step ratio of 0.48 on one 2-core machine and 0.64 on
    another with AVX-512 (docs/research_log.md), so the checkpoint records where it was made.
    """
    machine: dict[str, object] = {
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "processes": context.world_size,
        "device": str(context.device),
    }
    if context.device.type == "cuda":
        machine["gpu"] = torch.cuda.get_device_name(context.device)
    return machine


def distributed_context(device: str = "auto") -> DistributedContext:
    """Join the torchrun process group when started under torchrun (gloo on CPU, nccl on GPU)."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return DistributedContext(0, 1, torch.device(device))
    local_rank = int(os.environ["LOCAL_RANK"])
    if device.startswith("cuda"):
        torch.cuda.set_device(local_rank)
        target = torch.device("cuda", local_rank)
    else:
        target = torch.device(device)
        # The CPU is shared between the processes.
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", world_size))))
    dist.init_process_group("nccl" if target.type == "cuda" else "gloo")
    return DistributedContext(dist.get_rank(), dist.get_world_size(), target)


def build_model(model_config: WorldModelConfig, config: TrainConfig, init: str | None,
                init_parts: str = "all") -> WorldModel:
    """A fresh model, or one started from a checkpoint folder / official V-JEPA 2 .pt (``init``;
    ``init_parts``: "all" or "encoder", what to take from the .pt)."""
    from jepa_wm.models.checkpoint import load_checkpoint
    from jepa_wm.models.vjepa2_files import load_vjepa2

    if init and Path(init).is_dir():
        model = load_checkpoint(init)
        if model.config.joint_names != model_config.joint_names:
            raise ValueError(f"--init {init} has joints {list(model.config.joint_names)}, "
                             f"the bags have {list(model_config.joint_names)}")
        return model.train()
    if init:
        return load_vjepa2(init, model_config, parts=init_parts)
    if config.mode == "frozen_encoder":
        raise ValueError("train.mode=frozen_encoder needs --init with a pretrained encoder (checkpoint folder or .pt)")
    return WorldModel(model_config)


class TrainingError(ValueError):
    """Training cannot go on: a non-finite loss, with the step and the episodes of its batch."""


def learning_rate(step: int, config: TrainConfig) -> float:
    """Linear warm-up, then (train.lr_schedule) cosine decay to a tenth of the peak, the peak ("constant"),
    or the peak and a linear decay to zero over the last lr_decay_fraction of the steps ("wsd")."""
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    if config.lr_schedule == "constant":
        return config.learning_rate
    if config.lr_schedule == "wsd":
        decay_steps = max(1, round(config.lr_decay_fraction * config.steps))
        return config.learning_rate * min(1.0, (config.steps - step) / decay_steps)
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


class Trainer:
    """Optimises a JEPAObjective; rank 0 validates, plots and saves resumable state."""

    def __init__(self, model: WorldModel, config: TrainConfig, train_episodes: list, val_episodes: list,
                 out: Path, context: DistributedContext) -> None:
        self.model, self.config, self.out, self.context = model.to(context.device), config, Path(out), context
        self.objective = JEPAObjective(self.model, config).to(context.device)
        self.wrapped: torch.nn.Module = self.objective
        if context.world_size > 1:
            self.wrapped = torch.nn.parallel.DistributedDataParallel(self.objective)
        scale, device = model.config.action_scale, context.device
        if config.sequence - 1 > model.config.predictor.max_steps:
            raise ValueError(f"train.sequence_steps={config.sequence}: teacher forcing over it needs "
                             f"predictor.max_steps >= {config.sequence - 1}, the model has {model.config.predictor.max_steps}")
        self.train_windows = EpisodeWindows(train_episodes, config.sequence, scale, device)
        self.val_windows = EpisodeWindows(val_episodes, config.sequence, scale, device)
        self.objective.set_joint_statistics(self.train_windows.joint_positions)
        if self.objective.frozen:
            # The latent never changes: standardise it with the training frames' statistics and
            # encode every frame once; each step then runs the predictor only.
            self.calibrate()
            for windows in (self.train_windows, self.val_windows):
                windows.encode_all(self.model, progress=context.is_main)
        decay = [p for p in self.objective.parameters() if p.requires_grad and p.ndim >= 2]
        no_decay = [p for p in self.objective.parameters() if p.requires_grad and p.ndim < 2]
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=config.learning_rate,
        )
        self.generator = torch.Generator().manual_seed(config.seed * 1000 + context.rank)
        self.local_batch = math.ceil(config.batch_size / context.world_size)
        self.step = 0
        self.history: list[dict[str, float]] = []
        self.train_seconds = 0.0

    def resume(self, path: Path) -> None:
        """Continue from a resume.pt written by this trainer."""
        if not path.is_file():
            raise FileNotFoundError(f"--resume: {path} does not exist; train once without --resume first")
        state = load_torch_file(path, self.context.device)
        self.objective.load_state_dict(state["objective"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"][self.context.rank % len(state["generator"])])
        self.step, self.history, self.train_seconds = state["step"], state["history"], state["train_seconds"]

    def save_state(self) -> None:
        """Write OUT/resume.pt atomically (rank 0)."""
        generators = [self.generator.get_state()]
        if self.context.world_size > 1:
            generators = [torch.empty_like(generators[0]) for _ in range(self.context.world_size)]
            dist.all_gather_object(generators, self.generator.get_state())
        if not self.context.is_main:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        state = {"objective": self.objective.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "generator": generators, "step": self.step, "history": self.history,
                 "train_seconds": self.train_seconds}
        torch.save(state, self.out / "resume.pt.tmp")
        os.replace(self.out / "resume.pt.tmp", self.out / "resume.pt")

    def train_step(self) -> dict[str, float]:
        """One optimisation step on a fresh batch; returns the losses."""
        cfg = self.config
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(self.step, cfg)
        self.wrapped.train()
        prepare = self._augmented_preprocess if cfg.augment else self.model.encoder.preprocess
        batch = self.train_windows.sample(self.local_batch, self.generator, prepare)
        losses = self.wrapped(batch)
        if not torch.isfinite(losses["loss"]):  # before the optimiser spreads it through every weight
            episodes = self.train_windows.episodes_of(self.train_windows.last_sampled)
            raise TrainingError(
                f"step {self.step}: the loss is {losses['loss'].item()} "
                f"({', '.join(f'{k}={v.item():.4g}' for k, v in losses.items())}); the batch came from "
                f"{len(episodes)} episodes: {'; '.join(episodes[:8])}{' ...' if len(episodes) > 8 else ''}"
            )
        self.optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(self.objective.parameters(), cfg.grad_clip)
        self.optimizer.step()
        self.objective.update_target()
        self.step += 1
        return {k: v.item() for k, v in losses.items()}

    def _augmented_preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        """train.augment: every frame through its own camera and room changes, then preprocessed as always."""
        return self.model.encoder.preprocess(augment_frames(frames.cpu(), self.generator).to(frames.device))

    @torch.no_grad()
    def calibrate(self, frames: int = 2048) -> None:
        """Exact latent standardisation statistics from a fixed sample of training frames.

        A frozen latent is calibrated once, before its frames are encoded; later calls keep it.
        """
        if self.train_windows.latents is not None:
            return
        generator = torch.Generator().manual_seed(54321)
        index = torch.randint(len(self.train_windows.frames), (frames,), generator=generator)
        self.model.calibrate(self.model.encoder.preprocess(self.train_windows.frames[index.to(self.context.device)]))

    @torch.no_grad()
    def validate(self, num_batches: int = 4) -> dict[str, float]:
        """Mean losses over fixed validation windows (same windows every time), after calibrating."""
        self.calibrate()
        self.objective.eval()
        generator = torch.Generator().manual_seed(12345)
        totals: dict[str, float] = {}
        for _ in range(num_batches):
            batch = self.val_windows.sample(self.config.batch_size, generator, self.model.encoder.preprocess)
            for key, value in self.objective(batch).items():
                totals[key] = totals.get(key, 0.0) + value.item() / num_batches
        return totals

    def fit(self) -> None:
        """Train until config.steps, validating and saving on schedule."""
        cfg = self.config
        bar = tqdm(total=cfg.steps, initial=self.step, desc="training", unit="step", disable=not self.context.is_main)
        running: dict[str, float] = {}
        while self.step < cfg.steps:
            started = time.perf_counter()
            losses = self.train_step()
            self.train_seconds += time.perf_counter() - started
            running = {k: 0.9 * running.get(k, v) + 0.1 * v for k, v in losses.items()}
            bar.update(1)
            bar.set_postfix({k: f"{running[k]:.4f}" for k in ("loss", "rollout", "proprio") if k in running})
            last = self.step == cfg.steps
            if self.step % cfg.val_every == 0 or last:
                record = {"step": self.step, "lr": learning_rate(self.step - 1, cfg),
                          **{f"train_{k}": v for k, v in running.items()}}
                if self.context.is_main:
                    record.update({f"val_{k}": v for k, v in self.validate().items()})
                self.history.append(record)
                self.write_training_report()
            if last:
                self.calibrate()  # the saved model standardises latents with exact statistics
            if self.step % cfg.checkpoint_every == 0 or last:
                self.save_state()
        bar.close()

    def samples_per_second(self) -> float:
        """Training windows per second over all processes."""
        return self.step * self.local_batch * self.context.world_size / max(self.train_seconds, 1e-9)

    def write_training_report(self, final: dict[str, float] | None = None) -> None:
        """metrics.json and loss_curve.png in the run folder (rank 0)."""
        if not self.context.is_main:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        report: dict[str, Any] = {"step": self.step, "train_seconds": self.train_seconds,
                                  "train_samples_per_s": self.samples_per_second(), "history": self.history}
        if final is not None:
            report["final"] = final
        (self.out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
        plot_losses(self.history, self.out / "loss_curve.png")


def loss_terms(history: list[dict[str, float]]) -> list[str]:
    """The history's loss series: every term of the objective and the total, train and validation."""
    return sorted({k for r in history for k in r if k.startswith(("train_", "val_"))})


def plot_losses(history: list[dict[str, float]], path: Path) -> None:
    """Loss curves (train and validation, every term and the total) against step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not history:
        return
    figure, axis = plt.subplots(figsize=(8, 4))
    steps = [r["step"] for r in history]
    keys = loss_terms(history)
    terms = sorted({key.split("_", 1)[1] for key in keys})  # one colour a term: train solid, validation dashed
    for key in keys:
        split, term = key.split("_", 1)
        axis.plot(steps, [r.get(key, float("nan")) for r in history], label=key,
                  color=f"C{terms.index(term)}", linestyle="-" if split == "train" else "--")
    axis.set_xlabel("step")
    axis.set_ylabel("loss")
    axis.set_yscale("log")
    axis.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def evaluate_model(model: WorldModel, train_episodes: list, val_episodes: list,
                   horizons: tuple[int, ...] = (1, 2, 4, 8), probe_frames: int = 4000) -> dict[str, float]:
    """Held-out quality: horizon errors vs copy-last (none for no ``horizons``), latent collapse checks,
    joint-position probe R^2."""
    model = model.cpu().eval()
    val_latents = [encode_frames(model, e.frames) for e in val_episodes]
    result: dict[str, float] = {}
    if horizons:
        result.update(horizon_errors(model, val_latents, [e.joint_positions for e in val_episodes],
                                     [e.actions for e in val_episodes], horizons))
    val_all = torch.cat(val_latents)
    result.update(latent_statistics(val_all))
    rng = np.random.default_rng(0)
    train_frames = np.concatenate([e.frames for e in train_episodes])
    train_joints = np.concatenate([e.joint_positions for e in train_episodes])
    keep = np.sort(rng.permutation(len(train_frames))[:probe_frames])
    train_latents = encode_frames(model, train_frames[keep])
    val_joints = np.concatenate([e.joint_positions for e in val_episodes])
    scores = probe_scores(train_latents, train_joints[keep], val_all, val_joints).r2
    result["probe_r2"] = float(scores.mean())
    result.update({f"probe_r2_{name}": float(v) for name, v in zip(model.config.state_names, scores)})
    return result
