"""Push goals on the simulated arm: where the block ends, for a planar world model and the baselines.

20 seeded goals (the block moved 5-15 cm and turned up to 45 degrees; the goal image shows it there
with the arm elsewhere). Success: the block's centre within 2 cm and its turn within 15 degrees at the
end of the episode. The world model (a checkpoint with `world_model.action_space: planar`, trained on
`jepa-ros collect --scene push` bags; default checkpoints/push) runs over DDS: sim_node in the push
scene and world_model_node as separate processes (`--in-process`: one process, simulated time, for
quick screens). The no-action and random-push baselines run on the same goals. Last line: one JSON object.

    python benchmarks/push.py [--checkpoint DIR] [--goals 20] [--seed 0] [--in-process] [--out reports/push]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from jepa_wm.config import PlannerConfig, SimConfig, load_robot
from jepa_wm.models.checkpoint import checkpoint_robot, push_checkpoint, training_seconds
from jepa_wm.pushing import (
    PushingConfig,
    run_push_baseline,
    run_push_controller,
    sample_push_goals,
    write_push_report,
)
from jepa_wm.sim import ArmSim


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="a planar checkpoint (default: the packaged checkpoints/push)")
    parser.add_argument("--robot", default=None, help="simulated robot preset (default: the checkpoint's)")
    parser.add_argument("--goals", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--in-process", action="store_true", help="no DDS: the controller in this process")
    parser.add_argument("--out", type=Path, default=Path("reports/push"))
    args = parser.parse_args()
    config = PushingConfig(num_goals=args.goals, seed=args.seed)
    checkpoint = args.checkpoint or push_checkpoint()
    robot = args.robot or checkpoint_robot(checkpoint)
    extra = {"train_minutes": round(training_seconds(checkpoint) / 60, 1)}
    if args.in_process:
        metrics = run_in_process(config, checkpoint, robot, args.out, extra)
    else:
        from jepa_ros.push_demo import run_push_closed_loop

        metrics = run_push_closed_loop(config, checkpoint, robot, [], args.out, extra)
    summary = {**metrics["world_model"], **extra,
               "random_push_success_rate": metrics["random"]["push_success_rate"],
               "zero_push_success_rate": metrics["zero"]["push_success_rate"],
               "random_median_final_object_error_m": metrics["random"]["median_final_object_error_m"],
               "goals": config.num_goals, "seed": config.seed, "mode": "in_process" if args.in_process else "dds"}
    print(f"report written to {args.out}/report.md")
    print(json.dumps(summary))


def run_in_process(config: PushingConfig, checkpoint: Path, robot: str, out: Path, extra: dict) -> dict:
    """The controller in this process with simulated time, then the baselines, on the same goals."""
    import torch

    from jepa_wm.controller import LatentMPC

    torch.set_num_threads(1)
    controller = LatentMPC.from_checkpoint(checkpoint, PlannerConfig(), load_robot(robot), config.control_period,
                                           hold_at_goal=False)
    image_size = controller.model.config.encoder.image_size
    with ArmSim(SimConfig(robot=robot, scene="push", image_size=image_size, control_period=config.control_period,
                          seed=config.seed)) as sim:
        goals = sample_push_goals(sim, config)
        results = {"world_model": run_push_controller(sim, goals, config, controller, video_every=2),
                   "random": run_push_baseline(sim, goals, config, "random"),
                   "zero": run_push_baseline(sim, goals, config, "zero")}
    return write_push_report(out, config, results, goals, extra)


if __name__ == "__main__":
    main()
