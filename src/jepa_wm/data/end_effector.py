"""Recorded joint-space episodes in V-JEPA 2-AC's end-effector space, by forward kinematics.

A state becomes the tool's pose at the measured joints (gripper 0: open), an action the pose
change from there to the pose at the commanded joints, which is what the controller turns back
into joints by inverse kinematics. Frames and stamps are kept; joint names become the pose's.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from jepa_wm.config import END_EFFECTOR_POSE, RobotConfig, WorldModelConfig, require
from jepa_wm.data.episodes import Episode
from jepa_wm.kinematics import ArmKinematics
from jepa_wm.models.end_effector import pose_difference


def in_action_space(episodes: list[Episode], config: WorldModelConfig, robot: RobotConfig | None) -> list[Episode]:
    """The episodes in the model's action space: as read (joint), or converted with ``robot``'s kinematics."""
    if config.action_space == "joint":
        return episodes
    require(robot is not None and bool(robot.description),
            "world_model.action_space end_effector needs the robot's description (URDF) for its kinematics: give "
            "--robot with a preset that names one")
    return end_effector_episodes(episodes, ArmKinematics.of_robot(robot))


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
