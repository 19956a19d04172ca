"""Push evaluation: seeded push goals, baselines, and the judgement of where the block ends (ROS-free).

A goal moves the block 5-15 cm from where it rests and turns it by up to 45 degrees; its image
shows the block there with the arm somewhere else (the tool at push height over a random point at
least 10 cm from the block: the arm in a goal image may be anywhere, and the planner must not have
to match it). An attempt starts with the tool at push
height clear of the block. Success is judged where the block ends: its centre within 2 cm of the
goal and its turn within 15 degrees (a square block looks the same every quarter turn).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from jepa_wm.sim import ArmSim
from jepa_wm.sim.push_explorer import PushExplorer


@dataclass(frozen=True)
class PushingConfig:
    """The push task: seeded goals, the steps allowed, and how success is judged."""

    num_goals: int = 20
    max_steps: int = 80  # control steps allowed per goal
    control_period: float = 0.2  # s per control step
    min_move: float = 0.05  # m the goal moves the block, at least ...
    max_move: float = 0.15  # ... and at most
    max_turn: float = np.pi / 4  # rad the goal turns the block, at most
    position_tolerance: float = 0.02  # m, block centre to goal centre at the end
    yaw_tolerance: float = np.radians(15)  # rad, block turn to goal turn at the end (modulo a quarter turn)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_goals < 1 or self.max_steps < 1:
            raise ValueError(f"num_goals={self.num_goals}, max_steps={self.max_steps}: expected >= 1")
        if not 0 < self.position_tolerance < self.min_move <= self.max_move:
            raise ValueError(f"position_tolerance={self.position_tolerance}, min_move={self.min_move}, max_move="
                             f"{self.max_move}: expected 0 < tolerance < min_move <= max_move (m)")


@dataclass
class PushGoal:
    """Where the block starts and should end, the goal image, and the arm's start pose."""

    start_object: np.ndarray  # [3] x, y (m), yaw (rad)
    goal_object: np.ndarray  # [3]
    start_joints: np.ndarray  # [J] rad, the tool at push height clear of the block
    image: np.ndarray  # uint8 [H, W, 3]: the block at the goal, the arm elsewhere


@dataclass
class PushAttempt:
    """One attempt at one goal: the block's error after every control step."""

    goal_index: int
    position_errors_m: list[float] = field(default_factory=list)  # [0]: before the first command
    yaw_errors_rad: list[float] = field(default_factory=list)
    frames: list[np.ndarray] = field(default_factory=list)
    replan_ms: list[float] = field(default_factory=list)

    def record(self, sim: ArmSim, goal: PushGoal) -> None:
        """Append the block's current errors to ``goal``."""
        position, yaw = object_errors(sim.object_pose(), goal.goal_object)
        self.position_errors_m.append(position)
        self.yaw_errors_rad.append(yaw)

    def succeeded(self, config: PushingConfig) -> bool:
        """The block ended within the position and turn tolerances of the goal."""
        return (self.position_errors_m[-1] <= config.position_tolerance
                and self.yaw_errors_rad[-1] <= config.yaw_tolerance)


def object_errors(pose: np.ndarray, goal: np.ndarray) -> tuple[float, float]:
    """(distance of the centres (m), turn between them (rad) modulo a quarter turn: a square's symmetry)."""
    turn = (pose[2] - goal[2] + np.pi / 4) % (np.pi / 2) - np.pi / 4
    return float(np.linalg.norm(pose[:2] - goal[:2])), float(abs(turn))


def sample_push_goals(sim: ArmSim, config: PushingConfig) -> list[PushGoal]:
    """Seeded goals inside the reachable table area, each moving the block min_move..max_move."""
    rng = np.random.default_rng(config.seed)
    area = sim.reachable_table_area
    explorer = PushExplorer(sim, rng)  # its push height is worked out once, not per goal
    goals: list[PushGoal] = []
    for _ in range(1000 * config.num_goals):
        if len(goals) == config.num_goals:
            break
        start = sim.random_object_pose(rng)
        angle = rng.uniform(-np.pi, np.pi)
        move = rng.uniform(config.min_move, config.max_move)
        goal = start + np.array([move * np.cos(angle), move * np.sin(angle), rng.uniform(-config.max_turn, config.max_turn)])
        if np.min(np.linalg.norm(area - goal[:2], axis=1)) > 0.02:  # the goal must lie where the block can be pushed
            continue
        sim.reset(seed=config.seed, object_pose=goal)
        sim.reset(seed=config.seed, joint_positions=explorer.start(), object_pose=goal)  # the arm elsewhere, clear of it
        image = sim.render().copy()
        sim.reset(seed=config.seed, object_pose=start)
        start_joints = explorer.start()
        goals.append(PushGoal(start.copy(), goal, start_joints, image))
    if len(goals) < config.num_goals:
        raise RuntimeError(f"found only {len(goals)} of {config.num_goals} push goals inside the reachable area")
    return goals


def _start(sim: ArmSim, goal: PushGoal, config: PushingConfig, index: int) -> PushAttempt:
    sim.reset(seed=config.seed, joint_positions=goal.start_joints, object_pose=goal.start_object)
    attempt = PushAttempt(index)
    attempt.record(sim, goal)
    return attempt


def run_push_baseline(sim: ArmSim, goals: list[PushGoal], config: PushingConfig, policy: str,
                      step: float = 0.03) -> list[PushAttempt]:
    """'zero' (the arm stays) or 'random' (the tool moves up to ``step`` m a step in random directions at
    push height, as the exploration does without its pushes) on the same goals."""
    if policy not in ("zero", "random"):
        raise ValueError(f"baseline policy {policy!r}: expected 'zero' or 'random'")
    rng = np.random.default_rng(config.seed + 1)
    explorer = PushExplorer(sim, rng, max_step=step)
    attempts = []
    for index, goal in enumerate(goals):
        attempt = _start(sim, goal, config, index)
        for _ in range(config.max_steps):
            if policy == "random":
                explorer.waypoints = [rng.uniform(explorer.lower, explorer.upper)]
                sim.set_target(explorer.next_target(sim.joint_positions))
            sim.step(config.control_period)
            attempt.record(sim, goal)
        attempts.append(attempt)
    return attempts


def run_push_controller(sim: ArmSim, goals: list[PushGoal], config: PushingConfig, controller,
                        video_every: int = 0) -> list[PushAttempt]:
    """Closed loop in one process (no DDS): ``controller`` is a jepa_wm.controller.LatentMPC for a planar checkpoint."""
    attempts = []
    for index, goal in enumerate(goals):
        attempt = _start(sim, goal, config, index)
        controller.reset()
        controller.set_goal(goal.image)
        for step in range(1, config.max_steps + 1):
            frame = sim.render()
            out = controller.step(frame, sim.joint_positions)
            if out.command is not None:
                sim.set_target(out.command)
                if np.isfinite(out.plan_ms):
                    attempt.replan_ms.append(out.plan_ms + out.encode_ms)
            sim.step(config.control_period)
            attempt.record(sim, goal)
            if video_every and step % video_every == 0:
                attempt.frames.append(frame)
        attempts.append(attempt)
    return attempts


def summarize_pushes(attempts: list[PushAttempt], config: PushingConfig) -> dict[str, float]:
    """Success rate and the block's final and best errors over attempts."""
    replans = [ms for a in attempts for ms in a.replan_ms]
    return {
        "push_success_rate": float(np.mean([a.succeeded(config) for a in attempts])),
        "median_final_object_error_m": float(np.median([a.position_errors_m[-1] for a in attempts])),
        "median_final_object_turn_deg": float(np.degrees(np.median([a.yaw_errors_rad[-1] for a in attempts]))),
        "median_initial_object_error_m": float(np.median([a.position_errors_m[0] for a in attempts])),
        "median_replan_ms": float(np.median(replans)) if replans else float("nan"),
    }


def write_push_report(out: Path, config: PushingConfig, results: dict[str, list[PushAttempt]], goals: list[PushGoal],
                      extra: dict | None = None) -> dict:
    """Write metrics.json, report.md (a table per policy and per goal), object_error.png (per goal) and
    rollouts.gif (camera | goal) of the first policy; return the metrics."""
    import imageio.v2 as imageio

    from jepa_wm.evaluation import json_safe
    from jepa_wm.reaching import plot_goal_errors

    out.mkdir(parents=True, exist_ok=True)
    metrics = {name: summarize_pushes(attempts, config) for name, attempts in results.items()}
    metrics["config"] = asdict(config)
    metrics.update(extra or {})
    (out / "metrics.json").write_text(json.dumps(json_safe(metrics), indent=2))
    names = list(results)
    lines = ["# Push goals", "",
             f"{config.num_goals} seeded goals (seed {config.seed}): the block moved {config.min_move * 100:.0f}-"
             f"{config.max_move * 100:.0f} cm and turned up to {np.degrees(config.max_turn):.0f} degrees, the arm elsewhere "
             f"in the goal image; {config.max_steps} control steps. Success: the block within "
             f"{config.position_tolerance * 100:.0f} cm and {np.degrees(config.yaw_tolerance):.0f} degrees of the goal at "
             "the end of the episode.", "",
             "| policy | success | median final error (cm) | median final turn (deg) |", "|---|---|---|---|"]
    for name in names:
        m = metrics[name]
        lines.append(f"| {name} | {m['push_success_rate']:.0%} | {m['median_final_object_error_m'] * 100:.1f} | "
                     f"{m['median_final_object_turn_deg']:.1f} |")
    lines += ["", "| goal | start (cm) | " + " | ".join(f"{n} final (cm, deg)" for n in names) + " |",
              "|---|---|" + "---|" * len(names)]
    for index in range(len(goals)):
        finals = " | ".join(f"{results[n][index].position_errors_m[-1] * 100:.1f}, "
                            f"{np.degrees(results[n][index].yaw_errors_rad[-1]):.0f}" for n in names)
        lines.append(f"| {index} | {results[names[0]][index].position_errors_m[0] * 100:.1f} | {finals} |")
    lines += ["", "![block error per step](object_error.png)", "", "Video: `rollouts.gif` (camera | goal)."]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    plot_goal_errors(out / "object_error.png", {name: [a.position_errors_m for a in results[name]] for name in names},
                     config.position_tolerance, "block error (cm)")
    video = [np.concatenate([frame, goals[a.goal_index].image], axis=1) for a in results[names[0]] for frame in a.frames]
    if video:
        imageio.mimsave(out / "rollouts.gif", video, duration=0.1, loop=0)
    return metrics
