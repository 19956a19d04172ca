"""Recorded joint-space episodes in V-JEPA 2-AC's end-effector space, by forward kinematics.

A state becomes the tool's pose at the measured joints (gripper 0: open), an action the pose
change from there to the pose at the commanded joints, which is what the controller turns back
into joints by inverse kinematics. Frames and stamps are kept; joint names become the pose's.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from jepa_wm.config import END_EFFECTOR_POSE, PLANAR_TOOL, RobotConfig, WorldModelConfig, require
from jepa_wm.data.episodes import Episode
from jepa_wm.kinematics import ArmKinematics
from jepa_wm.models.end_effector import matrix_to_rpy, pose_difference, rpy_to_matrix

TOOL_HEIGHT_SPREAD_M = 0.01  # planar data: the tool's recorded height may vary this much (standard deviation)


def in_action_space(episodes: list[Episode], config: WorldModelConfig, robot: RobotConfig | None) -> list[Episode]:
    """The episodes in the model's action space: as read (joint), or converted with ``robot``'s kinematics."""
    if config.action_space == "joint":
        return episodes
    require(robot is not None and bool(robot.description),
            f"world_model.action_space {config.action_space} needs the robot's description (URDF) for its kinematics: "
            "give --robot with a preset that names one")
    converted = end_effector_episodes(episodes, ArmKinematics.of_robot(robot))
    if config.action_space == "end_effector":
        return converted
    return [dataclasses.replace(e, joint_positions=e.joint_positions[:, :2].copy(), actions=e.actions[:, :2].copy(),
                                joint_names=PLANAR_TOOL) for e in converted]


def tool_pose_of(episodes: list[Episode]) -> tuple[float, float, float, float]:
    """The tool's height (m) and roll, pitch, yaw (rad) over end-effector episodes: the median height and the
    mean orientation (the rotation nearest the mean of the rotation matrices)."""
    poses = torch.from_numpy(np.concatenate([e.joint_positions for e in episodes]).astype(np.float64))
    spread = float(poses[:, 2].std())
    require(spread <= TOOL_HEIGHT_SPREAD_M,
            f"the recorded tool height varies by {spread * 100:.1f} cm (standard deviation over "
            f"{len(episodes)} episodes; at most {TOOL_HEIGHT_SPREAD_M * 100:.0f} cm): planar actions need data "
            "recorded with the tool held at one height (jepa-ros collect --scene push)")
    mean = rpy_to_matrix(poses[:, 3:6]).mean(dim=0)
    u, _, vt = torch.linalg.svd(mean)
    nearest = u @ torch.diag(torch.tensor([1.0, 1.0, float(torch.det(u @ vt))], dtype=torch.float64)) @ vt
    return (float(poses[:, 2].median()), *(float(v) for v in matrix_to_rpy(nearest)))


def end_effector_episodes(episodes: list[Episode], kinematics: ArmKinematics) -> list[Episode]:
    """Each episode with end-effector states [T, 7] and actions [T, 7] in place of its joints'."""
    converted = []
    for episode in episodes:
        if tuple(episode.joint_names) != kinematics.joint_names:
            raise ValueError(f"{episode.source}: joints {list(episode.joint_names)}; the kinematics drive "
                             f"{list(kinematics.joint_names)}")
        measured = _poses(kinematics, episode.joint_positions)
        commanded = _poses(kinematics, episode.joint_positions + episode.actions)
        actions = pose_difference(torch.from_numpy(measured), torch.from_numpy(commanded)).numpy()
        converted.append(dataclasses.replace(episode, joint_positions=measured.astype(np.float32),
                                             actions=actions.astype(np.float32), joint_names=END_EFFECTOR_POSE))
    return converted


def _poses(kinematics: ArmKinematics, joint_positions: np.ndarray) -> np.ndarray:
    """[T, 7] float64 poses (gripper 0) at joint positions [T, J]."""
    poses = np.stack([kinematics.pose(q) for q in joint_positions.astype(np.float64)])
    return np.concatenate([poses, np.zeros((len(poses), 1))], axis=1)
