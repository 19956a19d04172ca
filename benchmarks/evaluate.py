"""Offline evaluation speed: `jepa-ros evaluate` on a simulated bag with the default checkpoint.

Collects a fresh MuJoCo exploration bag (seed unseen in training), evaluates it and
reports frames per second and how many times faster than real time the evaluation ran
(bag reading included; model loading and report plotting excluded). Target: >= 20x on a
2-core CPU. Last line: one JSON object.

    python benchmarks/evaluate.py [--steps 300] [--out reports/bench_replay]
"""

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import torch  # noqa: E402

from jepa_wm.command_line import main as cli  # noqa: E402
from jepa_wm.config import WorldModelConfig, load_yaml, package_share  # noqa: E402
from jepa_wm.models import WorldModel, save_checkpoint  # noqa: E402
from jepa_wm.models.checkpoint import default_checkpoint  # noqa: E402


def checkpoint_folder(scratch: Path) -> tuple[Path, str]:
    """The default checkpoint; without it, the default architecture untrained (same speed, meaningless metrics)."""
    default = default_checkpoint()
    if (default / "config.json").is_file():
        return default, str(default)
    config = load_yaml(package_share() / "config" / "training" / "world_model.yaml", WorldModelConfig, "world_model")
    torch.manual_seed(0)
    untrained = save_checkpoint(WorldModel(config), scratch / "untrained")
    return untrained, "untrained default architecture (no checkpoints/default)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="frames in the simulated bag (0.2 s apart)")
    parser.add_argument("--seed", type=int, default=9001)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads for evaluate")
    parser.add_argument("--out", type=Path, default=Path("reports/bench_replay"))
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench_replay_"))
    try:
        bags = scratch / "bags"
        assert cli(["collect", "--episodes", "1", "--steps", str(args.steps), "--seed", str(args.seed),
                    "--out", str(bags), "--workers", "1"]) == 0
        checkpoint, checkpoint_name = checkpoint_folder(scratch)
        started = time.perf_counter()
        assert cli(["evaluate", "--bag", str(bags), "--checkpoint", str(checkpoint), "--out", str(args.out),
                    "--no-progress", "--threads", str(args.threads)]) == 0
        total_s = time.perf_counter() - started
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    metrics = json.loads((args.out / "metrics.json").read_text())
    timing, overall = metrics["timing"], metrics["overall"]
    print(f"report: {args.out}/report.md")
    print(json.dumps({
        "frames_per_s": round(timing["frames_per_s"], 1),
        "x_realtime": round(timing["x_realtime"], 2),
        "frames": timing["frames"],
        "recorded_s": round(timing["recorded_s"], 2),
        "evaluate_s": round(timing["wall_s"], 3),
        "command_s_with_model_load_and_report": round(total_s, 3),
        "h1_model_l1": overall["prediction"]["model_l1"][0],
        "h1_copy_last_l1": overall["prediction"]["copy_last_l1"][0],
        "energy_mean_rank": overall["energy"]["mean_rank"],
        "plan_cosine": overall["planner"]["cosine"],
        "checkpoint": checkpoint_name,
        "threads": args.threads,
    }))


if __name__ == "__main__":
    main()
