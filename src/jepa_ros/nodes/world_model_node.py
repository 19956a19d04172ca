"""world_model_node: camera + joint states in, latent-MPC joint commands out.

Subscribes the camera (``camera/image_raw``, or ``<camera>/compressed`` with
``image_transport:=compressed``) and ``joint_states`` with SensorDataQoS, and ``~/goal_image``.
A timer at ``control_rate`` wakes the node's control thread, which takes the newest frame and
joint state (each younger than ``max_staleness``), runs jepa_wm.controller.LatentMPC and
publishes the clamped target on the robot's command interface (Float64MultiArray for a forward
position controller, JointTrajectory for a joint trajectory controller). Serves ``~/enable``
(SetBool) and ``~/set_goal_from_current`` (Trigger); publishes ``~/status`` (DiagnosticArray)
every tick. Subscription callbacks only store the latest message.

Planning runs on the control thread, not in an executor callback: the executor (one thread)
stays free for ``~/enable`` and the sensor inputs however long a plan takes, and no
multi-threaded executor is needed. rclpy's MultiThreadedExecutor busy-waits under
``use_sim_time`` (a full core on the 2-core dev CPU, which slowed every plan by ~1.6x).
"""

from __future__ import annotations

import collections
import math
import sys
import threading
import time
import traceback
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory

from jepa_ros import conversions as conv
from jepa_ros.nodes import guarded, spin_node
from jepa_ros.params import load_config
from jepa_wm import images, topics
from jepa_wm.config import ConfigError, PlannerConfig, RobotConfig, load_robot
from jepa_wm.controller import HOLD_BY, ControlError, LatentMPC, read_image_file
from jepa_wm.models import CheckpointError
from jepa_wm.models.checkpoint import default_checkpoint
from jepa_wm.planning import PlanningError
from jepa_wm.runtime import check_device, keep_freed_memory
from jepa_wm.safety import CommandError

JOINT_HISTORY = 128  # joint states kept for matching to frames: > 1 s at 100 Hz
JOINT_MATCH_TOLERANCE_NS = 50_000_000  # a joint state further than this from the frame's stamp is no match
REPLAN_WINDOW = 25  # recent replanning times (5 s at 5 Hz) whose median is compared with the control period
MIN_REPLANS = 5  # replans before judging: the first ones after start-up or a new goal run slower
CLOCK_TIMEOUT_S = 2.0  # wall seconds without simulated time advancing (use_sim_time) before ~/status says so
LEVELS = {"commanding": DiagnosticStatus.OK, "reached": DiagnosticStatus.OK, "disabled": DiagnosticStatus.OK,
          "no_goal": DiagnosticStatus.OK,
          "waiting": DiagnosticStatus.WARN, "stale": DiagnosticStatus.WARN, "error": DiagnosticStatus.ERROR}


@dataclass(frozen=True)
class WorldModelNodeConfig:
    """Parameters of world_model_node; defaults of the robot-specific ones come from the robot preset."""

    checkpoint: str = ""  # checkpoint folder; empty: the embedded checkpoints/default
    device: str = "cpu"  # torch device of the model, e.g. cpu or cuda:0
    control_rate: float = 5.0  # Hz of the control timer (robot preset default)
    max_staleness: float = 0.5  # s; an older camera frame or joint state stops commanding
    command_interface: Literal["position", "trajectory"] = "position"  # robot preset default
    command_topic: str = topics.POSITION_COMMANDS  # robot preset default for its command_interface
    camera_topic: str = topics.CAMERA  # robot preset default
    joint_states_topic: str = topics.JOINT_STATES  # robot preset default
    image_transport: Literal["raw", "compressed"] = "raw"  # compressed subscribes <camera_topic>/compressed
    start_enabled: bool = True  # robot preset default: true in simulation, false on real robots
    goal_image_file: str = ""  # PNG/JPEG goal set at start-up; empty: wait for ~/goal_image
    torch_threads: int = 1  # torch intra-op threads; 0 keeps torch's default (one per core)
    stay_in_explored_range: bool = True  # command only joint positions the training data covered
    hold_at_goal: bool = True  # hold the arm still once the camera sees the goal (the checkpoint's calibrated reach)
    # what says "arrived": the latent distance and the tool read from the camera, or the tool alone (holds
    # in a scene that differs from the training scene, whose latent distances are offset)
    hold_by: Literal["latent_and_tool", "tool"] = "latent_and_tool"
    gil_switch_interval: float = 0.005  # s; Python's thread switch interval in this process (0.005: Python's)
    max_image_pixels: int = images.MAX_IMAGE_PIXELS  # frames and goals declaring more are refused before decoding

    def __post_init__(self) -> None:
        if not (math.isfinite(self.control_rate) and self.control_rate > 0):
            raise ConfigError(f"world_model_node.control_rate={self.control_rate}: expected > 0 Hz")
        if not (math.isfinite(self.max_staleness) and self.max_staleness > 0):
            raise ConfigError(f"world_model_node.max_staleness={self.max_staleness}: expected > 0 s")
        if not (math.isfinite(self.gil_switch_interval) and 0 < self.gil_switch_interval <= 0.1):
            raise ConfigError(f"world_model_node.gil_switch_interval={self.gil_switch_interval}: expected (0, 0.1] s")
        if self.torch_threads < 0:
            raise ConfigError(f"world_model_node.torch_threads={self.torch_threads}: expected >= 0 (0 = torch default)")
        if self.hold_by not in HOLD_BY:
            raise ConfigError(f"world_model_node.hold_by={self.hold_by!r}: expected one of {', '.join(HOLD_BY)}")
        if self.max_image_pixels < 64:
            raise ConfigError(f"world_model_node.max_image_pixels={self.max_image_pixels}: expected >= 64")
        check_device(self.device, "world_model_node.device")


class WorldModelNode(Node):
    """Thin ROS wrapper around LatentMPC; all control logic lives in jepa_wm.controller."""

    def __init__(self, **node_kwargs) -> None:
        super().__init__("world_model_node", **node_kwargs)  # e.g. context, parameter_overrides
        self.robot, self.config, self.planner = self._read_parameters()
        if self.config.torch_threads:
            # Small batched ops gain little from threads and lose much when the cores are shared with
            # sim_node and other nodes: threads then wait on each other.
            torch.set_num_threads(self.config.torch_threads)
        # Eager planning is many small torch ops, each releasing and retaking the GIL; with Python's
        # 5 ms switch interval every retake can wait behind the executor's thread, so eager rollouts want
        # a short interval (~0.0002 s). TorchScript rollouts (the node's default) run without the GIL,
        # and there a short interval only adds thread switches: they keep Python's 0.005 s.
        sys.setswitchinterval(self.config.gil_switch_interval)
        keep_freed_memory()  # planning then faults no fresh pages: ~15 % of a plan's time on a 2-core CPU
        folder = Path(self.config.checkpoint) if self.config.checkpoint else default_checkpoint()
        period = 1.0 / self.config.control_rate
        self.controller = LatentMPC.from_checkpoint(folder, self.planner, self.robot, period, self.config.device,
                                                    self.config.stay_in_explored_range, self.config.hold_at_goal,
                                                    self.config.hold_by)
        self._log_budget()
        if self.config.goal_image_file:
            self.controller.set_goal(read_image_file(self.config.goal_image_file))
        self.enabled = self.config.start_enabled
        self.state, self.reason = "", ""
        self._frame: tuple[Image | CompressedImage, int] | None = None  # (message, receive time ns)
        self._joints: tuple[JointState, int] | None = None
        # recent joint states: the one stamped nearest the frame is what the camera saw
        self._joint_history: collections.deque[JointState] = collections.deque(maxlen=JOINT_HISTORY)
        self._goal_msg: Image | None = None
        self._replan_ms: collections.deque[float] = collections.deque(maxlen=REPLAN_WINDOW)
        self.overrunning = False  # median of the recent replanning times (at least MIN_REPLANS) > control period

        # Executor callbacks only store inputs and answer services; the control thread plans. A tick
        # that overruns its period never starves ~/enable (a safety switch) or the sensor inputs.
        # The lock lets one of the tick and ~/set_goal_from_current touch the controller at a time.
        self._controller_lock = threading.Lock()
        camera_type, camera_topic = Image, self.config.camera_topic
        if self.config.image_transport == "compressed":
            camera_type, camera_topic = CompressedImage, f"{camera_topic}/compressed"  # image_transport's naming
        sensor_qos = qos_profile_sensor_data
        # no callback may end the node: each one logs what it raised and drops that input
        self.create_subscription(camera_type, camera_topic, guarded(self, self._on_frame), sensor_qos)
        self.create_subscription(JointState, self.config.joint_states_topic, guarded(self, self._on_joints), sensor_qos)
        self.create_subscription(Image, "~/goal_image", guarded(self, self._on_goal), 1)
        self.create_service(SetBool, "~/enable", guarded(self, self._on_enable))
        self.create_service(Trigger, "~/set_goal_from_current", guarded(self, self._on_set_goal_from_current))
        command_type = JointTrajectory if self.config.command_interface == "trajectory" else Float64MultiArray
        self.command_pub = self.create_publisher(command_type, self.config.command_topic, 10)
        self.status_pub = self.create_publisher(DiagnosticArray, "~/status", 10)
        # The timer (node clock: simulated time under use_sim_time) only wakes the control thread;
        # ticks it misses while a plan overruns fold into one.
        self._tick_due, self._stopping = threading.Event(), threading.Event()
        self.create_timer(period, guarded(self, self._tick_due.set))
        # Under use_sim_time the timer above waits for /clock: a steady-clock watch says so when none comes.
        self._sim_ns, self._sim_advanced_at = self._now_ns(), time.monotonic()
        self.create_timer(CLOCK_TIMEOUT_S / 2, guarded(self, self._watch_clock), clock=Clock(clock_type=ClockType.STEADY_TIME))
        self._control_thread = threading.Thread(target=self._control_loop, name="control", daemon=True)
        self._control_thread.start()
        self.get_logger().info(
            f"checkpoint {folder} on robot {self.robot.name!r} {list(self.robot.joint_names)}: "
            f"{self.planner.method} ({self.controller.precision} rollouts) at {self.config.control_rate} Hz, "
            f"{self.config.command_interface} commands on "
            f"{self.config.command_topic}, camera {camera_topic}, "
            f"{'enabled' if self.enabled else 'disabled (call ~/enable)'}"
        )

    def _log_budget(self) -> None:
        """Say how many candidates planner.budget_ms left, and whether even the fewest overrun it."""
        asked, planner = self.planner.num_samples, self.controller.planner
        if self.planner.budget_ms <= 0:
            return
        if self.controller.budget_overrun_ms > 0:
            took = self.planner.budget_ms + self.controller.budget_overrun_ms
            self.get_logger().warning(
                f"replanning takes {took:.0f} ms here with {planner.num_samples} candidates, over "
                f"planner.budget_ms={self.planner.budget_ms:g}: lower planner.iterations ({planner.iterations}) or "
                f"planner.horizon ({planner.horizon}), or raise the budget")
        elif planner.num_samples < asked:
            self.get_logger().info(f"planning {planner.num_samples} candidates of planner.num_samples={asked}: "
                                   f"more replan over planner.budget_ms={self.planner.budget_ms:g} on this machine")

    def _read_parameters(self) -> tuple[RobotConfig, WorldModelNodeConfig, PlannerConfig]:
        """Robot preset first: it supplies the defaults of the robot-specific parameters."""
        description = "robot preset name (config/robots/<name>.yaml) or YAML path"
        self.declare_parameter("robot", "jepa_arm", ParameterDescriptor(description=description))
        robot = load_robot(self.get_parameter("robot").value)
        preset = WorldModelNodeConfig(
            control_rate=robot.control_rate,
            command_interface=robot.command_interface,
            command_topic=robot.command_topic,
            camera_topic=robot.camera_topic,
            joint_states_topic=robot.joint_states_topic,
            start_enabled=robot.simulated,
        )
        config = load_config(self, WorldModelNodeConfig, defaults=preset)
        if config.command_interface != robot.command_interface and config.command_topic == robot.command_topic:
            # The preset's topic belongs to its own interface; use the other controller's default name.
            topic = topics.TRAJECTORY_COMMANDS if config.command_interface == "trajectory" else topics.POSITION_COMMANDS
            config = replace(config, command_topic=topic)
        return robot, config, load_config(self, PlannerConfig, "planner.")

    # -- callbacks only store the latest message ----------------------------------------------

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _on_frame(self, msg: Image | CompressedImage) -> None:
        self._frame = (msg, self._now_ns())

    def _on_joints(self, msg: JointState) -> None:
        self._joints = (msg, self._now_ns())
        self._joint_history.append(msg)

    def _on_goal(self, msg: Image) -> None:
        self._goal_msg = msg  # encoded by the next tick, on the control thread

    # -- services: answered by the executor thread while the control thread plans ---------------

    def _on_enable(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        self.enabled = bool(request.data)
        self.controller.reset()  # the arm may have moved while commanding was paused
        response.success, response.message = True, f"commanding {'enabled' if self.enabled else 'disabled'}"
        self.get_logger().info(response.message)
        return response

    def _on_set_goal_from_current(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        frame = self._frame  # one snapshot: the callback may replace it meanwhile
        age = self._age(frame)
        try:
            if age > self.config.max_staleness:
                limit = self.config.max_staleness
                raise ControlError(f"no camera frame younger than max_staleness={limit} s (newest: {age:.2f} s old)")
            rgb = self._frame_rgb(frame[0])
            with self._controller_lock:
                self.controller.set_goal(rgb)
            response.success, response.message = True, "goal set from the current camera frame"
        except (ControlError, conv.ConversionError) as err:
            response.success, response.message = False, f"goal not set: {err}"
        self.get_logger().info(response.message)
        return response

    def _watch_clock(self) -> None:
        """Publish a 'waiting' status while use_sim_time holds the control timer and no /clock arrives."""
        now = self._now_ns()
        if now != self._sim_ns or not self.get_parameter("use_sim_time").value:
            self._sim_ns, self._sim_advanced_at = now, time.monotonic()
            return
        still = time.monotonic() - self._sim_advanced_at
        if still < CLOCK_TIMEOUT_S:
            return
        reason = (f"simulated time has not advanced for {still:.1f} s: use_sim_time is true and nothing publishes "
                  f"/clock (ros2 bag play --clock, a simulator)")
        if self.state != "waiting" or not self.reason.startswith("simulated time"):
            self.get_logger().warning(f"waiting: {reason}")
        self.state, self.reason = "waiting", reason
        self._publish_status(math.nan, math.nan, math.nan, self._age(self._frame), self._age(self._joints))

    # -- the control tick ------------------------------------------------------------------------

    def _age(self, stamped: tuple[object, int] | None) -> float:
        return math.inf if stamped is None else (self._now_ns() - stamped[1]) * 1e-9

    def _frame_rgb(self, msg: Image | CompressedImage) -> np.ndarray:
        limit = self.config.max_image_pixels
        if isinstance(msg, CompressedImage):
            return conv.compressed_to_rgb(msg, limit)
        return conv.image_to_rgb(msg, limit)

    def _control_loop(self) -> None:
        while True:
            self._tick_due.wait()
            self._tick_due.clear()
            if self._stopping.is_set():
                return
            try:
                self._tick()
            except Exception:
                if not self.context.ok():  # SIGINT shut the context down during this tick: nothing to report
                    return
                self.get_logger().error(f"control tick failed:\n{traceback.format_exc()}", throttle_duration_sec=10.0)

    def destroy_node(self) -> None:
        """Stop the control thread (after the tick in flight), then destroy the node."""
        if hasattr(self, "_control_thread"):
            self._stopping.set()
            self._tick_due.set()
            self._control_thread.join(timeout=10.0)
        super().destroy_node()

    def _tick(self) -> None:
        with self._controller_lock:
            self._tick_locked()

    def _tick_locked(self) -> None:
        # one snapshot of the inputs: the executor thread replaces them while this tick runs
        frame, joints_in = self._frame, self._joints
        image_age, joint_age = self._age(frame), self._age(joints_in)
        energy = encode_ms = plan_ms = goal_distance = tool_distance = math.nan
        goal_msg, self._goal_msg = self._goal_msg, None
        try:
            if goal_msg is not None:
                self.controller.set_goal(conv.image_to_rgb(goal_msg, self.config.max_image_pixels))
                self.get_logger().info(f"new goal image {goal_msg.width}x{goal_msg.height} ({goal_msg.encoding})")
            state, reason = self._blocked(image_age, joint_age)
            if not state:
                joints = conv.joint_state_positions(joints_in[0], self.robot.joint_names)
                seen = conv.joint_state_positions(self._joint_state_at_frame(frame[0], joints_in[0]), self.robot.joint_names)
                out = self.controller.step(self._frame_rgb(frame[0]), joints, seen)
                energy, encode_ms, plan_ms = out.energy, out.encode_ms, out.encode_ms + out.plan_ms
                goal_distance, tool_distance = out.goal_distance, out.tool_distance_m
                if math.isfinite(plan_ms):
                    self._note_replan_time(plan_ms)
                if out.command is None:
                    state, reason = "no_goal", out.reason
                else:
                    # again at publish time: ~/enable may have turned commanding off, or the inputs the
                    # command was planned from aged past max_staleness, while this tick was planning
                    state, reason = self._blocked(self._age(frame), self._age(joints_in), planned=True)
                if state:
                    self.controller.reset()  # the planned command is not sent: nothing is under way
                else:
                    self._publish_command(out.command)
                    state, reason = ("reached", "") if out.reached else ("commanding", "")
                    for warning in out.warnings:
                        self.get_logger().warning(f"safety clamp: {warning}", throttle_duration_sec=2.0)
        except (ControlError, CommandError, PlanningError, conv.ConversionError) as err:
            state, reason = "error", str(err)
        except Exception as err:  # a bug: stop commanding and say so, but keep ~/enable and ~/status alive
            self.get_logger().error(f"control tick failed:\n{traceback.format_exc()}", throttle_duration_sec=10.0)
            state, reason = "error", f"internal error {type(err).__name__}: {err} (traceback in the log)"
        if state not in ("commanding", "reached") and self.state in ("commanding", "reached"):
            self.controller.reset()  # resume from a fresh plan once inputs are good again
        if (state, reason) != (self.state, self.reason):
            text = f"{state}" + (f": {reason}" if reason else "")
            # rclpy ties one severity to each call site, hence two calls
            if LEVELS[state] == DiagnosticStatus.OK:
                self.get_logger().info(text)
            else:
                self.get_logger().warning(text)
        self.state, self.reason = state, reason
        self._publish_status(energy, encode_ms, plan_ms, image_age, joint_age, goal_distance, tool_distance)

    def _note_replan_time(self, plan_ms: float) -> None:
        """Record one replanning time; warn while planning cannot keep up with control_rate.

        Commands then land later than the model assumes and the arm reaches goals less often: a
        slower CPU than the defaults were sized for needs fewer candidates or a lower rate.
        """
        self._replan_ms.append(plan_ms)
        median, period_ms = float(np.median(self._replan_ms)), 1e3 / self.config.control_rate
        self.overrunning = len(self._replan_ms) >= MIN_REPLANS and median > period_ms
        if self.overrunning:
            self.get_logger().warning(
                f"replanning takes {median:.0f} ms (median of the last {len(self._replan_ms)}), longer than the "
                f"{period_ms:.0f} ms control period at control_rate={self.config.control_rate} Hz; lower "
                f"planner.budget_ms ({self.planner.budget_ms:g}; {self.controller.planner.num_samples} candidates), "
                f"planner.iterations ({self.planner.iterations}) or control_rate",
                throttle_duration_sec=30.0,
            )

    def _joint_state_at_frame(self, frame: Image | CompressedImage, newest: JointState) -> JointState:
        """The joint state stamped nearest ``frame`` (within JOINT_MATCH_TOLERANCE_NS), else ``newest``.

        A camera at 15-30 Hz lags joint states at 100+ Hz by up to a frame period, and the arm moves
        a good part of a command in that time; the model was trained on frames paired by stamp.
        """
        frame_ns = conv.stamp_to_ns(frame.header.stamp)
        if frame_ns > 0:  # an unstamped camera (stamp 0) has nothing to match on
            gaps = [(abs(conv.stamp_to_ns(msg.header.stamp) - frame_ns), msg) for msg in list(self._joint_history)]
            gap, nearest = min(gaps, key=lambda pair: pair[0], default=(math.inf, None))
            if gap <= JOINT_MATCH_TOLERANCE_NS:
                return nearest
        return newest

    def _blocked(self, image_age: float, joint_age: float, planned: bool = False) -> tuple[str, str]:
        """(state, reason) when this tick must not command; ('', '') when it may plan (or publish, ``planned``)."""
        limit = self.config.max_staleness
        if not self.enabled:
            return "disabled", "commanding is disabled; call ~/enable"
        if not self.controller.has_goal:
            return "no_goal", "no goal image set (~/goal_image, ~/set_goal_from_current or goal_image_file)"
        inputs = (("camera frame", self.config.camera_topic, image_age),
                  ("joint state", self.config.joint_states_topic, joint_age))
        for what, topic, age in inputs:
            if math.isinf(age):
                return "waiting", f"no {what} received yet on {topic}"
            if age > limit:
                which = f"the {what} the command was planned from" if planned else f"newest {what}"
                return "stale", f"{which} on {topic} is {age:.2f} s old; max_staleness is {limit} s"
        return "", ""

    def _publish_command(self, command: np.ndarray) -> None:
        if self.config.command_interface == "trajectory":
            # Reach the target by the next tick, when a new target replaces it.
            msg = conv.positions_to_trajectory(command, self.robot.joint_names, 1.0 / self.config.control_rate)
        else:
            msg = conv.numpy_to_multiarray(command)
        self.command_pub.publish(msg)

    def _publish_status(self, energy: float, encode_ms: float, plan_ms: float, image_age: float, joint_age: float,
                        goal_distance: float = math.nan, tool_distance: float = math.nan) -> None:
        # plan_ms is the whole replanning latency (encode + plan): what bounds the control rate
        values = {
            "state": self.state,
            "reason": self.reason,
            "enabled": str(self.enabled).lower(),
            "has_goal": str(self.controller.has_goal).lower(),
            "energy": f"{energy:.6g}",
            "goal_distance": f"{goal_distance:.6g}",  # latent distance of the newest frame to the goal
            # metres from the tool read from the newest frame to where the goal image shows it (nan: no readout)
            "tool_distance_m": f"{tool_distance:.6g}",
            "encode_ms": f"{encode_ms:.2f}",
            "plan_ms": f"{plan_ms:.2f}",
            "overrunning": str(self.overrunning).lower(),  # median replanning time > control period
            "num_samples": str(self.controller.planner.num_samples),  # candidates a plan, within planner.budget_ms
            "image_age": f"{image_age:.3f}",
            "joint_age": f"{joint_age:.3f}",
        }
        status = DiagnosticStatus(
            level=LEVELS[self.state],
            name=f"{self.get_name()}: control",
            hardware_id=self.robot.name,
            message=self.reason or self.state,
            values=[KeyValue(key=key, value=value) for key, value in values.items()],
        )
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self.status_pub.publish(msg)


def main(args: list[str] | None = None) -> int:
    """Run world_model_node until SIGINT / SIGTERM."""
    return spin_node(WorldModelNode, "world_model_node", (ConfigError, CheckpointError, ControlError), num_threads=1, args=args)


if __name__ == "__main__":
    sys.exit(main())
