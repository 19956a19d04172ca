"""`jepa-ros demo --task push`: the MuJoCo arm pushes a block to where goal images show it, over DDS.

sim_node runs the push scene (`scene:=push`) and world_model_node a planar checkpoint (whose planner
compares goals without the arm, planner.goal auto -> objects), as separate processes of the
`sim_mujoco` graph. For each seeded goal this client moves the arm to its start pose with position
commands, puts the block where the goal starts it (sim_node's ~/place_object), gives the goal image,
enables the world model for a fixed number of control steps and measures where the block ends from
sim_node's `object_pose` (ground truth, never seen by the model). The no-action and random-push
baselines then run in MuJoCo on the same goals, and a report folder is written.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.qos import qos_profile_sensor_data
from std_msgs.msg import Float64MultiArray

from jepa_ros.conversions import pose_to_planar
from jepa_ros.demo import ReachingClient, spinning
from jepa_wm import topics
from jepa_wm.config import SimConfig
from jepa_wm.pushing import (
    PushAttempt,
    PushGoal,
    PushingConfig,
    object_errors,
    run_push_baseline,
    sample_push_goals,
    write_push_report,
)
from jepa_wm.sim import ArmSim

START_TOLERANCE_M = 0.005  # the tool at the goal's start position within this before the block is placed
PLACE_TOLERANCE_M = 0.002  # the block where it was placed within this before the world model starts


class PushingClient(ReachingClient):
    """ReachingClient's services and counters, plus the block: its pose, and a way to place it."""

    def __init__(self, sim_name: str = "sim_node", model_name: str = "world_model_node") -> None:
        super().__init__(sim_name, model_name)
        self.object_pose: np.ndarray | None = None
        self.create_subscription(PoseStamped, topics.OBJECT_POSE, self._on_object, qos_profile_sensor_data)
        self.place_publisher = self.create_publisher(PoseStamped, f"/{sim_name}/place_object", 10)
        self.command_publisher = self.create_publisher(Float64MultiArray, topics.POSITION_COMMANDS, 10)

    def _on_object(self, msg: PoseStamped) -> None:
        with self._condition:
            self.object_pose = pose_to_planar(msg)
            self._condition.notify_all()

    def _tool_at(self, position: np.ndarray) -> bool:
        return self.ee_position is not None and float(np.linalg.norm(self.ee_position - position)) < START_TOLERANCE_M

    def _block_at(self, pose: np.ndarray) -> bool:
        return self.object_pose is not None and object_errors(self.object_pose, pose)[0] < PLACE_TOLERANCE_M

    def set_up(self, goal: PushGoal, tool_position: np.ndarray, timeout: float = 20.0) -> None:
        """World model off, arm home, then to the goal's start pose (position commands), then the block placed."""
        self._reset_arm()
        self.command_publisher.publish(Float64MultiArray(data=[float(v) for v in goal.start_joints]))
        self.wait_for(lambda: self._tool_at(tool_position), timeout, "the tool at the goal's start pose")
        x, y, yaw = goal.start_object
        msg = PoseStamped()
        msg.header.frame_id = "world"
        msg.pose.position.x, msg.pose.position.y = float(x), float(y)
        msg.pose.orientation.z, msg.pose.orientation.w = float(np.sin(yaw / 2)), float(np.cos(yaw / 2))
        self.place_publisher.publish(msg)
        self.wait_for(lambda: self._block_at(goal.start_object), timeout, "the block at the goal's start pose")

    def run_goal(self, index: int, goal: PushGoal, config: PushingConfig, tool_position: np.ndarray,
                 video_every: int) -> PushAttempt:
        """Set the goal up, give its image, let the world model command ``max_steps`` steps."""
        self.set_up(goal, tool_position)
        attempt = PushAttempt(index)
        self.command_steps(index, goal.image, config.max_steps, config.control_period,
                           lambda: self._record(attempt, goal), attempt.replan_ms, video_every, attempt.frames.append)
        return attempt

    def _record(self, attempt: PushAttempt, goal: PushGoal) -> None:
        """Append the block's errors to ``goal`` (call under the lock)."""
        position, yaw = object_errors(self.object_pose, goal.goal_object)
        attempt.position_errors_m.append(position)
        attempt.yaw_errors_rad.append(yaw)


def run_push_closed_loop(config: PushingConfig, checkpoint: Path, robot: str, graph_args: list[str], out: Path,
                         extra: dict | None = None) -> dict:
    """Start the sim_mujoco graph in the push scene with ``checkpoint``, push every goal over DDS, run the
    baselines in MuJoCo on the same goals, write the report; return the metrics."""
    from tqdm import tqdm

    from jepa_ros.runner import start_graph
    from jepa_wm.models.checkpoint import load_checkpoint

    image_size = load_checkpoint(checkpoint).config.encoder.image_size
    sim = ArmSim(SimConfig(robot=robot, scene="push", image_size=image_size, control_period=config.control_period,
                           seed=config.seed))
    goals = sample_push_goals(sim, config)
    tool_positions = []
    for goal in goals:  # where the tool is at each goal's start pose (the client waits for it there)
        sim.reset(joint_positions=goal.start_joints)
        tool_positions.append(sim.end_effector_position())
    started = time.monotonic()
    args = [f"robot:={robot}", f"image_size:={image_size}", f"checkpoint:={checkpoint}", f"seed:={config.seed}",
            "scene:=push", *graph_args]
    with start_graph("sim_mujoco", args), spinning(PushingClient) as client:
        attempts = [client.run_goal(i, goal, config, tool_positions[i], video_every=2)
                    for i, goal in enumerate(tqdm(goals, desc="push goals"))]
    closed_loop_s = time.monotonic() - started
    results = {"world_model": attempts, "random": run_push_baseline(sim, goals, config, "random"),
               "zero": run_push_baseline(sim, goals, config, "zero")}
    sim.close()
    return write_push_report(out, config, results, goals, {"closed_loop_seconds": closed_loop_s, **(extra or {})})
