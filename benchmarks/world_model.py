"""World-model benchmark: speed of the default configuration and quality of the default checkpoint.

    .venv/bin/python benchmarks/world_model.py [--checkpoint checkpoints/default] [--episodes 20]

Held-out episodes are generated here with `jepa-ros collect` (a seed the checkpoint never
trained on). The last line printed is one JSON object with encoder_ms, rollout_steps_per_s,
train_samples_per_s (train.yaml's samples, each a sequence of frames), train_windows_per_s (the
context + rollout windows trained inside them) and train_frames_per_s, h1/h2/h4/h8 error ratios
(model / copy-last), latent std and effective
rank, probe_r2 (linear probe latent -> joint positions, fit on 24 of the held-out episodes and scored on
the other 16), probe_r2_fit240 (the same probe fit on 240 exploration episodes of another seed, scored on
all the held-out ones: a 385-weight probe per joint fit on 24 episodes under-reads what the latent holds), and
nearest_latent_ee_error_m: for seeded reaching goals, how far from the goal's end effector is the
pose, among random ones, whose latent is nearest the goal image's (what a perfect planner would reach);
and latent_roughness, the share of a step's latent change that is not smooth in the joints.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from jepa_wm.config import PlannerConfig, TrainConfig, load_yaml  # noqa: E402
from jepa_wm.data import BagTopics, read_episodes  # noqa: E402
from jepa_wm.data.collect import CollectConfig, collect  # noqa: E402
from jepa_wm.evaluation.quality import encode_frames, horizon_errors, latent_statistics, probe_scores  # noqa: E402
from jepa_wm.models.checkpoint import checkpoint_robot, load_checkpoint  # noqa: E402
from jepa_wm.models.objectives import CUBIC_MIDPOINT  # noqa: E402
from jepa_wm.models.world_model import WorldModel  # noqa: E402
from jepa_wm.reaching import ReachingConfig, make_sim, sample_goals  # noqa: E402
from jepa_wm.training.trainer import DistributedContext, Trainer  # noqa: E402

HELD_OUT_SEED = 7000  # `make checkpoint` collects its training data with seeds 0 and 1000
PROBE_FIT_SEED = 8000  # the second probe's fitting episodes


def median_ms(fn, repeats: int, warmup: int = 3) -> float:
    """Median wall time of fn() in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def speed(
    model: WorldModel, samples: int = PlannerConfig.num_samples, horizon: int = PlannerConfig.horizon
) -> dict[str, float]:
    """Encoder latency (one frame, batch 1) and batched rollout throughput, as the planner uses them."""
    size = model.config.encoder.image_size
    frame = torch.randint(0, 256, (1, size, size, 3), dtype=torch.uint8)
    encoder_ms = median_ms(lambda: model.encode(frame), repeats=50)
    latent = model.encode(frame)[0]
    rollout = model.rollout_fn(latent, torch.zeros(model.config.action_dim))
    actions = torch.rand(samples, horizon, model.config.action_dim) * 2 - 1
    rollout_ms = median_ms(lambda: rollout(actions), repeats=20)
    return {"encoder_ms": encoder_ms, "rollout_ms": rollout_ms,
            "rollout_steps_per_s": samples * horizon / (rollout_ms / 1000)}


def training_speed(model: WorldModel, episodes: list, steps: int = 6) -> dict[str, float]:
    """Training samples (train.yaml's sequences) and the windows inside them per second, one process."""
    config = load_yaml(ROOT / "config" / "training" / "train.yaml", TrainConfig, "train")
    config = dataclasses.replace(config, steps=10**6)
    trainer_model = WorldModel(model.config)
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(trainer_model, config, episodes, episodes, Path(out), DistributedContext(0, 1, torch.device("cpu")))
        trainer.train_step()
        start = time.perf_counter()
        for _ in range(steps):
            trainer.train_step()
        samples_per_s = steps * config.batch_size / (time.perf_counter() - start)
    windows_per_sample = config.sequence - config.window + 1
    return {"train_samples_per_s": samples_per_s, "train_windows_per_s": samples_per_s * windows_per_sample,
            "train_frames_per_s": samples_per_s * config.sequence}


def quality(
    model: WorldModel, episodes: list, probe_fraction: float = 0.6, fit_episodes: list | None = None
) -> dict[str, float]:
    """Horizon errors vs copy-last on all held-out episodes; probe fit on some episodes, scored on the rest
    (and, given ``fit_episodes``, fit on those and scored on all held-out episodes: probe_r2_fit{count})."""
    latents = [encode_frames(model, e.frames) for e in episodes]
    result = horizon_errors(model, latents, [e.joint_positions for e in episodes], [e.actions for e in episodes])
    result.update(latent_statistics(torch.cat(latents)))
    split = max(1, int(len(episodes) * probe_fraction))
    fit_z, fit_q = torch.cat(latents[:split]), [e.joint_positions for e in episodes[:split]]
    val_z, val_q = torch.cat(latents[split:]), [e.joint_positions for e in episodes[split:]]
    scores = probe_scores(fit_z, np.concatenate(fit_q), val_z, np.concatenate(val_q)).r2
    result["probe_r2"] = float(scores.mean())
    result["probe_r2_per_joint"] = [round(float(v), 4) for v in scores]
    if all(e.ee_positions is not None for e in episodes):  # the tool centre point, what reaching needs
        fit_ee = np.concatenate([e.ee_positions for e in episodes[:split]])
        val_ee = np.concatenate([e.ee_positions for e in episodes[split:]])
        result["probe_r2_end_effector"] = float(probe_scores(fit_z, fit_ee, val_z, val_ee).r2.mean())
    if fit_episodes:
        name = f"probe_r2_fit{len(fit_episodes)}"
        scores = probe_scores(torch.cat([encode_frames(model, e.frames) for e in fit_episodes]),
                              np.concatenate([e.joint_positions for e in fit_episodes]),
                              torch.cat(latents), np.concatenate([e.joint_positions for e in episodes])).r2
        result[name], result[f"{name}_per_joint"] = float(scores.mean()), [round(float(v), 4) for v in scores]
    return result


def latent_metric(model: WorldModel, robot: str, goals: int = 8, poses: int = 1500) -> dict[str, float]:
    """End-effector error of the random pose whose latent is nearest each goal image's latent.

    A perfect planner ends where the latent distance is smallest; if that pose is far from the
    goal's end effector while a close pose was among the candidates, the model limits reaching.
    """
    size = model.config.encoder.image_size
    with make_sim(size, 0, robot) as sim:
        targets = sample_goals(sim, ReachingConfig(num_goals=goals))
        rng = np.random.default_rng(1)
        frames, ee = [], []
        for _ in range(poses):
            sim.reset(joint_positions=sim.sample_joint_positions(rng))
            frames.append(sim.render())
            ee.append(sim.end_effector_position())
    latents = torch.cat([model.encode(torch.from_numpy(np.stack(frames[i : i + 256]))) for i in range(0, poses, 256)])
    nearest, closest = [], []
    for goal in targets:
        distance = (latents - model.encode(torch.from_numpy(goal.image)[None])).abs().mean(dim=(1, 2))
        errors = np.linalg.norm(np.asarray(ee) - goal.ee_position, axis=1)
        nearest.append(errors[int(distance.argmin())])
        closest.append(errors.min())
    return {"nearest_latent_ee_error_m": float(np.median(nearest)), "closest_sampled_ee_error_m": float(np.median(closest))}


def latent_roughness(model: WorldModel, robot: str, lines: int = 30, step: float = 0.04) -> dict[str, float]:
    """How rough the latent is in the joints, at the exploration data's step size (0.04 rad per joint).

    Along ``lines`` straight joint-space lines (every joint moving ``step`` rad per step, random
    signs) the latent at step 1 is interpolated by the cubic through steps -1, 0, 2 and 3. The
    error over the copy-last change from step 0 is the part of a step that no function smooth over
    a few steps can predict, even knowing the frames on both sides: held-out one-step error ratios
    have stayed 0.1-0.3 above it (docs/research_log.md).
    """
    rng = np.random.default_rng(5)
    frames = []
    with make_sim(model.config.encoder.image_size, 0, robot) as sim:
        for _ in range(lines):
            start, direction = sim.sample_joint_positions(rng), rng.choice([-1.0, 1.0], size=len(sim.joint_names))
            for t in (-1, 0, 1, 2, 3):
                sim.reset(joint_positions=start + t * step * direction)
                frames.append(sim.render())
    z = model.encode(torch.from_numpy(np.stack(frames))).view(lines, 5, -1)  # t = -1, 0, 1, 2, 3
    interpolated = sum(w * z[:, i] for w, i in zip(CUBIC_MIDPOINT, (0, 1, 3, 4)))  # the cubic at t = 1
    error = (interpolated - z[:, 2]).abs().mean().item()
    return {"latent_roughness": error / (z[:, 1] - z[:, 2]).abs().mean().item()}


def collect_episodes(model: WorldModel, robot: str, episodes: int, steps: int, seed: int) -> list:
    """Exploration episodes of simulated ``robot`` with a seed no training set uses, collected here."""
    with tempfile.TemporaryDirectory() as folder:
        collect(CollectConfig(out=folder, robot=robot, episodes=episodes, steps=steps, seed=seed,
                              image_size=model.config.encoder.image_size, workers=1), progress=False)
        topics = BagTopics(command_joints=model.config.joint_names)  # collect writes the preset's order
        return read_episodes(folder, topics, joint_names=model.config.joint_names,
                             image_size=model.config.encoder.image_size, progress=False)


def main() -> int:
    """Collect held-out episodes, measure, print the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "default"))
    parser.add_argument("--robot", default=None, help="simulated robot preset (default: the checkpoint's)")
    parser.add_argument("--episodes", type=int, default=40)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--probe-fit-episodes", type=int, default=240,
                        help="exploration episodes (another seed) the second probe is fit on; 0 skips it")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = load_checkpoint(args.checkpoint)
    robot = args.robot or checkpoint_robot(args.checkpoint)
    results: dict[str, float] = {}
    with torch.inference_mode():
        results.update(speed(model))
    episodes = collect_episodes(model, robot, args.episodes, args.steps, HELD_OUT_SEED)
    fit_episodes = None
    if args.probe_fit_episodes:
        fit_episodes = collect_episodes(model, robot, args.probe_fit_episodes, args.steps, PROBE_FIT_SEED)
    results.update(training_speed(model, episodes))
    results.update(quality(model, episodes, fit_episodes=fit_episodes))
    with torch.inference_mode():
        results.update(latent_metric(model, robot))
        results.update(latent_roughness(model, robot))
    results["held_out_episodes"] = len(episodes)
    for key, value in results.items():
        print(f"{key:>26}: {value:.4g}" if isinstance(value, float) else f"{key:>26}: {value}")
    print(json.dumps({k: round(v, 5) if isinstance(v, float) else v for k, v in results.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
