"""Forward and inverse kinematics of an arm's URDF with pinocchio, for end-effector states and actions.

The model is the URDF reduced to the robot's controlled joints (every other joint, a gripper's
fingers for example, locked at its neutral position). The end effector is a link of the URDF:
the one a preset names, else the last frame fixed to the last controlled joint (a tool flange).
Poses are ``[x, y, z, roll, pitch, yaw]`` in the URDF's root frame (m, rad; ROS's RPY).

Inverse kinematics is pinocchio's closed-loop scheme (damped least squares on the frame Jacobian
and the SE(3) log error), each iterate kept inside the joint limits. Arms with fewer than six
joints cannot reach every orientation: the orientation error then weighs ``rotation_weight`` of
the position error, and the solution's remaining errors are returned, never hidden.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pinocchio as pin

from jepa_wm.config import RobotConfig


class KinematicsError(ValueError):
    """The description does not hold the robot's joints or end effector, or a pose is not finite."""


@dataclass(frozen=True)
class IKResult:
    """Joint positions (robot order, rad) that best reach a pose, and how far they are from it."""

    joint_positions: np.ndarray  # [J]
    position_error_m: float
    rotation_error_rad: float
    iterations: int


class ArmKinematics:
    """FK and IK of ``joint_names`` (robot order) of a URDF; ``end_effector`` is a link name or None."""

    def __init__(self, urdf_xml: str, joint_names: Sequence[str], end_effector: str | None = None) -> None:
        full = pin.buildModelFromXML(urdf_xml)
        known = set(full.names[1:])
        missing = [name for name in joint_names if name not in known]
        if missing:
            raise KinematicsError(f"the description has no joint {missing}; its joints are {sorted(known)}")
        locked = [full.getJointId(name) for name in full.names[1:] if name not in joint_names]
        self.model = pin.buildReducedModel(full, locked, pin.neutral(full))
        self.data = self.model.createData()
        self.joint_names = tuple(joint_names)
        joints = [self.model.joints[self.model.getJointId(name)] for name in joint_names]
        if any(joint.nq != 1 for joint in joints):
            raise KinematicsError(f"joints {list(joint_names)}: expected one position each (revolute or prismatic)")
        self.q_index = np.array([joint.idx_q for joint in joints])  # robot order -> pinocchio q
        last = self.model.getJointId(joint_names[-1]) if joint_names else 0
        if end_effector is None:
            attached = [i for i, frame in enumerate(self.model.frames) if frame.parentJoint == last]
            self.frame = attached[-1]
        elif self.model.existFrame(end_effector):
            self.frame = self.model.getFrameId(end_effector)
        else:
            raise KinematicsError(f"the description has no link {end_effector!r} for the end effector")
        self.end_effector = self.model.frames[self.frame].name

    @classmethod
    def of_robot(cls, robot: RobotConfig) -> ArmKinematics:
        """The kinematics of a robot preset: its description (URDF or xacro), joints and end-effector link."""
        from jepa_wm.sim.description import render_xacro

        path = robot.description_path()
        if not path.is_file():
            raise KinematicsError(f"robot {robot.name!r}: its description {path} does not exist")
        urdf = render_xacro(path) if path.name.endswith(".xacro") else path.read_text()
        return cls(urdf, robot.joint_names, robot.end_effector_link or None)

    def _q(self, joint_positions: np.ndarray) -> np.ndarray:
        q = pin.neutral(self.model)
        q[self.q_index] = joint_positions
        return q

    def _placement(self, q: np.ndarray) -> pin.SE3:
        pin.framesForwardKinematics(self.model, self.data, q)
        return self.data.oMf[self.frame]

    def pose(self, joint_positions: np.ndarray) -> np.ndarray:
        """End-effector pose [6] (x, y, z, roll, pitch, yaw) at joint positions [J] (robot order)."""
        placement = self._placement(self._q(np.asarray(joint_positions, dtype=np.float64)))
        return np.concatenate([placement.translation, pin.rpy.matrixToRpy(placement.rotation)])

    def reach(self, target: np.ndarray, start: np.ndarray, lower: np.ndarray, upper: np.ndarray,
              position_first: bool = False) -> IKResult:
        """:meth:`solve` with the orientation weighed by what the arm can do: fully with six joints or
        more, a tenth with fewer (five joints cannot turn the tool every way), a fiftieth where the
        position matters first (``position_first``: a tool pushing on a table at a held height)."""
        weight = 1.0 if len(self.joint_names) >= 6 else 0.02 if position_first else 0.1
        return self.solve(target, start, lower, upper, rotation_weight=weight)

    def solve(self, target: np.ndarray, start: np.ndarray, lower: np.ndarray, upper: np.ndarray,
              rotation_weight: float = 1.0, iterations: int = 400, tolerance: float = 1e-5,
              damping: float = 1e-4, max_step: float = 0.2) -> IKResult:
        """Joint positions within [lower, upper] (robot order) that reach the pose ``target`` [6] from ``start``."""
        target = np.asarray(target, dtype=np.float64)
        if target.shape != (6,) or not np.isfinite(target).all():
            raise KinematicsError(f"target pose {target.tolist()}: expected 6 finite values (x, y, z, roll, pitch, yaw)")
        wanted = pin.SE3(pin.rpy.rpyToMatrix(*target[3:]), target[:3])
        weights = np.array([1.0, 1.0, 1.0, rotation_weight, rotation_weight, rotation_weight])
        joints = np.clip(np.asarray(start, dtype=np.float64), lower, upper)
        iteration = 0
        while iteration < iterations:
            iteration += 1
            q = self._q(joints)
            placement = self._placement(q)
            # error in the world-aligned frame at the end effector: translation, then rotation
            error = pin.log6(placement.actInv(wanted))
            world = pin.SE3(placement.rotation, np.zeros(3))
            error = world.toActionMatrix() @ error.vector
            if np.linalg.norm(weights * error) < tolerance:
                break
            jacobian = pin.computeFrameJacobian(self.model, self.data, q, self.frame, pin.LOCAL_WORLD_ALIGNED)
            jacobian = jacobian[:, self.q_index] * weights[:, None]
            step = jacobian.T @ np.linalg.solve(jacobian @ jacobian.T + damping * np.eye(6), weights * error)
            step *= min(1.0, max_step / max(np.abs(step).max(), 1e-12))  # rad: no leap across the workspace
            joints = np.clip(joints + step, lower, upper)
        reached = self._placement(self._q(joints))
        return IKResult(
            joint_positions=joints,
            position_error_m=float(np.linalg.norm(reached.translation - wanted.translation)),
            rotation_error_rad=float(np.linalg.norm(pin.log3(reached.rotation.T @ wanted.rotation))),
            iterations=iteration,
        )


def tool_position(state: np.ndarray, action_space: str, kinematics: ArmKinematics | None) -> np.ndarray:
    """The tool's position (m, base frame) at a model state: forward kinematics of joint positions (robot
    order; needs ``kinematics``), or the pose's x, y, z (end_effector) or x, y (planar)."""
    if action_space == "joint":
        if kinematics is None:
            raise KinematicsError("a joint state's tool position needs the arm's kinematics (its description)")
        return kinematics.pose(state)[:3]
    return state[:2] if action_space == "planar" else state[:3]
