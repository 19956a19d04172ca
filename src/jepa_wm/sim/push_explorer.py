"""Random pushes of the block in the push scene: exploration data for a world model of objects.

The tool is held at push height (the block's middle) in the arm's home orientation and walks on the
table plane: toward a point behind the block, then through it to a point beyond, from a side drawn at
random, with noise on every step; now and then it wanders to a random point instead. Every target is
turned into joint positions by inverse kinematics (pinocchio) within the joint limits, so the same
explorer drives any arm with a description. No rewards, demonstrations or object labels are used: the
block's pose is only recorded for evaluation.
"""

from __future__ import annotations

import numpy as np

from jepa_wm.kinematics import ArmKinematics
from jepa_wm.sim.arm_sim import ArmSim
from jepa_wm.sim.scene import PUSH_OBJECT_HALF_SIZE

PUSH_HEIGHT = PUSH_OBJECT_HALF_SIZE[2]  # m above the table top: the tool meets the block at its middle ...
TABLE_MARGIN = 0.005  # ... or higher, so that no part of the arm comes closer than this to the table
WANDER_PROBABILITY = 0.2  # of a new waypoint being a random point rather than a push


class PushExplorer:
    """The tool's next joint target (the sim's joint order) at each step, for random pushes of the block."""

    def __init__(self, sim: ArmSim, rng: np.random.Generator, max_step: float = 0.03, noise: float = 0.006) -> None:
        self.sim, self.rng, self.max_step, self.noise = sim, rng, max_step, noise
        self.kinematics = ArmKinematics(sim.description.urdf_xml, sim.joint_names, sim.robot.end_effector_link or None)
        home = self.kinematics.pose(sim.home_joint_positions)
        self.tool_pose = np.array([sim.table_top + PUSH_HEIGHT, *home[3:]])  # height, roll, pitch, yaw
        area = sim.reachable_table_area
        self.lower, self.upper = area.min(axis=0), area.max(axis=0)
        self.tool_pose[0] += self._lift_clear_of_table(area)
        self.waypoints: list[np.ndarray] = []

    def _lift_clear_of_table(self, area: np.ndarray, checks: int = 12) -> float:
        """How much higher than PUSH_HEIGHT the tool must be held so that no part of the arm touches the
        table (a gripper's fingers may reach below its tool point), over points of the area."""
        lift = 0.0
        points = area[np.linspace(0, len(area) - 1, checks).astype(int)]
        for _ in range(8):
            self.tool_pose[0] += lift
            gaps = [self.sim.table_gap(self._joints(xy, self.sim.home_joint_positions)) for xy in points]
            self.tool_pose[0] -= lift
            shortfall = TABLE_MARGIN - min(gaps)
            if shortfall <= 1e-4:
                return lift
            lift += shortfall
        raise RuntimeError(f"the tool of {self.sim.robot.name} cannot be held clear of the table over the push area")

    def start(self) -> np.ndarray:
        """Joint positions [J] with the tool at push height over a reachable point clear of the block."""
        block = self.sim.object_pose()[:2]
        area = self.sim.reachable_table_area
        clear = area[np.linalg.norm(area - block, axis=1) > 0.1]
        xy = clear[self.rng.integers(len(clear))]
        return self._joints(xy, self.sim.home_joint_positions)

    def next_target(self, joint_positions: np.ndarray) -> np.ndarray:
        """Joint target [J] one step along the current waypoint, with noise, inside the reachable box."""
        xy = self.kinematics.pose(joint_positions)[:2]
        while self.waypoints and np.linalg.norm(self.waypoints[0] - xy) < self.max_step:
            self.waypoints.pop(0)
        if not self.waypoints:
            self.waypoints = self._plan_waypoints()
        heading = self.waypoints[0] - xy
        step = heading * min(1.0, self.max_step / max(float(np.linalg.norm(heading)), 1e-9))
        target = np.clip(xy + step + self.rng.normal(0.0, self.noise, 2), self.lower, self.upper)
        return self._joints(target, joint_positions)

    def _plan_waypoints(self) -> list[np.ndarray]:
        if self.rng.random() < WANDER_PROBABILITY:
            return [self.rng.uniform(self.lower, self.upper)]
        block = self.sim.object_pose()[:2]
        angle = self.rng.uniform(-np.pi, np.pi)
        direction = np.array([np.cos(angle), np.sin(angle)])
        behind = block - direction * self.rng.uniform(0.07, 0.10)
        beyond = block + direction * self.rng.uniform(0.03, 0.12)
        return [np.clip(point, self.lower, self.upper) for point in (behind, beyond)]

    def _joints(self, xy: np.ndarray, start: np.ndarray) -> np.ndarray:
        pose = np.concatenate([xy, self.tool_pose])
        return self.kinematics.reach(pose, start, self.sim.joint_lower, self.sim.joint_upper, position_first=True).joint_positions
