"""Closed-loop goal reaching in MuJoCo, over DDS or in one process.

Default: starts sim_node and world_model_node as processes, gives 20 seeded goal images, and
compares with random and zero actions on the same goals. ``--in-process`` runs the same
controller (LatentMPC with the world_model_node's planner settings) in this process with
simulated time and a fixed command delay: repeatable goal for goal, a screen for checkpoints
and planner settings (``--planner key=value``). It is no substitute for the DDS run: a shorter
horizon and a tool-flag model both reached more goals here and fewer over DDS. Last line: one
JSON object.

    python benchmarks/closed_loop.py [--goals 20] [--seed 0] [--out reports/closed_loop] [--checkpoint DIR]
                                     [--planner num_samples=64 ...] [--hold-by tool]
    python benchmarks/closed_loop.py --in-process [--command-delay 0.17] [--planner horizon=5 ...]
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/closed_loop.py  # as on an AVX2 CPU
"""

import argparse
import json
import os
from pathlib import Path

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("MUJOCO_GL", "egl")

import torch  # noqa: E402
import yaml  # noqa: E402

from jepa_ros.demo import run_closed_loop  # noqa: E402
from jepa_wm.config import PlannerConfig, node_planner  # noqa: E402
from jepa_wm.controller import HOLD_BY  # noqa: E402
from jepa_wm.models.checkpoint import default_checkpoint  # noqa: E402
from jepa_wm.reaching import ReachingConfig  # noqa: E402


def planner_overrides(items: list[str]) -> dict:
    """``key=value`` items (YAML values) -> {key: value}, checked against PlannerConfig's fields."""
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--planner {item!r}: expected key=value, e.g. horizon=5")
        overrides[key] = yaml.safe_load(value)
    node_planner(overrides)  # refuses unknown keys and bad values here, before any process starts
    return overrides


def run_in_process(config: ReachingConfig, checkpoint: Path, planner: PlannerConfig, command_delay: float,
                   out: Path, hold_by: str) -> dict:
    """LatentMPC against ArmSim in this process; the report of run_closed_loop."""
    from tqdm import tqdm

    from jepa_wm.config import load_robot
    from jepa_wm.controller import LatentMPC
    from jepa_wm.models.checkpoint import checkpoint_robot, read_checkpoint_config
    from jepa_wm.reaching import make_sim, run_baseline, run_controller, sample_goals, write_reaching_report
    from jepa_wm.runtime import keep_freed_memory

    torch.set_num_threads(1)  # as world_model_node (torch_threads: 1)
    keep_freed_memory()  # as world_model_node
    robot = load_robot(checkpoint_robot(checkpoint))  # the preset the checkpoint was trained for
    mpc = LatentMPC.from_checkpoint(checkpoint, planner, robot, config.control_period, hold_by=hold_by)
    model = mpc.model
    sim = make_sim(model.config.encoder.image_size, config.scene_seed, robot.name)
    goals = sample_goals(sim, config)
    results = {
        "world_model": run_controller(sim, tqdm(goals, desc="goals"), config, mpc, video_every=2,
                                      command_delay=command_delay),
        "random": run_baseline(sim, goals, config, "random", model.config.action_scale),
        "zero": run_baseline(sim, goals, config, "zero", model.config.action_scale),
    }
    reach = read_checkpoint_config(checkpoint)[1].get("reach")
    hold = {**reach, "hold_by": hold_by} if reach else None
    extra = {"mode": "in_process", "command_delay_s": command_delay, "num_samples": mpc.planner.num_samples}
    return write_reaching_report(out, config, results, goals, extra, hold)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--goals", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0, help="seed of the goal poses")
    parser.add_argument("--scene-seed", type=int, default=0, help="object placement (sim_node's seed) of the scene")
    parser.add_argument("--out", type=Path, default=Path("reports/closed_loop"))
    parser.add_argument("--checkpoint", type=Path, default=None, help="checkpoint folder (default: the embedded one)")
    parser.add_argument("--in-process", action="store_true", help="one process, simulated time (no DDS)")
    parser.add_argument("--command-delay", type=float, default=0.17,
                        help="--in-process: seconds from a frame to its command reaching the arm (DDS median ~0.17)")
    parser.add_argument("--planner", nargs="*", default=[], metavar="KEY=VALUE",
                        help="planner settings over config/nodes/world_model_node.yaml's (node parameters planner.KEY)")
    parser.add_argument("--hold-by", choices=HOLD_BY, default=HOLD_BY[0], help="world_model_node's hold_by")
    args = parser.parse_args()
    config = ReachingConfig(num_goals=args.goals, seed=args.seed, scene_seed=args.scene_seed)
    checkpoint = args.checkpoint or default_checkpoint()
    overrides = planner_overrides(args.planner)
    if args.in_process:
        metrics = run_in_process(config, checkpoint, node_planner(overrides), args.command_delay, args.out,
                                 args.hold_by)
    else:
        node_params = {**({"planner": overrides} if overrides else {}), "hold_by": args.hold_by}
        metrics = run_closed_loop(config, image_size=None, graph_args=[], out=args.out, checkpoint=checkpoint,
                                  node_params=node_params)
    print(f"report: {args.out}/report.md")
    print(json.dumps({
        "hold_success_rate": metrics["world_model"]["hold_success_rate"],
        "touch_success_rate": metrics["world_model"]["touch_success_rate"],
        "median_final_error_m": metrics["world_model"]["median_final_error_m"],
        "median_best_error_m": metrics["world_model"]["median_best_error_m"],
        "random_hold_success_rate": metrics["random"]["hold_success_rate"],
        "random_touch_success_rate": metrics["random"]["touch_success_rate"],
        "random_median_final_error_m": metrics["random"]["median_final_error_m"],
        "zero_hold_success_rate": metrics["zero"]["hold_success_rate"],
        "zero_touch_success_rate": metrics["zero"]["touch_success_rate"],
        "zero_median_final_error_m": metrics["zero"]["median_final_error_m"],
        "median_replan_ms": metrics["world_model"]["median_replan_ms"],
        "num_samples": metrics["num_samples"],  # candidates a plan, as planner.budget_ms left them on this machine
        "goals": args.goals,
        "seed": args.seed,
        "scene_seed": args.scene_seed,
        "hold_by": args.hold_by,
        "mode": "in_process" if args.in_process else "dds",
        # the instructions torch dispatches to here and in the nodes it starts (ATEN_CPU_CAPABILITY=avx2 on
        # an AVX-512 CPU leaves out the AVX-512 kernels; it replanned ~2x faster than a real AVX2 CPU)
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        **({"planner": overrides} if overrides else {}),
        **({"command_delay_s": args.command_delay} if args.in_process else {}),
    }))


if __name__ == "__main__":
    main()
