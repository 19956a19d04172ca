"""Goal-reaching evaluation: seeded goals, baselines, metrics and the report (ROS-free).

The closed loop runs over DDS in ``jepa_ros.demo``, or here in one process with simulated
time (``run_controller``); this module draws the goals, runs the no-action and random-action
baselines in MuJoCo on the same goals, and turns per-step end-effector errors into a success
table, metrics, plots and a video.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from jepa_wm.config import SimConfig
from jepa_wm.evaluation import json_safe
from jepa_wm.sim import ArmSim


@dataclass(frozen=True)
class ReachingConfig:
    """The goal-reaching task: seeded goal poses, their images, and how success is judged."""

    num_goals: int = 20
    max_steps: int = 60  # control steps allowed per goal
    success_radius: float = 0.03  # m, end effector to goal end-effector position
    hold_steps: int = 5  # held: within the radius at each of the episode's last hold_steps control steps
    min_goal_distance: float = 0.10  # m, goal end effector from the start end effector
    control_period: float = 0.2  # s per control step (the jepa_arm preset's 5 Hz)
    seed: int = 0  # goal poses
    # Object placement of the scene the arm works in and the goals are rendered in: sim_node's
    # `seed` parameter (0 by default, the scene the exploration data was collected in).
    scene_seed: int = 0

    def __post_init__(self) -> None:
        if self.num_goals < 1 or self.max_steps < 1:
            raise ValueError(f"num_goals={self.num_goals}, max_steps={self.max_steps}: expected >= 1")
        if not 1 <= self.hold_steps <= self.max_steps:
            raise ValueError(f"hold_steps={self.hold_steps}: expected 1..max_steps={self.max_steps}")
        if not 0 < self.success_radius < self.min_goal_distance:
            raise ValueError(
                f"success_radius={self.success_radius} m: expected 0 < radius < min_goal_distance={self.min_goal_distance}"
            )


@dataclass
class Goal:
    """A goal pose, what the camera sees there, and where the end effector is."""

    joint_positions: np.ndarray  # [J] rad
    ee_position: np.ndarray  # [3] m
    image: np.ndarray  # uint8 [H, W, 3]


@dataclass
class ReachAttempt:
    """One attempt at one goal: end-effector error after every control step."""

    goal_index: int
    errors_m: list[float] = field(default_factory=list)  # errors_m[0] is before the first command
    frames: list[np.ndarray] = field(default_factory=list)  # camera view per step (for the video)
    holding: list[bool] = field(default_factory=list)  # per video frame: the controller held the arm (reached)
    replan_ms: list[float] = field(default_factory=list)

    @property
    def final_error_m(self) -> float:
        """Error after the last step."""
        return self.errors_m[-1]

    def touched(self, config: ReachingConfig) -> bool:
        """Within the success radius at any step: passing by the goal counts."""
        return min(self.errors_m[: config.max_steps + 1]) <= config.success_radius

    def held(self, config: ReachingConfig) -> bool:
        """Within the success radius at the end and at each of the last ``hold_steps`` steps: where a user needs it."""
        steps = self.errors_m[1 : config.max_steps + 1]  # errors_m[0] is before the first command
        return len(steps) >= config.hold_steps and max(steps[-config.hold_steps :]) <= config.success_radius


def sample_goals(sim: ArmSim, config: ReachingConfig) -> list[Goal]:
    """Seeded reachable goals, each at least ``min_goal_distance`` from the home end effector."""
    rng = np.random.default_rng(config.seed)
    sim.reset(seed=config.seed)
    start_ee = sim.end_effector_position().copy()
    goals: list[Goal] = []
    for _ in range(1000 * config.num_goals):
        if len(goals) == config.num_goals:
            break
        joint_positions = sim.sample_joint_positions(rng)
        sim.reset(seed=config.seed, joint_positions=joint_positions)
        ee_position = sim.end_effector_position().copy()
        if np.linalg.norm(ee_position - start_ee) < config.min_goal_distance:
            continue
        goals.append(Goal(joint_positions.copy(), ee_position, sim.render().copy()))
    if len(goals) < config.num_goals:
        raise RuntimeError(
            f"found only {len(goals)} of {config.num_goals} goals at least {config.min_goal_distance} m from the start"
        )
    sim.reset(seed=config.seed)
    return goals


def run_baseline(
    sim: ArmSim, goals: list[Goal], config: ReachingConfig, policy: str, action_scale: float
) -> list[ReachAttempt]:
    """Roll out ``policy`` ('zero' or 'random' joint deltas of at most action_scale rad) in MuJoCo."""
    if policy not in ("zero", "random"):
        raise ValueError(f"baseline policy {policy!r}: expected 'zero' or 'random'")
    rng = np.random.default_rng(config.seed + 1)
    episodes = []
    for index, goal in enumerate(goals):
        sim.reset(seed=config.seed)
        episode = ReachAttempt(index, [float(np.linalg.norm(sim.end_effector_position() - goal.ee_position))])
        for _ in range(config.max_steps):
            delta = np.zeros(len(sim.joint_names)) if policy == "zero" else rng.uniform(-1, 1, len(sim.joint_names))
            sim.set_target(sim.joint_positions + delta * action_scale)
            sim.step(config.control_period)
            episode.errors_m.append(float(np.linalg.norm(sim.end_effector_position() - goal.ee_position)))
        episodes.append(episode)
    return episodes


def run_controller(
    sim: ArmSim, goals: list[Goal], config: ReachingConfig, controller, video_every: int = 0, command_delay: float = 0.0
) -> list[ReachAttempt]:
    """Closed loop in one process (no DDS): ``controller`` is a jepa_wm.controller.LatentMPC.

    The loop the nodes run over DDS, with simulated instead of real time, so a run is repeatable
    and two checkpoints or planners can be compared goal for goal. ``command_delay`` (s) emulates
    the time a command takes to reach the arm (over DDS: planning, ~0.17 s of the 0.2 s period):
    the arm follows the previous target that long after the frame is taken, then the new one.
    """
    if not 0.0 <= command_delay < config.control_period:
        raise ValueError(f"command_delay={command_delay} s: expected [0, control_period={config.control_period})")
    episodes = []
    for index, goal in enumerate(goals):
        sim.reset(seed=config.seed)
        controller.reset()
        controller.set_goal(goal.image)
        episode = ReachAttempt(index, [float(np.linalg.norm(sim.end_effector_position() - goal.ee_position))])
        for step in range(1, config.max_steps + 1):
            frame = sim.render()
            out = controller.step(frame, sim.joint_positions)
            if command_delay > 0:
                sim.step(command_delay)
            if out.command is not None:
                sim.set_target(out.command)
                if np.isfinite(out.plan_ms):  # a tick that holds at the goal does not plan
                    episode.replan_ms.append(out.plan_ms + out.encode_ms)
            sim.step(config.control_period - command_delay)
            episode.errors_m.append(float(np.linalg.norm(sim.end_effector_position() - goal.ee_position)))
            if video_every and step % video_every == 0:
                episode.frames.append(frame)
                episode.holding.append(bool(out.reached))
        episodes.append(episode)
    return episodes


def summarize(episodes: list[ReachAttempt], config: ReachingConfig) -> dict[str, float]:
    """Success rate and error statistics over episodes."""
    finals = np.array([e.final_error_m for e in episodes])
    best = np.array([min(e.errors_m) for e in episodes])
    replans = [ms for e in episodes for ms in e.replan_ms]
    return {
        "hold_success_rate": float(np.mean([e.held(config) for e in episodes])),
        "touch_success_rate": float(np.mean([e.touched(config) for e in episodes])),
        "median_final_error_m": float(np.median(finals)),
        "median_best_error_m": float(np.median(best)),
        "median_initial_error_m": float(np.median([e.errors_m[0] for e in episodes])),
        "median_replan_ms": float(np.median(replans)) if replans else float("nan"),
    }


def write_reaching_report(
    out: Path,
    config: ReachingConfig,
    results: dict[str, list[ReachAttempt]],
    goals: list[Goal],
    extra: dict | None = None,
    hold: dict | None = None,
) -> dict:
    """Write metrics.json, report.md (success table), per-goal error plots and a video; return the metrics.

    ``hold``: the checkpoint's calibrated reach distances (metadata ``reach``), stated in the report as
    the criterion by which the controller holds the arm; None: the controller never held it.
    """
    import imageio.v2 as imageio

    out.mkdir(parents=True, exist_ok=True)
    metrics = {name: summarize(episodes, config) for name, episodes in results.items()}
    metrics["config"] = asdict(config)
    metrics["hold_criterion"] = hold
    metrics.update(extra or {})
    (out / "metrics.json").write_text(json.dumps(json_safe(metrics), indent=2))  # NaN (no plan) as null

    names = list(results)
    lines = [
        "# Goal reaching",
        "",
        f"{config.num_goals} seeded goals (seed {config.seed}), {config.max_steps} control steps each. Held: the end "
        f"effector within {config.success_radius * 100:.0f} cm of the goal at each of the last {config.hold_steps} "
        f"steps (where the arm ends and stays). Touched: within {config.success_radius * 100:.0f} cm at any step.",
        "",
        hold_criterion(hold),
        "",
        "| policy | held | touched | median final error (cm) | median best error (cm) |",
        "|---|---|---|---|---|",
    ]
    for name in names:
        m = metrics[name]
        lines.append(
            f"| {name} | {m['hold_success_rate']:.0%} | {m['touch_success_rate']:.0%} | "
            f"{m['median_final_error_m'] * 100:.1f} | {m['median_best_error_m'] * 100:.1f} |"
        )
    replan_ms = metrics[names[0]]["median_replan_ms"]
    if np.isfinite(replan_ms):  # nan where nothing planned (baselines, or every tick held)
        samples = metrics.get("num_samples")
        lines += ["", f"Replanning (encode + plan) took {replan_ms:.0f} ms (median)"
                  + (f", {samples} candidates a plan (planner.budget_ms)." if samples else ".")]
    lines += ["", "| goal | start (cm) | " + " | ".join(f"{n} final (cm)" for n in names) + " | held | touched |",
              "|---|---|" + "---|" * len(names) + "---|---|"]
    first = results[names[0]]
    for index in range(len(goals)):
        finals = " | ".join(f"{results[n][index].final_error_m * 100:.1f}" for n in names)
        held = "yes" if first[index].held(config) else "no"
        touched = "yes" if first[index].touched(config) else "no"
        lines.append(f"| {index} | {first[index].errors_m[0] * 100:.1f} | {finals} | {held} | {touched} |")
    lines += ["", "![end-effector error per step](ee_error.png)", "", "Video: `rollouts.gif` (camera | goal; a green frame: the arm held at the goal)."]
    (out / "report.md").write_text("\n".join(lines) + "\n")

    plot_goal_errors(out / "ee_error.png", {name: [e.errors_m for e in results[name]] for name in names},
                     config.success_radius, "end-effector error (cm)")

    video = []
    for episode in first:
        goal_image = goals[episode.goal_index].image
        for frame, holding in zip(episode.frames, episode.holding or [False] * len(episode.frames)):
            video.append(np.concatenate([_mark_holding(_fit(frame, goal_image.shape), holding), goal_image], axis=1))
    if video:
        imageio.mimsave(out / "rollouts.gif", video, duration=0.1, loop=0)
    return metrics


def plot_goal_errors(path: Path, errors_m: dict[str, list[list[float]]], threshold_m: float, label: str) -> None:
    """One panel per goal: each policy's error (cm) per control step, the success threshold dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    goals = len(next(iter(errors_m.values())))
    columns = 5
    rows = int(np.ceil(goals / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.4 * rows), squeeze=False, sharey=True)
    for index, axis in enumerate(axes.flat):
        if index >= goals:
            axis.axis("off")
            continue
        for name, curves in errors_m.items():
            axis.plot(np.array(curves[index]) * 100, label=name)
        axis.axhline(threshold_m * 100, color="k", linestyle="--", linewidth=0.8)
        axis.set_title(f"goal {index}", fontsize=9)
        axis.set_xlabel("control step", fontsize=8)
    axes[0, 0].set_ylabel(label)
    axes[0, 0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def hold_criterion(hold: dict | None) -> str:
    """The controller's arrival criterion in words, from a checkpoint's reach calibration (None: never holds),
    with ``hold_by`` (world_model_node's parameter) added where the run set it."""
    if not hold:
        return "The controller never holds the arm still: the checkpoint has no reach calibration (`jepa-ros calibrate`)."
    radius = hold["success_radius_m"] * 100
    frames = "in the exploration bags" if hold.get("source") == "bags" else "on the simulated arm"
    by_latent = hold.get("hold_by", "latent_and_tool") != "tool"
    latent = (f"the camera frame's latent is within an L1 distance of {hold['hold_below']:.4f} of the goal image's "
              f"(90 % of frames within {radius / 2:.1f} cm of a goal lie below it {frames})") if by_latent else ""
    tool = ""
    if "tool_hold_m" in hold:
        tool = (f"{' and ' if by_latent else ''}the tool's position read from the frame (the checkpoint's state readout, "
                f"then forward kinematics) is within {hold['tool_hold_m'] * 100:.1f} cm of the one read from the goal "
                f"image (read so for {hold['tool_near_held']:.0%} of frames within {radius / 2:.1f} cm and "
                f"{hold['tool_away_held']:.0%} of frames beyond {radius:.0f} cm)")
    tool_resume = f"the tool's beyond {hold['tool_resume_m'] * 100:.1f} cm" if tool else ""
    resume = " or ".join(([f"the latent distance is beyond {hold['resume_above']:.4f}"] if by_latent else [])
                         + ([tool_resume] if tool else []))
    return (f"The controller holds the arm still (`reached` on `~/status`, a green frame in the video) once {latent}"
            f"{tool}, and plans again once {resume}, or after three ticks at rest that no longer meet the hold "
            f"distances.")


def _mark_holding(frame: np.ndarray, holding: bool) -> np.ndarray:
    """A green frame and "holding" on a camera view where the controller held the arm at the goal."""
    if not holding:
        return frame
    marked = frame.copy()
    cv2.rectangle(marked, (1, 1), (marked.shape[1] - 2, marked.shape[0] - 2), (0, 200, 0), 2)
    cv2.putText(marked, "holding", (4, marked.shape[0] - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 200, 0), 1, cv2.LINE_AA)
    return marked


def _fit(frame: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Resize a camera frame to the goal image's size for side-by-side display."""
    if frame.shape == shape:
        return frame
    import cv2

    return cv2.resize(frame, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)


def make_sim(image_size: int, seed: int, robot: str = "jepa_arm") -> ArmSim:
    """The MuJoCo arm of preset ``robot`` the goals are rendered with (same settings as sim_node)."""
    return ArmSim(SimConfig(robot=robot, image_size=image_size, seed=seed))
