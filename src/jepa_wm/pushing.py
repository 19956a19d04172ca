"""Push evaluation: seeded push goals, baselines, and the judgement of where the block ends (ROS-free).

A goal moves the block 5-15 cm from where it rests and turns it by up to 45 degrees; its image
shows the block there with the arm somewhere else (a random pose: the arm in a goal image may be
anywhere, and the planner must not have to match it). An attempt starts with the tool at push
height clear of the block. Success is judged where the block ends: its centre within 2 cm of the
goal and its turn within 15 degrees (a square block looks the same every quarter turn).
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
        sim.reset(seed=config.seed, joint_positions=sim.sample_joint_positions(rng), object_pose=goal)  # arm anywhere
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
