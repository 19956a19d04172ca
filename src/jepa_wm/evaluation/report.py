"""metrics.json, report.md and PNG plots of an offline evaluation (matplotlib, Agg backend)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: no display on robots or CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from jepa_wm.evaluation import json_safe  # noqa: E402


def write_evaluation_report(results: dict[str, Any], out: Path) -> Path:
    """Write metrics.json, plots and report.md into ``out``; returns the report path."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(json_safe(results), indent=2))
    plots = {
        "prediction": _plot_prediction(results, out / "prediction_error.png"),
        "planner": _plot_planner(results, out / "planner_agreement.png"),
        "energy": _plot_energy(results, out / "energy_rank.png"),
    }
    report = out / "report.md"
    report.write_text(_markdown(results, plots))
    return report


def _save(figure, path: Path) -> str:
    """Write a figure as PNG, free it, and return the file name for the report's link."""
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path.name


def _plot_prediction(results: dict[str, Any], path: Path) -> str:
    overall = results["overall"]["prediction"]
    figure, axis = plt.subplots(figsize=(5, 3.5))
    for episode in results["episodes"]:
        axis.plot(episode["prediction"]["horizon"], episode["prediction"]["model_l1"], color="tab:blue", alpha=0.15)
    axis.plot(overall["horizon"], overall["model_l1"], "o-", color="tab:blue", label="world model")
    axis.plot(overall["horizon"], overall["copy_last_l1"], "s--", color="tab:gray", label="copy last frame")
    axis.set_xlabel("prediction horizon (steps)")
    axis.set_ylabel("latent L1 error")
    axis.set_xticks(overall["horizon"])
    axis.legend()
    axis.grid(alpha=0.3)
    return _save(figure, path)


def _plot_planner(results: dict[str, Any], path: Path) -> str:
    planned = np.array([row for plan in results["plans"] for row in plan["planned"]], dtype=np.float64)
    recorded = np.array([row for plan in results["plans"] for row in plan["recorded"]], dtype=np.float64)
    figure, axis = plt.subplots(figsize=(4.5, 4.5))
    if planned.size:
        for joint, name in enumerate(results["joint_names"]):
            axis.scatter(recorded[:, joint], planned[:, joint], s=12, label=name)
        limit = float(max(np.abs(planned).max(), np.abs(recorded).max(), 1e-3))
        axis.plot([-limit, limit], [-limit, limit], color="black", lw=0.8)
        bound = results.get("action_bound_rad")
        if bound is not None:  # the planner draws no action beyond it: points pile up on these lines
            for level in (-bound, bound):
                axis.axhline(level, color="tab:red", ls=":", lw=0.8)
            axis.set_title(f"planned actions end at the planner's bound, +-{bound:.3g} rad", fontsize=8)
        axis.legend(fontsize=7)
    axis.set_xlabel("recorded action (rad)")
    axis.set_ylabel("first planned action (rad)")
    axis.grid(alpha=0.3)
    return _save(figure, path)


def _plot_energy(results: dict[str, Any], path: Path) -> str:
    figure, axis = plt.subplots(figsize=(5, 3.5))
    index = np.arange(len(results["episodes"]))
    for offset, key, label, color in ((-0.2, "mean_rank", "vs planner-prior draws", "tab:green"),
                                      (0.2, "mean_rank_vs_recorded", "vs other recorded sequences", "tab:olive")):
        values = [e["energy"].get(key) for e in results["episodes"]]
        heights = [0 if v is None or not math.isfinite(v) else v for v in values]
        axis.bar(index + offset, heights, width=0.4, color=color, label=label)
    axis.axhline(0.5, color="tab:red", ls="--", label="chance")
    axis.set_xticks(index)
    axis.set_xlabel("episode (gap-free run)")
    axis.set_ylabel("mean energy rank of the recorded\nactions (0 = lowest energy)")
    axis.set_ylim(0, 1)
    axis.legend(fontsize=7)
    return _save(figure, path)


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _markdown(results: dict[str, Any], plots: dict[str, str]) -> str:
    overall, timing = results["overall"], results.get("timing", {})
    prediction = overall["prediction"]
    readiness = results.get("readiness")
    lines = [
        "# World model evaluation on recorded bags",
        "",
        *([f"**{readiness['statement'].splitlines()[0]}**", "",
           *[f"- {line.strip()}" for line in readiness["statement"].splitlines()[1:]], ""] if readiness else []),
        f"Checkpoint: `{results.get('checkpoint', '?')}`; {len(results['episodes'])} episodes, "
        f"{timing.get('frames', '?')} frames, {_fmt(timing.get('recorded_s'), 1)} s recorded, evaluated in "
        f"{_fmt(timing.get('wall_s'), 2)} s ({_fmt(timing.get('x_realtime'), 1)}x real time, "
        f"{_fmt(timing.get('frames_per_s'), 0)} frames/s). Seconds per phase: "
        + ", ".join(f"{k} {v:.2f}" for k, v in results.get("phase_s", {}).items()) + ".",
        "",
        "## Latent prediction error",
        "",
        "Mean absolute latent error of the rollout from frame t with the recorded actions, against the "
        "encoded frame t+h; copy-last predicts frame t for every h. Lower is better.",
        "",
        "| horizon | world model | copy last | ratio |",
        "|---|---|---|---|",
    ]
    for h, model_err, copy_err in zip(prediction["horizon"], prediction["model_l1"], prediction["copy_last_l1"]):
        ratio = model_err / copy_err if copy_err else float("nan")
        lines.append(f"| {h} | {_fmt(model_err)} | {_fmt(copy_err)} | {_fmt(ratio, 2)} |")
    probe, planner, energy = overall["probe"], overall["planner"], overall["energy"]
    signs = ", ".join(f"{n} {_fmt(v, 2)}" for n, v in zip(results["joint_names"], planner.get("sign_agreement", [])))
    lines += [
        "",
        f"![prediction error]({plots['prediction']})",
        "",
        "## Linear probe of joint positions",
        "",
        f"Ridge regression from latents to joint positions ({probe['validation']}; the probe of "
        f"benchmarks/world_model.py): mean absolute error {_fmt(probe['mae_rad'])} rad, against "
        f"{_fmt(probe['mean_baseline_mae_rad'])} rad for predicting the mean pose.",
        "",
        "| joint | MAE rad | R^2 |",
        "|---|---|---|",
        *[f"| {name} | {_fmt(mae)} | {_fmt(r2, 3)} |" for name, mae, r2 in
          zip(results["joint_names"], probe.get("per_joint_mae_rad", []), probe.get("per_joint_r2", []))],
        "",
        "## Planner agreement",
        "",
        f"Goal = frame {results['settings']['goal_offset']} steps ahead; the first planned action against the "
        f"recorded one over {planner['count']} plans: mean abs error {_fmt(planner['abs_error'])} rad, mean cosine "
        f"{_fmt(planner['cosine'], 3)} (random: 0), sign agreement {_fmt(planner.get('sign_agreement_mean'), 3)} "
        f"(random: 0.5; n/a where the recorded joint did not move); per joint: {signs}. The planner draws no "
        f"action beyond {_fmt(results.get('action_bound_rad'), 3)} rad a joint (its action bound times the "
        "checkpoint's action scale): planned actions pile up there in the plot.",
        "",
        f"![planner agreement]({plots['planner']})",
        "",
        "## Energy sanity",
        "",
        f"Rank of the recorded action sequence's energy among {results['settings']['num_random']} random sequences "
        f"drawn from the planner's prior (0 = lowest energy, chance 0.5) over {energy['count']} start points: mean "
        f"{_fmt(energy['mean_rank'], 3)}; below the median in {_fmt(energy['fraction_below_median'], 3)} of them. "
        f"Among as many recorded sequences from other times (same size and style, so only the model's sense of "
        f"where an action leads separates them): mean rank {_fmt(energy.get('mean_rank_vs_recorded'), 3)}.",
        "",
        f"![energy rank]({plots['energy']})",
        "",
        "## Episodes",
        "",
        "| bag | frames | s | gaps | h=1 model / copy | probe rad | plan cosine | energy rank |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for e in results["episodes"]:
        p = e["prediction"]
        first = f"{_fmt(p['model_l1'][0])} / {_fmt(p['copy_last_l1'][0])}" if p["model_l1"] else "n/a"
        lines.append(
            f"| `{Path(e['source']).name}` | {e['frames']} | {_fmt(e['duration_s'], 1)} | {len(e['gaps'])} | {first} | "
            f"{_fmt(e['probe']['mae_rad'])} | {_fmt(e['planner']['cosine'], 3)} | {_fmt(e['energy']['mean_rank'], 3)} |"
        )
    gaps = [(e["source"], g) for e in results["episodes"] for g in e["gaps"]]
    if gaps:
        lines += ["", "Gaps (skipped: no rollout or plan crosses them):", ""]
        lines += [f"- `{Path(s).name}`: {g['length_s']:.2f} s after {g['start_s']:.2f} s" for s, g in gaps]
    return "\n".join(lines) + "\n"
