"""Closed-loop goal reaching over DDS in MuJoCo (issue 4).

Starts sim_node and world_model_node as processes, gives 20 seeded goal images, and
compares with random and zero actions on the same goals. Last line: one JSON object.

    python benchmarks/closed_loop.py [--goals 20] [--out reports/closed_loop] [--checkpoint DIR]
"""

import argparse
import json
import os
from pathlib import Path

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("MUJOCO_GL", "egl")

from jepa_ros.demo import run_closed_loop  # noqa: E402
from jepa_wm.reaching import ReachingConfig  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--goals", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("reports/closed_loop"))
    parser.add_argument("--checkpoint", type=Path, default=None, help="checkpoint folder (default: the embedded one)")
    args = parser.parse_args()
    config = ReachingConfig(num_goals=args.goals, seed=args.seed)
    metrics = run_closed_loop(config, image_size=None, graph_args=[], out=args.out, checkpoint=args.checkpoint)
    print(f"report: {args.out}/report.md")
    print(json.dumps({
        "success_rate": metrics["world_model"]["success_rate"],
        "median_final_error_m": metrics["world_model"]["median_final_error_m"],
        "random_success_rate": metrics["random"]["success_rate"],
        "random_median_final_error_m": metrics["random"]["median_final_error_m"],
        "zero_success_rate": metrics["zero"]["success_rate"],
        "zero_median_final_error_m": metrics["zero"]["median_final_error_m"],
        "median_replan_ms": metrics["world_model"]["median_replan_ms"],
        "goals": args.goals,
    }))


if __name__ == "__main__":
    main()
