"""sim_node: the MuJoCo arm (jepa_wm.sim.ArmSim) on the topics a ros2_control arm uses.

Publishes ``joint_states``, ``end_effector_position`` (ground truth) and ``/clock`` every
physics tick (``joint_state_rate`` Hz of simulated time), ``camera/image_raw`` and
``camera/camera_info`` at ``camera_rate``; takes ``forward_position_controller/commands``
and ``joint_trajectory_controller/joint_trajectory``; serves ``~/reset``. Physics runs
on the main thread against wall-clock deadlines (``real_time_factor``); subscription
callbacks only store the latest command.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np
from geometry_msgs.msg import PointStamped, PoseStamped
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from jepa_ros import conversions as conv
from jepa_ros.nodes import guarded, spin_node
from jepa_ros.params import load_config
from jepa_wm import topics
from jepa_wm.config import ConfigError, SimConfig, require
from jepa_wm.safety import CommandError, check_command, clamp_to_limits
from jepa_wm.sim import ArmSim, DescriptionError

# Reliable with a short history: best-effort (SensorDataQoS) subscribers accept it, and
# reliable subscribers such as a recorder get every frame.
SENSOR_PUB_QOS = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
# Fall this far behind the wall-clock deadline and the schedule restarts instead of bursting.
MAX_LAG_S = 0.25



@dataclass(frozen=True)
class SimNodeConfig:
    """Rates and frames of sim_node (the simulation itself is a SimConfig)."""

    camera_rate: float = 15.0  # Hz of camera/image_raw and camera/camera_info, in simulated time
    joint_state_rate: float = 100.0  # Hz of joint_states, /clock and end_effector_position, in simulated time
    real_time_factor: float = 1.0  # simulated seconds per wall second; 0 runs as fast as possible
    world_frame: str = "world"  # frame of end_effector_position
    camera_frame: str = "camera_optical_frame"  # frame of the camera image and camera_info
    jpeg_quality: int = 0  # > 0: also publish camera/image_raw/compressed, JPEG of this quality (image_transport's name)

    def __post_init__(self) -> None:
        require(0 <= self.jpeg_quality <= 100, f"sim_node.jpeg_quality={self.jpeg_quality}: expected 0 (off) .. 100")
        require(0 < self.camera_rate <= 120, f"sim_node.camera_rate={self.camera_rate}: expected (0, 120] Hz")
        require(
            50 <= self.joint_state_rate <= 1000,
            f"sim_node.joint_state_rate={self.joint_state_rate}: expected 50..1000 Hz",
        )
        require(
            self.camera_rate <= self.joint_state_rate,
            f"sim_node.camera_rate={self.camera_rate} exceeds joint_state_rate={self.joint_state_rate}",
        )
        require(
            self.real_time_factor >= 0 and math.isfinite(self.real_time_factor),
            f"sim_node.real_time_factor={self.real_time_factor}: expected >= 0 (0 = as fast as possible)",
        )


class SimNode(Node):
    """Thin ROS wrapper around ArmSim; all arm behaviour lives in jepa_wm.sim."""

    def __init__(self) -> None:
        super().__init__("sim_node")
        self.sim_config = load_config(self, SimConfig)
        self.config = load_config(self, SimNodeConfig)
        substeps = 1.0 / (self.config.joint_state_rate * self.sim_config.physics_timestep)
        require(
            abs(substeps - round(substeps)) < 1e-6,
            f"sim_node.joint_state_rate={self.config.joint_state_rate} Hz: expected a whole number of physics steps "
            f"of physics_timestep={self.sim_config.physics_timestep} s per joint state",
        )
        self.sim = ArmSim(self.sim_config)
        self.joint_names = tuple(self.sim.joint_names)
        self._intrinsics = self.sim.camera_intrinsics()
        self._lock = threading.Lock()  # guards self.sim and the pending command
        self._target: np.ndarray | None = None  # latest position command [J]
        self._trajectory: tuple[np.ndarray, np.ndarray] | None = None  # (simulated times [P], points [P, J])
        self._clock_base_ns = 0  # simulated time before the last reset: /clock never runs backwards

        self.joint_state_pub = self.create_publisher(JointState, topics.JOINT_STATES, SENSOR_PUB_QOS)
        self.image_pub = self.create_publisher(Image, topics.CAMERA, SENSOR_PUB_QOS)
        self.compressed_pub = (self.create_publisher(CompressedImage, f"{topics.CAMERA}/compressed", SENSOR_PUB_QOS)
                               if self.config.jpeg_quality else None)
        self.info_pub = self.create_publisher(CameraInfo, topics.CAMERA_INFO, SENSOR_PUB_QOS)
        self.ee_pub = self.create_publisher(PointStamped, topics.END_EFFECTOR, SENSOR_PUB_QOS)
        self.clock_pub = self.create_publisher(Clock, topics.CLOCK, QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
        # no callback may end the node: each one logs what it raised and drops that input
        self.create_subscription(Float64MultiArray, topics.POSITION_COMMANDS,
                                 guarded(self, self._on_command), 10)
        self.create_subscription(JointTrajectory, topics.TRAJECTORY_COMMANDS,
                                 guarded(self, self._on_trajectory), 10)
        self.create_service(Trigger, "~/reset", guarded(self, self._on_reset))
        # the push scene: the block's pose for evaluation, and a way to put it somewhere (a benchmark's start)
        self.object_pub = None
        if self.sim_config.scene == "push":
            self.object_pub = self.create_publisher(PoseStamped, topics.OBJECT_POSE, SENSOR_PUB_QOS)
            self.create_subscription(PoseStamped, "~/place_object", guarded(self, self._on_place_object), 10)
        self.get_logger().info(
            f"MuJoCo arm with joints {list(self.joint_names)}: camera {self.sim_config.image_size} px at "
            f"{self.config.camera_rate} Hz, joint_states at {self.config.joint_state_rate} Hz, "
            f"real_time_factor {self.config.real_time_factor}"
        )

    # -- commands: callbacks validate and store, the physics thread applies ------------------

    def _clamp_to_limits(self, target: np.ndarray, source: str) -> np.ndarray:
        result = clamp_to_limits(target, self.sim.joint_lower, self.sim.joint_upper, self.joint_names)
        if result.warnings:  # one line per command: the throttle would hide all but the first joint
            self.get_logger().warning(f"{source}: {'; '.join(result.warnings)}", throttle_duration_sec=1.0)
        return result.command

    def _on_command(self, msg: Float64MultiArray) -> None:
        try:
            target = check_command(conv.multiarray_to_numpy(msg), self.joint_names)
        except CommandError as err:
            self.get_logger().warning(f"command rejected: {err}", throttle_duration_sec=1.0)
            return
        target = self._clamp_to_limits(np.asarray(target, dtype=np.float64), "command")
        with self._lock:
            self._target, self._trajectory = target, None

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        """Follow ``msg`` as a joint trajectory controller does.

        time_from_start counts from the header stamp (on this node's /clock), or from arrival when
        the stamp is zero. A future start holds the arm where it is until then; a past one skips the
        points already due, and a trajectory that has ended before it arrives is refused. The arm
        is interpolated from where it is now to the points still ahead.
        """
        with self._lock:
            current, now, base_ns = self.sim.joint_positions.copy(), self.sim.time, self._clock_base_ns
        try:
            times, points = conv.trajectory_points(msg, self.joint_names, current)
        except conv.ConversionError as err:
            self.get_logger().error(f"trajectory refused: {err}")
            return
        stamp_ns = conv.stamp_to_ns(msg.header.stamp)
        start = now if stamp_ns == 0 else (stamp_ns - base_ns) / 1e9  # simulated time since the last reset
        times = start + times
        if times[-1] <= now:
            self.get_logger().error(
                f"trajectory refused: stamped {stamp_ns} ns, it ended at {base_ns + round(times[-1] * 1e9)} ns, "
                f"before it arrived ({base_ns + round(now * 1e9)} ns on /clock)"
            )
            return
        ahead = times > now
        points = np.stack([self._clamp_to_limits(p, f"trajectory point {i}") for i, p in enumerate(points)])
        hold = [start] if start > now else []  # a future start: hold the current position until then
        times = np.concatenate([[now], hold, times[ahead]])
        points = np.concatenate([np.repeat(current[None], 1 + len(hold), axis=0), points[ahead]])
        with self._lock:
            self._trajectory, self._target = (times, points), None

    def _on_place_object(self, msg: PoseStamped) -> None:
        """Put the push block at the message's x, y and yaw on the table, at rest."""
        try:
            pose = conv.pose_to_planar(msg)
        except conv.ConversionError as err:
            self.get_logger().warning(f"object pose rejected: {err}", throttle_duration_sec=1.0)
            return
        with self._lock:
            self.sim.place_object(pose)
        self.get_logger().info(f"block placed at x {pose[0]:.3f} m, y {pose[1]:.3f} m, yaw {pose[2]:.3f} rad")

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        with self._lock:
            self._clock_base_ns += round(self.sim.time * 1e9)
            self.sim.reset(seed=self.sim_config.seed)
            self._target = self._trajectory = None
        response.success, response.message = True, f"arm reset to its home pose {self.sim.home_joint_positions.round(3).tolist()}"
        return response

    def _current_target(self) -> np.ndarray | None:
        """Position target for this tick: the latest command, or the trajectory sampled now."""
        if self._trajectory is None:
            return self._target
        times, points = self._trajectory
        now = self.sim.time
        if now >= times[-1]:
            return points[-1]
        return np.array([np.interp(now, times, points[:, j]) for j in range(points.shape[1])])

    # -- physics thread ------------------------------------------------------------------------

    def destroy_node(self) -> None:
        """Destroy the node, then free the renderer's OpenGL context (on this, the physics thread).

        Left to the interpreter's exit, the context would be freed after MuJoCo's atexit hook has
        terminated the EGL display.
        """
        super().destroy_node()
        if hasattr(self, "sim"):  # not when __init__ failed before building it
            self.sim.close()

    def run_physics(self, stop: threading.Event) -> None:
        """Step, publish and pace the simulation until ``stop`` is set or the context shuts down.

        Runs on the thread that built the ArmSim: its OpenGL context is current there only.
        """
        tick = 1.0 / self.config.joint_state_rate
        camera_period = 1.0 / self.config.camera_rate
        rtf = self.config.real_time_factor
        next_frame = 0.0  # simulated time of the next camera frame
        wall_start, sim_start = time.monotonic(), 0.0
        previous = 0.0  # simulated time of the previous tick: a reset makes it run backwards
        try:
            while not stop.is_set() and self.context.ok():
                with self._lock:
                    target = self._current_target()
                    if target is not None:
                        self.sim.set_target(target)
                    self.sim.step(tick)
                    now = self.sim.time
                    stamp = self._clock_base_ns + round(now * 1e9)
                    positions, velocities = self.sim.joint_positions.copy(), self.sim.joint_velocities.copy()
                    tcp = self.sim.end_effector_position()
                    block = self.sim.object_pose() if self.object_pub is not None else None
                    if now < previous:  # a reset happened: restart the camera and pacing schedules
                        wall_start, sim_start, next_frame = time.monotonic(), now, 0.0
                    previous = now
                    frame = None
                    if now + 1e-9 >= next_frame:
                        frame = self.sim.render()
                        next_frame = max(next_frame + camera_period, now)
                self.clock_pub.publish(conv.clock_message(stamp))
                self.joint_state_pub.publish(conv.positions_to_joint_state(positions, self.joint_names, stamp, velocities))
                self.ee_pub.publish(conv.point_stamped(tcp, stamp, self.config.world_frame))
                if block is not None:
                    self.object_pub.publish(conv.planar_pose_stamped(block, stamp, self.config.world_frame))
                if frame is not None:
                    self.image_pub.publish(conv.rgb_to_image(frame, stamp, self.config.camera_frame))
                    if self.compressed_pub is not None:
                        self.compressed_pub.publish(conv.rgb_to_compressed(frame, "jpeg", stamp, self.config.camera_frame,
                                                                           self.config.jpeg_quality))
                    self.info_pub.publish(conv.camera_info(self._intrinsics, stamp, self.config.camera_frame))
                if rtf > 0:
                    delay = wall_start + (now - sim_start) / rtf - time.monotonic()
                    if delay > 0:
                        stop.wait(delay)
                    elif delay < -MAX_LAG_S:
                        wall_start, sim_start = time.monotonic(), now
        except Exception as err:  # noqa: BLE001 - after stop or a shutdown: quiet; otherwise reported
            if not stop.is_set() and self.context.ok():
                self.get_logger().fatal(f"physics loop stopped: {type(err).__name__}: {err}")
                raise


def main(args: list[str] | None = None) -> int:
    """Run sim_node until SIGINT / SIGTERM; physics keeps the main thread, which owns the GL context."""
    return spin_node(SimNode, "sim_node", (ConfigError, DescriptionError), num_threads=1, args=args,
                     foreground=lambda node, stopped: node.run_physics(stopped))


if __name__ == "__main__":
    sys.exit(main())
