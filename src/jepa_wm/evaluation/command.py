"""`jepa-ros evaluate`: score a checkpoint offline on recorded rosbags, many times real time.

Per episode and overall: latent prediction error at horizons 1..H beside copy-last, a
linear probe of joint positions from latents (cross-validated by episode), planner
agreement with the recorded action, and where the recorded action ranks in energy
among random ones. Writes metrics.json and report.md with PNG plots.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from jepa_wm.config import ConfigError, PlannerConfig, check_joint_names, load_yaml, require, to_dict
from jepa_wm.data import BagError, BagTopics, GapWarning, find_bags, read_episode_segments
from jepa_wm.data.episodes import period_mismatch, step_period_s
from jepa_wm.data.options import add_bag_arguments, bag_reading
from jepa_wm.evaluation import episode_metrics as m
from jepa_wm.evaluation.quality import Readiness, encode_frames, readiness
from jepa_wm.evaluation.report import write_evaluation_report
from jepa_wm.models.checkpoint import checkpoint_robot, read_checkpoint_config


@dataclass(frozen=True)
class EvaluationSettings:
    """What `evaluate` computes and how much of it."""

    horizon: int = 4  # prediction horizons 1..horizon
    goal_offset: int = 4  # goal = frame k steps ahead (also the planner horizon)
    plan_every: int = 10  # plan from every k-th step (0.2-0.4 s a plan on one busy core: the costly part); 0: never
    energy_every: int = 15  # rank the recorded action's energy at every k-th step; 0: never
    num_random: int = 15  # random sequences the recorded one is ranked among
    batch_size: int = 128  # frames per encoder batch and start points per rollout batch
    gap_factor: float = 3.0  # a step longer than this x the median spacing is a gap

    def __post_init__(self) -> None:
        for name in ("horizon", "goal_offset", "num_random", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"evaluate {name}={getattr(self, name)}: expected >= 1")
        if self.plan_every < 0 or self.energy_every < 0:
            raise ConfigError(
                f"evaluate plan_every={self.plan_every}, energy_every={self.energy_every}: expected >= 0"
            )
        if self.gap_factor <= 1:
            raise ConfigError(f"evaluate gap_factor={self.gap_factor}: expected > 1")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `jepa-ros evaluate`."""
    defaults = EvaluationSettings()
    parser.add_argument("--bag", nargs="+", required=True,
                        help="rosbag2 folders, .mcap, .db3 or ROS 1 .bag files, or folders holding them")
    parser.add_argument("--checkpoint", required=True, help="checkpoint folder (safetensors + config.json)")
    parser.add_argument("--out", required=True, help="folder for metrics.json, report.md and plots")
    parser.add_argument("--horizon", type=int, default=defaults.horizon, help="prediction horizons 1..H")
    parser.add_argument("--goal-offset", type=int, default=defaults.goal_offset, help="goal = frame k steps ahead")
    parser.add_argument("--plan-every", type=int, default=defaults.plan_every,
                        help="plan from every k-th step (0: never)")
    parser.add_argument("--energy-every", type=int, default=defaults.energy_every,
                        help="rank the recorded action's energy at every k-th step (0: never)")
    parser.add_argument("--num-random", type=int, default=defaults.num_random, help="random sequences per energy rank")
    parser.add_argument("--planner-config", default=None, help="YAML with a 'planner' section (PlannerConfig)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads; 1 is fastest for these small batches on a busy 2-core CPU")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_bag_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Entry point: load, evaluate, report."""
    from jepa_wm.models import load_checkpoint

    settings = EvaluationSettings(
        horizon=args.horizon, goal_offset=args.goal_offset, plan_every=args.plan_every,
        energy_every=args.energy_every, num_random=args.num_random,
    )
    planner = load_yaml(args.planner_config, PlannerConfig, "planner") if args.planner_config else PlannerConfig()
    if args.threads < 1:
        raise ConfigError(f"--threads {args.threads}: expected >= 1")
    model = load_checkpoint(args.checkpoint).eval()
    started = time.perf_counter()
    reading = bag_reading(args)
    if reading.joint_names and sorted(reading.joint_names) != sorted(model.config.joint_names):
        check_joint_names(model.config.joint_names, reading.joint_names, "the bags' (--robot / --joints)")
    episodes, gaps = load_episodes(args.bag, model.config, reading.period, reading.topics, not args.no_progress)
    if not episodes:
        raise BagError(f"no episode long enough to evaluate in {args.bag}")
    if model.config.action_space != "joint":  # the robot: --robot, else the preset the checkpoint was trained for
        from jepa_wm.config import load_robot
        from jepa_wm.data.end_effector import in_action_space

        robot = reading.robot or load_robot(checkpoint_robot(args.checkpoint))
        episodes = in_action_space(episodes, model.config, robot)
    trained = read_checkpoint_config(args.checkpoint)[1].get("period_s")
    mismatch = period_mismatch(trained, step_period_s(episodes))
    if mismatch:
        raise BagError(f"the bags {args.bag} have {mismatch}; pass --period {trained:.3f} to resample them")
    with torch_threads(args.threads), torch.no_grad():
        results = evaluate_episodes(model, episodes, settings, planner, show=not args.no_progress)
    results["bag_gaps"] = gaps
    wall = time.perf_counter() - started
    results["timing"] = timing(episodes, wall)
    results["checkpoint"] = str(args.checkpoint)
    results["action_bound_rad"] = planner.action_bound * model.config.action_scale
    verdict = readiness_of_evaluation(results)
    results["readiness"] = {"ready": verdict.ready, "statement": verdict.statement}
    out = write_evaluation_report(results, Path(args.out))
    t = results["timing"]
    print(
        f"evaluated {t['frames']} frames ({t['recorded_s']:.1f} s recorded) in {wall:.2f} s: "
        f"{t['frames_per_s']:.0f} frames/s, {t['x_realtime']:.1f}x real time; report: {out}"
    )
    print(verdict.statement)
    return 0


def readiness_of_evaluation(results: dict[str, Any]) -> Readiness:
    """:func:`readiness` from an evaluation's overall figures."""
    overall = results["overall"]
    prediction = overall["prediction"]
    ratios = {h: (model / copy if copy else float("nan"))
              for h, model, copy in zip(prediction["horizon"], prediction["model_l1"], prediction["copy_last_l1"])}
    rank = overall["energy"]["mean_rank"]
    return readiness(ratios, dict(zip(results["joint_names"], overall["probe"]["per_joint_r2"])),
                     rank if np.isfinite(rank) else None, probe_frames=int(sum(e["frames"] for e in results["episodes"])))


def load_episodes(
    paths: list[str], config: Any, period: float | None, bag_topics: BagTopics, show: bool = True
) -> tuple[list[Any], list[str]]:
    """Every gap-free run of every bag, in the checkpoint's joint order and image size; plus the gap reports."""
    episodes, gaps = [], []
    for bag in tqdm(find_bags(paths), desc="read bags", unit="bag", disable=not show):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", GapWarning)
            episodes += read_episode_segments(
                bag, bag_topics, period, joint_names=config.joint_names, image_size=config.encoder.image_size
            )
        for caught_warning in caught:
            if issubclass(caught_warning.category, GapWarning):
                gaps.append(str(caught_warning.message))
            else:  # not ours to swallow
                warnings.warn_explicit(caught_warning.message, caught_warning.category,
                                       caught_warning.filename, caught_warning.lineno)
    for message in gaps:
        print(f"gap (skipped, not interpolated): {message}")
    return episodes, gaps


def evaluate_episodes(
    model: Any, episodes: list[Any], settings: EvaluationSettings, planner: PlannerConfig, show: bool = True
) -> dict[str, Any]:
    """All metrics for a model on episodes: a JSON-ready dict with per-episode and overall figures."""
    config = model.config
    _check_joints(episodes, config.state_names)
    span = max(settings.horizon, settings.goal_offset)
    if span + 1 > config.predictor.max_steps:  # one context step plus the rollout
        raise ConfigError(
            f"--horizon {settings.horizon} / --goal-offset {settings.goal_offset}: the checkpoint's predictor "
            f"rolls out at most predictor.max_steps - 1 = {config.predictor.max_steps - 1} steps"
        )
    planner = dataclasses.replace(planner, horizon=settings.goal_offset)
    # The data layer already splits bags at gaps; segments guard against any hole left inside a run.
    segments_of = [m.segment_ids(e.stamps_ns, settings.gap_factor) for e in episodes]
    starts_of = [m.valid_starts(segments, span) for segments in segments_of]
    work = sum(len(e.frames) for e in episodes) + sum(m.every(s, settings.plan_every).size for s in starts_of)
    bar = tqdm(total=work, desc="evaluate", unit="step", disable=not show)
    per_episode, features, joints, plans, ranks = [], [], [], [], []
    phases = PhaseTimer()
    for episode, segments, starts in zip(episodes, segments_of, starts_of):
        with phases("encode"):
            latents = encode_frames(model, episode.frames, settings.batch_size, bar.update)  # [T, N, D]
        joint_positions = torch.as_tensor(episode.joint_positions, dtype=torch.float32)  # [T, J]
        actions_rad = torch.as_tensor(episode.actions, dtype=torch.float32)  # [T, J]
        actions = actions_rad / config.action_scale
        with phases("predict"):
            model_err, copy_err = m.prediction_errors(
                model.rollout, latents, joint_positions, actions, starts, settings.horizon, settings.batch_size
            )
        energy_at = m.every(starts, settings.energy_every)
        with phases("energy"):
            episode_ranks = m.energy_ranks(
                model.rollout, latents, joint_positions, actions, energy_at, settings.goal_offset, planner,
                settings.num_random, pool=starts,
            )
        with phases("plan"):
            comparison = m.planner_agreement(
                model.rollout_fn, latents, joint_positions, actions_rad, m.every(starts, settings.plan_every),
                settings.goal_offset, planner,
                config.action_scale, step=lambda: bar.update(1),
            )
        features.append(latents)
        joints.append(joint_positions)
        plans.append(comparison)
        ranks.append(episode_ranks)
        per_episode.append({
            "source": str(episode.source),
            "frames": int(len(episode.frames)),
            "duration_s": _duration_s(episode),
            "segments": int(segments.max() + 1) if segments.size else 0,
            "gaps": _gaps(episode.stamps_ns, segments),
            "prediction": _prediction(model_err, copy_err, starts.size),
            "planner": m.action_agreement(comparison.planned, comparison.recorded),
            "energy": _energy(episode_ranks),
        })
    bar.close()
    with phases("probe"):
        probe = m.linear_probe(features, joints)
    for entry, mae, floor in zip(per_episode, probe["probe_mae"], probe["mean_baseline_mae"]):
        entry["probe"] = {"mae_rad": mae, "mean_baseline_mae_rad": floor}
    return {
        "settings": dataclasses.asdict(settings),
        "planner_config": to_dict(planner),
        "joint_names": list(config.state_names),
        "episodes": per_episode,
        "overall": _overall(per_episode, probe, plans, ranks),
        "phase_s": phases.seconds,
        "plans": [{"source": e["source"], "starts": c.starts.tolist(), "planned": c.planned.tolist(),
                   "recorded": c.recorded.tolist()} for e, c in zip(per_episode, plans)],
    }


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run with ``count`` torch CPU threads, restoring the previous number afterwards."""
    previous = torch.get_num_threads()
    # With other processes on a 2-core CPU, more threads than one wait on each other for these small batches.
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class PhaseTimer:
    """Wall seconds spent per named phase, to show where evaluation time goes."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started


def _check_joints(episodes: list[Any], joint_names: tuple[str, ...]) -> None:
    """The checkpoint's joints, in its order (load_episodes reads them so): actions index joints by position."""
    for episode in episodes:
        check_joint_names(joint_names, episode.joint_names, f"bag {episode.source}")
        require(tuple(episode.joint_names) == tuple(joint_names),
                f"bag {episode.source}: joints in the order {list(episode.joint_names)}, the checkpoint's is "
                f"{list(joint_names)}; read it with joint_names= the checkpoint's")


def _duration_s(episode: Any) -> float:
    stamps = np.asarray(episode.stamps_ns, dtype=np.int64)
    return float((stamps[-1] - stamps[0]) * 1e-9) if stamps.size > 1 else 0.0


def _gaps(stamps_ns: np.ndarray, segments: np.ndarray) -> list[dict[str, float]]:
    breaks = np.nonzero(np.diff(segments))[0]
    stamps = np.asarray(stamps_ns, dtype=np.int64)
    return [{"after_step": int(i), "start_s": float((stamps[i] - stamps[0]) * 1e-9),
             "length_s": float((stamps[i + 1] - stamps[i]) * 1e-9)} for i in breaks]


def _prediction(model_err: np.ndarray, copy_err: np.ndarray, count: int) -> dict[str, Any]:
    return {"starts": int(count), "horizon": list(range(1, len(model_err) + 1)),
            "model_l1": model_err.tolist(), "copy_last_l1": copy_err.tolist()}


def _energy(ranks: np.ndarray) -> dict[str, Any]:
    """ranks [K, 2]: among planner-prior draws, among other recorded sequences."""
    if ranks.size == 0:
        nan = float("nan")
        return {"count": 0, "mean_rank": nan, "fraction_below_median": nan, "mean_rank_vs_recorded": nan}
    return {"count": int(ranks.shape[0]), "mean_rank": float(ranks[:, 0].mean()),
            "fraction_below_median": float((ranks[:, 0] < 0.5).mean()),
            "mean_rank_vs_recorded": float(ranks[:, 1].mean())}


def _overall(per_episode: list[dict], probe: dict, plans: list[m.PlanComparison], ranks: list[np.ndarray]) -> dict:
    weights = np.array([e["prediction"]["starts"] for e in per_episode], dtype=np.float64)
    total = max(weights.sum(), 1.0)

    def weighted(key: str) -> list[float]:
        rows = np.array([e["prediction"][key] for e in per_episode], dtype=np.float64)
        return (weights @ np.nan_to_num(rows) / total).tolist()

    planned = np.concatenate([c.planned for c in plans]) if plans else np.zeros((0, 0))
    recorded = np.concatenate([c.recorded for c in plans]) if plans else np.zeros((0, 0))
    frames = np.array([e["frames"] for e in per_episode], dtype=np.float64)
    return {
        "prediction": {"starts": int(weights.sum()), "horizon": per_episode[0]["prediction"]["horizon"],
                       "model_l1": weighted("model_l1"), "copy_last_l1": weighted("copy_last_l1")},
        "probe": {"mae_rad": float(np.nansum(frames * probe["probe_mae"]) / frames.sum()),
                  "mean_baseline_mae_rad": float(np.nansum(frames * probe["mean_baseline_mae"]) / frames.sum()),
                  "per_joint_mae_rad": probe["per_joint_mae"],
                  "per_joint_r2": probe["per_joint_r2"],
                  "validation": "by episode" if len(per_episode) > 1 else "last 25% held out"},
        "planner": m.action_agreement(planned, recorded),
        "energy": _energy(np.concatenate(ranks) if ranks else np.zeros((0, 2))),
    }


def timing(episodes: list[Any], wall_s: float) -> dict[str, float]:
    """Frames, recorded seconds, and speed relative to real time."""
    frames = sum(len(e.frames) for e in episodes)
    recorded = sum(_duration_s(e) for e in episodes)
    return {"frames": frames, "recorded_s": recorded, "wall_s": wall_s,
            "frames_per_s": frames / wall_s, "x_realtime": recorded / wall_s}
