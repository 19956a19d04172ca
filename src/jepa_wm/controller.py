"""LatentMPC: the ROS-free model-predictive controller behind world_model_node.

Every control tick: encode the newest camera frame, imagine the rest of the previous command
if the arm is still on its way, plan normalised actions toward the goal latent (CEM or MPPI,
warm-started from the previous plan), turn the first action into a joint-position target
``q + a * action_scale`` (q: the measured positions, or the previous command while it is under
way) and clamp it to the robot's position and velocity limits. Once the frame is within the
checkpoint's calibrated hold distances of the goal (the latent distance and, with a state readout, the
tool's distance read from both latents: :class:`Arrival`), the arm is held where it is (no plan) until the frame drifts past the
resume distance, the arm at rest keeps looking short of the goal, or a new goal arrives. Joint order comes from
names: inputs and commands are in the robot preset's order, the model sees its checkpoint's order.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import torch

from jepa_wm.config import ConfigError, PlannerConfig, RobotConfig, check_joint_names
from jepa_wm.data.episodes import period_mismatch
from jepa_wm.kinematics import ArmKinematics, tool_position
from jepa_wm.models.checkpoint import (
    CheckpointError,
    default_checkpoint,
    explored_joint_range,
    load_checkpoint,
    read_checkpoint_config,
)
from jepa_wm.models.end_effector import compose_pose
from jepa_wm.planning import (
    PlanResult,
    latent_goal_cost,
    make_generator,
    objects_goal_cost,
    plan,
    shift_plan,
)
from jepa_wm.planning.costs import latent_distance
from jepa_wm.runtime import resolve_precision, rollout_factory, rollout_model, samples_within
from jepa_wm.safety import clamp_command, non_finite

# The last command counts as under way while more than this fraction of its move is left. Without
# delay a position servo covers ~80 % of a step within one period; over DDS, where planning takes
# most of the period, the next tick sees ~70 % still to go.
UNDER_WAY_FRACTION = 0.5
# While held, the arm comes to rest within a few periods. A hold can start on a frame taken in passing
# the goal, with the arm carried on by the command under way; once at rest a frame above the hold
# distance says it stopped short of the goal: after this many such ticks in a row it plans again.
SETTLE_TICKS = 3
HOLD_BY = ("latent_and_tool", "tool")  # what says "arrived" (Arrival.of_calibration)
IK_TOLERANCE_M = 0.005  # a planned tool pose further than this from what the joints can reach is warned about


def fewer_samples(planner: PlannerConfig, num_samples: int) -> PlannerConfig:
    """``planner`` with ``num_samples`` candidates; below its own count, at most half of them elites."""
    if num_samples >= planner.num_samples:
        return planner
    return replace(planner, num_samples=num_samples, num_elites=min(planner.num_elites, max(1, num_samples // 2)))


@dataclass(frozen=True)
class Arrival:
    """When the controller holds the arm at its goal, from a checkpoint's reach calibration (`jepa-ros calibrate`).

    The frame's latent distance to the goal must be within ``hold_below``; with a state readout, the tool's
    position read from the frame's latent must also be within ``tool_hold_m`` of the one read from the
    goal image's (the readout, then forward kinematics). Each alone is fooled somewhere: the latent
    distance of a frame 4-5 cm from a goal can be below that of one 1.5 cm away on the other side, and a
    readout that reads the wrist poorly misses a tool 4 cm off. Held, the arm stays held while both stay
    within their resume distances. ``by_latent`` False holds by the tool's distance alone: the latent
    distance is calibrated in the training scene, and a changed scene (light, table, camera) offsets it.
    """

    hold_below: float
    resume_above: float
    tool_hold_m: float | None = None
    tool_resume_m: float | None = None
    by_latent: bool = True

    def __post_init__(self) -> None:
        pairs = [(self.hold_below, self.resume_above)]
        if self.tool_hold_m is not None or self.tool_resume_m is not None:
            pairs.append((self.tool_hold_m, self.tool_resume_m))
        for hold, resume in pairs:
            if hold is None or resume is None or not 0 < hold <= resume:
                raise ConfigError(f"reach distances ({hold}, {resume}): expected 0 < hold_below <= resume_above")
        if not self.by_latent and not self.tool:
            raise ConfigError("an arrival by the tool alone needs the tool's hold and resume distances")

    @property
    def tool(self) -> bool:
        """Whether the tool's distance read from the latents counts too."""
        return self.tool_hold_m is not None

    def within(self, distance: float, tool_distance: float, resume: bool = False) -> bool:
        """Whether a frame at ``distance`` (latent) and ``tool_distance`` (m, read) is within the hold distances
        (``resume``: the resume distances)."""
        latent, tool = (self.resume_above, self.tool_resume_m) if resume else (self.hold_below, self.tool_hold_m)
        return (not self.by_latent or distance <= latent) and (tool is None or tool_distance <= tool)

    @classmethod
    def of_calibration(cls, reach: dict | None, tool: bool, hold_by: str = "latent_and_tool") -> Arrival | None:
        """The criterion of a checkpoint's ``reach`` metadata (None: never hold); the tool's distances where
        ``tool`` (the checkpoint has a state readout and the robot a description) and they were calibrated.
        ``hold_by`` "tool" leaves the latent distance out (refused where the tool's distance is not available)."""
        if hold_by not in HOLD_BY:
            raise ConfigError(f"hold_by={hold_by!r}: expected one of {', '.join(HOLD_BY)}")
        if not reach:
            return None
        latent = (float(reach["hold_below"]), float(reach["resume_above"]))
        calibrated = tool and "tool_hold_m" in reach
        if hold_by == "tool" and not calibrated:
            raise ConfigError("hold_by='tool' needs the tool's distance: a checkpoint with a state readout, calibrated "
                              "with it (`jepa-ros calibrate`), and a robot preset with a description")
        if calibrated:
            return cls(*latent, float(reach["tool_hold_m"]), float(reach["tool_resume_m"]), by_latent=hold_by != "tool")
        return cls(*latent)


class ControlError(ValueError):
    """An input to the controller is unusable (bad image, non-finite or mis-sized joint positions)."""


@dataclass(frozen=True)
class ControlOutput:
    """One control tick: the command to send (None: send nothing, see ``reason``) and how it was made."""

    command: np.ndarray | None  # float64 [J] rad, robot joint order
    reason: str  # why nothing is commanded; '' when a command is given
    energy: float = math.nan  # planner cost of the chosen plan (nan: no plan this tick)
    encode_ms: float = math.nan
    plan_ms: float = math.nan
    # float64 normalised first action: [J] robot joint order, or the 7-D pose delta (end_effector)
    action: np.ndarray | None = None
    # one per joint the safety clamp changed, and a planned tool pose out of reach (end_effector)
    warnings: list[str] = field(default_factory=list)
    reached: bool = False  # the frame is within the reach distance of the goal: the command holds the arm still
    goal_distance: float = math.nan  # latent distance of the frame to the goal (the planner's cost, now)
    # the tool's distance (m) from where the goal image shows it, read from both latents (nan: no readout)
    tool_distance_m: float = math.nan


def to_rgb(image: np.ndarray, what: str = "image") -> np.ndarray:
    """uint8 [H, W, 3] RGB from uint8 RGB, RGBA, mono [H, W] or [H, W, 1]; anything else raises ControlError."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ControlError(f"{what} has dtype {image.dtype}; expected uint8 RGB [H, W, 3]")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        image = np.repeat(image.reshape(image.shape[0], image.shape[1], 1), 3, axis=2)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 8:
        raise ControlError(f"{what} has shape {image.shape}; expected uint8 RGB [H, W, 3] with H, W >= 8")
    return np.ascontiguousarray(image)


def read_image_file(path: str | Path) -> np.ndarray:
    """Load a PNG/JPEG file as uint8 [H, W, 3] RGB; a missing or undecodable file raises ControlError."""
    path = Path(path)
    if not path.is_file():
        raise ControlError(f"goal image file {path} does not exist")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ControlError(f"goal image file {path} could not be decoded; expected a PNG or JPEG image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def match_joints(model_joints: tuple[str, ...], robot: RobotConfig) -> np.ndarray:
    """Index array mapping robot-order vectors to model order; refuses different joint sets, naming both."""
    check_joint_names(model_joints, robot.joint_names, f"robot {robot.name!r}")
    return np.array([robot.joint_names.index(name) for name in model_joints])


def check_joint_range(
    joint_range: tuple[np.ndarray, np.ndarray], joint_names: tuple[str, ...], what: str = "explored joint range"
) -> tuple[np.ndarray, np.ndarray]:
    """(lower [J], upper [J]) as float64, finite and lower <= upper per joint, else ConfigError naming the joint."""
    lower, upper = (np.asarray(values, dtype=np.float64) for values in joint_range)
    if lower.shape != (len(joint_names),) or upper.shape != (len(joint_names),):
        raise ConfigError(
            f"{what} has shapes {list(lower.shape)}, {list(upper.shape)}; expected [{len(joint_names)}] for "
            f"{list(joint_names)}"
        )
    bad = [f"{name} [{low}, {high}]" for name, low, high in zip(joint_names, lower, upper)
           if not (math.isfinite(low) and math.isfinite(high) and low <= high)]
    if bad:
        raise ConfigError(f"{what}: {', '.join(bad)}; expected finite values with lower <= upper")
    return lower, upper


class LatentMPC:
    """Plans toward a goal image with a WorldModel and returns safe joint-position commands."""

    def __init__(
        self,
        model: torch.nn.Module,
        planner: PlannerConfig,
        robot: RobotConfig,
        control_period: float | None = None,
        device: str | torch.device = "cpu",
        explored_range: tuple[np.ndarray, np.ndarray] | None = None,
        arrival: Arrival | None = None,
    ) -> None:
        self.model = model.to(device).eval()
        self.arrival = arrival  # None never holds
        self.holding = False
        self.unsettled_ticks = 0  # ticks in a row the held arm's frame has been above the hold distance
        has_arm = getattr(self.model, "arm", None) is not None  # an arm-appearance model (push checkpoints)
        self.readout = getattr(self.model, "readout", None)  # latent -> the arm's state, where the checkpoint has one
        if planner.goal == "auto":
            planner = replace(planner, goal="objects" if has_arm else "scene")
        self.planner = planner
        # Frames are encoded in float32; rollouts run on a copy of the model in the planner's precision.
        self.precision = resolve_precision(planner.precision, device)
        self.rollout_dtype = getattr(torch, self.precision)
        self.rollout_model = rollout_model(self.model, self.precision)
        self.rollout_fn = rollout_factory(self.rollout_model, planner.rollout_graph)
        self.robot = robot
        self.device = torch.device(device)
        # Velocity clamping assumes one command per period.
        self.control_period = 1.0 / robot.control_rate if control_period is None else float(control_period)
        if not (math.isfinite(self.control_period) and self.control_period > 0):
            raise ConfigError(f"control_period={control_period}: expected a finite time > 0 s")
        self.model_config = model.config
        self.to_model_order = match_joints(self.model_config.joint_names, robot)  # model[i] = robot[idx[i]]
        self.to_robot_order = np.argsort(self.to_model_order)
        self.lower = np.asarray(robot.joint_lower, dtype=np.float64)
        self.upper = np.asarray(robot.joint_upper, dtype=np.float64)
        self.velocity_limits = np.asarray(robot.velocity_limits, dtype=np.float64)
        # The model has never seen poses outside the joint range of its training data: planning there
        # follows its errors, so commands stay inside it (robot order, rad), approached at the velocity limit.
        self.explored_range = None if explored_range is None else check_joint_range(explored_range, robot.joint_names)
        # End-effector actions (V-JEPA 2-AC): the state is the tool's pose from forward kinematics and
        # each planned pose is reached by inverse kinematics on the robot's description.
        self.kinematics: ArmKinematics | None = None
        if self.model_config.action_space != "joint":
            if self.model_config.action_space == "planar" and not self.model_config.tool_pose:
                raise ConfigError("a planar checkpoint without world_model.tool_pose: the tool's height and orientation "
                                  "are unknown")
            self.kinematics = ArmKinematics.of_robot(robot)
        # Joint models measure arrival by the tool, where the robot's description gives its kinematics.
        self.tool_kinematics = self.kinematics
        if arrival is not None and arrival.tool:
            if self.readout is None:
                raise ConfigError("an arrival criterion by the tool's distance needs a checkpoint with a state readout "
                                  "(world_model.state_readout; `jepa-ros train` fits one)")
            if self.tool_kinematics is None:
                self.tool_kinematics = ArmKinematics.of_robot(robot)
        if planner.goal == "objects" and not has_arm:
            raise ConfigError("planner.goal 'objects' needs a checkpoint with an arm-appearance model "
                              "(world_model.arm_features > 0; `jepa-ros train` fits one for planar models)")
        self.generator = make_generator(planner, self.device)
        self.goal_latent: torch.Tensor | None = None  # [N, D]
        self.goal_world: torch.Tensor | None = None  # [N, D] planner.goal objects: the goal latent without the arm
        self.goal_tool: np.ndarray | None = None  # [3] or [2] m: the tool where the goal image shows it (read)
        self.goal_shape: tuple[int, int] | None = None  # (H, W) of the goal image as given
        self.warm_start: torch.Tensor | None = None  # [H, A] shifted previous plan
        self.last_plan: PlanResult | None = None
        # (last command [J], measured positions when it was sent [J]), robot order; one attribute, so
        # a reset() from another thread (the node's ~/enable) is seen whole or not at all
        self.pending: tuple[np.ndarray, np.ndarray] | None = None
        self.budget_overrun_ms = 0.0  # > 0: even the fewest candidates replan this much over planner.budget_ms
        if planner.budget_ms > 0:
            self._fit_to_budget()
        if planner.rollout_graph == "torchscript":
            self._warm_up()

    @classmethod
    def from_checkpoint(
        cls,
        folder: str | Path | None,
        planner: PlannerConfig,
        robot: RobotConfig,
        control_period: float | None = None,
        device: str | torch.device = "cpu",
        stay_in_explored_range: bool = True,
        hold_at_goal: bool = True,
        hold_by: str = "latent_and_tool",
    ) -> LatentMPC:
        """The controller of a checkpoint folder (None: the embedded default) for ``robot``.

        The checkpoint's joints are checked against the robot's first (the refusal names both sets),
        then its explored joint range is read to bound the commands, and its calibrated reach
        distances (``jepa-ros calibrate``) to hold the arm at the goal (``hold_at_goal``; ``hold_by``
        as in :meth:`Arrival.of_calibration`).
        """
        folder = default_checkpoint() if folder is None else Path(folder)
        if not folder.is_dir():
            raise CheckpointError(f"checkpoint folder {folder} does not exist; expected a folder written by save_checkpoint")
        model = load_checkpoint(folder, device)
        match_joints(model.config.joint_names, robot)
        period = 1.0 / robot.control_rate if control_period is None else control_period
        metadata = read_checkpoint_config(folder)[1]
        trained = metadata.get("period_s")  # None in checkpoints made before it was kept
        mismatch = period_mismatch(trained, period)
        if mismatch:
            raise ConfigError(f"checkpoint {folder}: the controller would run at {mismatch}; set control_rate to "
                              f"{1 / trained:.2f} Hz")
        explored = explored_joint_range(folder, robot.joint_names) if stay_in_explored_range else None
        reach = metadata.get("reach") if hold_at_goal else None
        tool = getattr(model, "readout", None) is not None and bool(robot.description)
        return cls(model, planner, robot, control_period, device, explored, Arrival.of_calibration(reach, tool, hold_by))

    @property
    def has_goal(self) -> bool:
        """Whether a goal image has been set."""
        return self.goal_latent is not None

    def encode(self, image: np.ndarray, what: str = "frame") -> torch.Tensor:
        """uint8 RGB image [H, W, 3] -> latent [N, D]; the model resizes it to its image size as in training."""
        rgb = to_rgb(image, what)
        frames = torch.from_numpy(rgb).unsqueeze(0).to(self.device)  # [1, H, W, 3]
        return self.model.encode(frames)[0]

    def set_goal(self, image: np.ndarray) -> None:
        """Set the goal from an image (RGB, RGBA or mono uint8); the plan restarts from scratch."""
        rgb = to_rgb(image, "goal image")
        self.goal_latent = self.encode(rgb, "goal image")
        if self.readout is not None:
            goal_state = self.readout(self.goal_latent)  # [A]: where the arm is in the goal image
            if self.planner.goal == "objects":  # the goal's world part: the arm taken out where it is in the image
                self.goal_world = self.model.arm.without_arm(self.goal_latent, goal_state)
            if self.tool_kinematics is not None:
                self.goal_tool = self.tool_position(goal_state)
        self.goal_shape = rgb.shape[:2]
        self.warm_start, self.holding = None, False

    def clear_goal(self) -> None:
        """Forget the goal: no more commands until a new one is set."""
        self.goal_latent, self.goal_world, self.goal_tool, self.goal_shape = None, None, None, None
        self.warm_start, self.pending = None, None

    def reset(self) -> None:
        """Drop the warm start and the last command (commanding paused, or a command was not sent)."""
        self.warm_start, self.pending = None, None

    def joint_positions(self, joint_positions: np.ndarray) -> np.ndarray:
        """Validate measured joint positions (robot order): float64 [J], finite, else ControlError."""
        values = np.asarray(joint_positions, dtype=np.float64)
        names = self.robot.joint_names
        if values.shape != (len(names),):
            raise ControlError(f"joint positions have shape {values.shape}; expected [{len(names)}] for {list(names)}")
        bad = non_finite(values, names)
        if bad:
            raise ControlError(f"non-finite joint positions: {', '.join(bad)}")
        return values

    def step(
        self, frame: np.ndarray, joint_positions: np.ndarray, frame_joint_positions: np.ndarray | None = None
    ) -> ControlOutput:
        """One control tick from the newest frame and joint positions (robot order, rad).

        ``frame_joint_positions`` are the joint positions when the frame was taken (a camera runs
        slower than the joint states: its newest frame can be tens of ms older, while the arm moves).
        The model sees the frame with them, as in training; the command is clamped against the
        newest ``joint_positions``. None: the frame is as new as ``joint_positions``.
        """
        current = self.joint_positions(joint_positions)
        seen = current if frame_joint_positions is None else self.joint_positions(frame_joint_positions)
        rgb = to_rgb(frame, "camera frame")
        if self.goal_latent is None:
            return ControlOutput(command=None, reason="no goal image set")
        self._check_aspect(rgb.shape[:2])
        started = time.perf_counter()
        latent = self.encode(rgb)  # [N, D] float32
        encoded = time.perf_counter()
        distance, tool_distance = self.goal_distance(latent, seen), self.tool_distance(latent)
        latent = latent.to(self.rollout_dtype)
        if self.arrival is not None:
            arrived = self.arrival.within(distance, tool_distance)
            # counted only while held, so it starts from 0 at every new hold (and after set_goal)
            self.unsettled_ticks = self.unsettled_ticks + 1 if self.holding and not arrived else 0
            still = self.arrival.within(distance, tool_distance, resume=True) if self.holding else arrived
            self.holding = still and self.unsettled_ticks < SETTLE_TICKS
        if self.holding:  # arrived: hold the arm where it is, within its limits, until pushed away or a new goal
            clamped = clamp_command(current, current, self.lower, self.upper, self.velocity_limits,
                                    self.control_period, self.robot.joint_names, self.explored_range)
            self.pending, self.warm_start = None, None
            return ControlOutput(command=clamped.command, reason="", encode_ms=(encoded - started) * 1e3,
                                 action=np.zeros(len(current)), warnings=list(clamped.warnings), reached=True,
                                 goal_distance=distance, tool_distance_m=tool_distance)
        latent, start = self.imagine_pending(latent, seen)
        state = self.model_state(start)  # end-effector spaces: forward kinematics, once a tick
        rollout = self.rollout_fn(latent, state)
        if self.planner.goal == "objects":
            cost = objects_goal_cost(self.goal_world, self.planner, self.model.arm, state, self.model.integrate)
        else:
            cost = latent_goal_cost(self.goal_latent, self.planner)
        result = plan(rollout, cost, self.planner, self.model_config.action_dim, self.warm_start, self.generator)
        planned = time.perf_counter()
        self.warm_start, self.last_plan = shift_plan(result.actions), result
        action, target, unreachable = self.joint_target(start, state, result.actions[0].double().cpu().numpy(), current)
        clamped = clamp_command(
            target, current, self.lower, self.upper, self.velocity_limits, self.control_period,
            self.robot.joint_names, self.explored_range,
        )
        self.pending = (clamped.command, current)
        return ControlOutput(
            command=clamped.command,
            reason="",
            energy=result.energy,
            encode_ms=(encoded - started) * 1e3,
            plan_ms=(planned - encoded) * 1e3,
            action=action,
            warnings=[*clamped.warnings, *([unreachable] if unreachable else [])],
            goal_distance=distance,
            tool_distance_m=tool_distance,
        )

    def goal_distance(self, latent: torch.Tensor, joint_positions: np.ndarray) -> float:
        """Latent distance [N, D] -> float of a frame to the goal, as the planner measures it (planner.goal);
        ``joint_positions`` (robot order) are the arm's when the frame was taken."""
        assert self.goal_latent is not None
        if self.planner.goal == "objects":
            world = self.model.arm.without_arm(latent, self.model_state(joint_positions))
            return float(latent_distance(world[None, None], self.goal_world, self.planner.cost)[0, 0])
        return float(latent_distance(latent[None, None], self.goal_latent, self.planner.cost)[0, 0])

    def tool_distance(self, latent: torch.Tensor) -> float:
        """Metres between the tool read from a frame's latent [N, D] and from the goal's (nan: no readout).

        Both are read the same way, so an error the readout makes near the goal pose shows in both and
        largely cancels; the measured joints would carry none of the goal's error and so not cancel it."""
        if self.goal_tool is None:
            return math.nan
        return float(np.linalg.norm(self.tool_position(self.readout(latent)) - self.goal_tool))

    def tool_position(self, state: torch.Tensor) -> np.ndarray:
        """The tool's position (m, base frame) at a model state [A]: forward kinematics of joint positions,
        or the pose's x, y, z (end_effector) or x, y (planar)."""
        space, state = self.model_config.action_space, state.double().cpu().numpy()
        return tool_position(state[self.to_robot_order] if space == "joint" else state, space, self.tool_kinematics)

    def imagine_pending(self, latent: torch.Tensor, current: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
        """Where the last command leads: (latent [N, D], joint positions [J] robot order) to plan from.

        Planning takes most of a control period, so over DDS the frame and joint state of a tick
        show the arm barely started on the previous command. Planning from them and adding the
        action to the measured positions would drop most of that command. The model imagines the
        rest of the move instead (the remaining displacement is the action it was trained on),
        and the new action is added to the last command. With no command under way this is
        (latent, current) unchanged.
        """
        pending = self.pending
        if pending is None:
            return latent, current
        command, sent_from = pending
        remaining = command - current
        if np.abs(remaining).max() <= UNDER_WAY_FRACTION * np.abs(command - sent_from).max():
            return latent, current
        bound = self.planner.action_bound
        state, commanded = self.model_state(current), self.model_state(command)
        action = self.model.actions_between(torch.stack([state, commanded]))[0].clamp(-bound, bound)  # normalised
        imagined = self.rollout_fn(latent, state)(action.view(1, 1, -1))[0, 0]
        return imagined, command  # imagined latent [N, D]

    def model_state(self, joint_positions: np.ndarray) -> torch.Tensor:
        """The model's state [A] at joint positions [J] (robot order): the joints in the checkpoint's
        order, or from forward kinematics the end effector's pose, gripper open (end_effector), or the
        tool's x, y (planar)."""
        if self.kinematics is None:
            return self._in_model_order(joint_positions)
        pose = self.kinematics.pose(joint_positions)
        state = pose[:2] if self.model_config.action_space == "planar" else np.append(pose, 0.0)
        return torch.as_tensor(state, dtype=torch.float32, device=self.device)

    def joint_target(self, start: np.ndarray, state: torch.Tensor, action: np.ndarray,
                     current: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
        """(action in robot order or pose order, joint target [J] robot order, a warning or "") of a
        normalised action planned from joint positions ``start`` (the model's ``state`` there); the arm
        is at ``current``.

        Joint actions add to the joints; an end-effector action moves the tool's pose, and inverse
        kinematics finds the joints (within the limits and the explored range) that reach it. The
        move from ``current`` there is shortened as a whole to the velocity limits, so the tool keeps
        its direction (clamping each joint on its own would bend its path).
        """
        scale = self.model_config.action_scale
        if self.kinematics is None:
            action = action[self.to_robot_order]
            return action, start + action * scale, ""
        state = state.double().cpu()
        if self.model_config.action_space == "planar":  # the tool's new x, y at its held height and orientation
            pose = np.concatenate([state.numpy() + action * scale, self.model_config.tool_pose])
        else:
            pose = compose_pose(state, torch.as_tensor(action * scale, dtype=torch.float64)).numpy()[:6]
        lower, upper = self.lower, self.upper
        if self.explored_range is not None:
            lower, upper = np.maximum(lower, self.explored_range[0]), np.minimum(upper, self.explored_range[1])
        solved = self.kinematics.reach(pose, start, lower, upper, position_first=self.model_config.action_space == "planar")
        warning = ""
        if solved.position_error_m > IK_TOLERANCE_M:
            warning = (f"the planned tool pose is {solved.position_error_m * 100:.1f} cm out of reach within the joint "
                       f"limits: commanding the nearest")
        move = solved.joint_positions - current
        overshoot = np.max(np.abs(move) / (self.velocity_limits * self.control_period))
        return action, current + move / max(1.0, overshoot), warning

    def replan_ms(self, num_samples: int, repeats: int = 3) -> float:
        """Milliseconds of one warm-started replanning (encode + plan) with ``num_samples`` candidates on this
        machine: the fastest of ``repeats``, after the two calls that trace and optimise a new graph (a node
        starts beside others that are starting too; a slower median there would not last).

        It plans from a grey frame toward itself at the arm's home: the time does not depend on what the
        images show. Its own random numbers: the controller's goal, plan and generator are left as they were.
        """
        planner = fewer_samples(self.planner, num_samples)
        size = self.model.config.encoder.image_size
        frame = np.full((size, size, 3), 128, dtype=np.uint8)
        state = self.model_state(np.clip(np.zeros(len(self.lower)), self.lower, self.upper))
        goal = self.encode(frame)
        if planner.goal == "objects":
            arm = self.model.arm
            cost = objects_goal_cost(arm.without_arm(goal, state), planner, arm, state, self.model.integrate)
        else:
            cost = latent_goal_cost(goal, planner)
        generator, warm_start, times = make_generator(planner, self.device), None, []
        for _ in range(repeats + 2):
            started = time.perf_counter()
            latent = self.encode(frame).to(self.rollout_dtype)
            result = plan(self.rollout_fn(latent, state), cost, planner, self.model_config.action_dim, warm_start,
                          generator)
            times.append((time.perf_counter() - started) * 1e3)
            warm_start = shift_plan(result.actions)
        return min(times[2:])

    def _fit_to_budget(self) -> None:
        """Plan with as many candidates as replan within planner.budget_ms here (runtime.samples_within)."""
        budget = self.planner.budget_ms
        samples, took = samples_within(budget, self.replan_ms, self.planner.num_samples)
        self.planner = fewer_samples(self.planner, samples)
        self.budget_overrun_ms = max(0.0, took - budget)

    def _warm_up(self) -> None:
        """Trace and optimise the rollout graphs of a plan and of an imagined command before the first tick.

        The first call of a shape traces it (~0.4 s for the default model) and the second one
        profiles it; only then does a plan run at full speed.
        """
        cfg, dtype = self.model_config, self.rollout_dtype
        latent = torch.zeros(self.model.num_tokens, self.model.latent_dim, dtype=dtype, device=self.device)
        joints = self.model_state(np.clip(np.zeros(len(self.lower)), self.lower, self.upper))
        for samples, horizon in ((self.planner.num_samples, self.planner.horizon), (1, 1)):
            actions = torch.zeros(samples, horizon, cfg.action_dim, device=self.device)
            for _ in range(2):
                self.rollout_fn(latent, joints)(actions)

    def _in_model_order(self, positions: np.ndarray) -> torch.Tensor:
        """A per-joint vector in robot order [J] -> float32 tensor in the checkpoint's joint order."""
        return torch.as_tensor(positions[self.to_model_order], dtype=torch.float32, device=self.device)

    def _check_aspect(self, frame_shape: tuple[int, int]) -> None:
        """Goal and frames are both squashed to a square: different aspect ratios would not compare."""
        assert self.goal_shape is not None
        goal_ratio = self.goal_shape[1] / self.goal_shape[0]
        frame_ratio = frame_shape[1] / frame_shape[0]
        if abs(goal_ratio / frame_ratio - 1.0) > 0.02:
            raise ControlError(
                f"goal image is {self.goal_shape[1]}x{self.goal_shape[0]} but camera frames are "
                f"{frame_shape[1]}x{frame_shape[0]}; expected the same aspect ratio (set a goal from this camera)"
            )
