"""Own-robot benchmark: a robot the default recipe was not tuned on, with the checkpoint `make checkpoint
ROBOT=<preset>` ships for it, checked the way a user checks their own arm.

    .venv/bin/python benchmarks/own_robot.py [--robot so101_sim] [--checkpoint checkpoints/so101_sim] [--goals 20]

Held-out exploration episodes (a seed no training set uses) give the prediction error over copying the
last frame and the joint probe (fit on 240 episodes of another seed, scored per joint on the held-out
ones; benchmarks/world_model.py's measures); 20 seeded goals over DDS (sim_node robot:=<preset> and
world_model_node) give the closed-loop figures: held = within 3 cm at the end of the episode and at each
of its last 5 control steps, touched = within 3 cm at any step. train_minutes is read from the
checkpoint's training record (every stage). The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("MUJOCO_GL", "egl")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import torch  # noqa: E402

from jepa_ros.demo import run_closed_loop  # noqa: E402
from jepa_wm.models.checkpoint import checkpoint_robot, load_checkpoint, training_seconds  # noqa: E402
from jepa_wm.reaching import ReachingConfig  # noqa: E402
from world_model import HELD_OUT_SEED, PROBE_FIT_SEED, collect_episodes, quality  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--robot", default="so101_sim", help="simulated robot preset")
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: checkpoints/<robot>")
    parser.add_argument("--episodes", type=int, default=40, help="held-out exploration episodes")
    parser.add_argument("--probe-fit-episodes", type=int, default=240)
    parser.add_argument("--goals", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0, help="seed of the goal poses")
    parser.add_argument("--out", type=Path, default=Path("reports/own_robot"))
    args = parser.parse_args()
    checkpoint = args.checkpoint or ROOT / "checkpoints" / args.robot
    trained_for = checkpoint_robot(checkpoint)
    if trained_for != args.robot:
        raise SystemExit(f"checkpoint {checkpoint} was trained for robot {trained_for!r}, not {args.robot!r}")
    model = load_checkpoint(checkpoint).eval()
    torch.manual_seed(0)
    with torch.inference_mode():
        held_out = collect_episodes(model, args.robot, args.episodes, 60, HELD_OUT_SEED)
        fit = collect_episodes(model, args.robot, args.probe_fit_episodes, 60, PROBE_FIT_SEED)
        measured = quality(model, held_out, fit_episodes=fit)
    per_joint = dict(zip(model.config.joint_names, measured[f"probe_r2_fit{len(fit)}_per_joint"]))
    print(f"held-out error / copy-last: h1 {measured['h1_error_ratio']:.3f}, h2 {measured['h2_error_ratio']:.3f}, "
          f"h4 {measured['h4_error_ratio']:.3f}; probe R^2 per joint {per_joint}")
    closed = run_closed_loop(ReachingConfig(num_goals=args.goals, seed=args.seed), None, [], args.out, checkpoint,
                             args.robot)["world_model"]
    print(f"report: {args.out}/report.md")
    print(json.dumps({
        "robot": args.robot,
        "joints": len(model.config.joint_names),
        "h1_error_ratio": round(measured["h1_error_ratio"], 4),
        "h4_error_ratio": round(measured["h4_error_ratio"], 4),
        "probe_r2_min_joint": round(min(per_joint.values()), 4),
        "probe_r2_per_joint": per_joint,
        "hold_success_rate": closed["hold_success_rate"],
        "touch_success_rate": closed["touch_success_rate"],
        "median_final_error_m": closed["median_final_error_m"],
        "median_replan_ms": closed["median_replan_ms"],
        "train_minutes": round(training_seconds(checkpoint) / 60, 2),
        "goals": args.goals,
        "seed": args.seed,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
