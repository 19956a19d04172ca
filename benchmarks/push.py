"""Push goals on the simulated arm: where the block ends, for a planar world model and the baselines.

20 seeded goals (the block moved 5-15 cm and turned up to 45 degrees; the goal image shows it there
with the arm elsewhere). Success: the block's centre within 2 cm and its turn within 15 degrees at the
end of the episode. The no-action and random-push baselines run on the same goals; the world model
(a checkpoint with `world_model.action_space: planar`, trained on `jepa-ros collect --scene push`
bags) runs in this process with simulated time. Last line: one JSON object.

    python benchmarks/push.py [--checkpoint DIR] [--goals 20] [--seed 0] [--out reports/push]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from jepa_wm.config import PlannerConfig, SimConfig, load_robot
from jepa_wm.evaluation import json_safe
from jepa_wm.pushing import (
    PushingConfig,
    run_push_baseline,
    run_push_controller,
    sample_push_goals,
    summarize_pushes,
)
from jepa_wm.sim import ArmSim


def write_report(out: Path, config: PushingConfig, results: dict, goals: list, metrics: dict) -> None:
    """report.md (table per policy and per goal), object_error.png and rollouts.gif (camera | goal)."""
    import imageio.v2 as imageio

    from jepa_wm.reaching import plot_goal_errors

    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(json_safe(metrics), indent=2))
    lines = ["# Push goals", "",
             f"{config.num_goals} seeded goals (seed {config.seed}): the block moved {config.min_move * 100:.0f}-"
             f"{config.max_move * 100:.0f} cm and turned up to {np.degrees(config.max_turn):.0f} degrees, the arm elsewhere "
             f"in the goal image; {config.max_steps} control steps. Success: the block within "
             f"{config.position_tolerance * 100:.0f} cm and {np.degrees(config.yaw_tolerance):.0f} degrees of the goal at "
             "the end.", "", "| policy | success | median final error (cm) | median final turn (deg) |", "|---|---|---|---|"]
    for name, attempts in results.items():
        m = summarize_pushes(attempts, config)
        lines.append(f"| {name} | {m['push_success_rate']:.0%} | {m['median_final_object_error_m'] * 100:.1f} | "
                     f"{m['median_final_object_turn_deg']:.1f} |")
    lines += ["", "![block error per step](object_error.png)"]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    plot_goal_errors(out / "object_error.png", {name: [a.position_errors_m for a in attempts]
                                                 for name, attempts in results.items()},
                     config.position_tolerance, "block error (cm)")
    first = next(iter(results.values()))
    video = [np.concatenate([frame, goals[a.goal_index].image], axis=1) for a in first for frame in a.frames]
    if video:
        imageio.mimsave(out / "rollouts.gif", video, duration=0.1, loop=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=None, help="a planar checkpoint (default: baselines only)")
    parser.add_argument("--robot", default="jepa_arm")
    parser.add_argument("--goals", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--out", type=Path, default=Path("reports/push"))
    args = parser.parse_args()
    config = PushingConfig(num_goals=args.goals, seed=args.seed)
    results, extra = {}, {}
    controller = None
    if args.checkpoint is not None:
        import torch

        from jepa_wm.controller import LatentMPC
        from jepa_wm.models.checkpoint import training_seconds

        torch.set_num_threads(1)
        controller = LatentMPC.from_checkpoint(args.checkpoint, PlannerConfig(), load_robot(args.robot),
                                               config.control_period, hold_at_goal=False)
        args.image_size = controller.model.config.encoder.image_size
        extra["train_minutes"] = round(training_seconds(args.checkpoint) / 60, 1)
    with ArmSim(SimConfig(robot=args.robot, scene="push", image_size=args.image_size,
                          control_period=config.control_period)) as sim:
        goals = sample_push_goals(sim, config)
        if controller is not None:
            results["world_model"] = run_push_controller(sim, goals, config, controller, video_every=2)
        results["random"] = run_push_baseline(sim, goals, config, "random")
        results["zero"] = run_push_baseline(sim, goals, config, "zero")
    metrics = {name: summarize_pushes(attempts, config) for name, attempts in results.items()}
    write_report(args.out, config, results, goals, metrics)
    summary = {**metrics.get("world_model", {}), **extra,
               "random_push_success_rate": metrics["random"]["push_success_rate"],
               "zero_push_success_rate": metrics["zero"]["push_success_rate"],
               "random_median_final_object_error_m": metrics["random"]["median_final_object_error_m"],
               "goals": config.num_goals, "seed": config.seed, "mode": "in_process"}
    if controller is None:
        print("no --checkpoint: the baselines only (a planar world model is trained on `jepa-ros collect --scene push`)")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
