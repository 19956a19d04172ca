"""End-effector states and actions as V-JEPA 2-AC uses them, in torch for batched rollouts.

A state is the 7-D pose ``[x, y, z, roll, pitch, yaw, gripper]``: position (m), orientation as
roll-pitch-yaw angles (rad; the rotation ``Rz(yaw) @ Ry(pitch) @ Rx(roll)``, which is scipy's
``"xyz"`` and ROS's RPY convention) and gripper closure (0 open .. 1 closed). An action is the
change to the next state: a position delta, a rotation delta applied in the world frame
(``R_next = R(delta) @ R``) and a gripper delta, the next closure clipped to 0..1 (as the
published ``compute_new_pose`` and ``poses_to_diff`` define them).
"""

from __future__ import annotations

import torch


def rpy_to_matrix(rpy: torch.Tensor) -> torch.Tensor:
    """Roll-pitch-yaw [..., 3] -> rotation matrices [..., 3, 3] (Rz(yaw) @ Ry(pitch) @ Rx(roll))."""
    cr, sr = rpy[..., 0].cos(), rpy[..., 0].sin()
    cp, sp = rpy[..., 1].cos(), rpy[..., 1].sin()
    cy, sy = rpy[..., 2].cos(), rpy[..., 2].sin()
    rows = [
        cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr,
        sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr,
        -sp, cp * sr, cp * cr,
    ]
    return torch.stack(rows, dim=-1).unflatten(-1, (3, 3))


def matrix_to_rpy(matrix: torch.Tensor) -> torch.Tensor:
    """Rotation matrices [..., 3, 3] -> roll-pitch-yaw [..., 3], pitch in [-pi/2, pi/2]."""
    roll = torch.atan2(matrix[..., 2, 1], matrix[..., 2, 2])
    pitch = torch.asin((-matrix[..., 2, 0]).clamp(-1.0, 1.0))
    yaw = torch.atan2(matrix[..., 1, 0], matrix[..., 0, 0])
    return torch.stack([roll, pitch, yaw], dim=-1)


def compose_pose(pose: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """The pose [..., 7] after an action [..., 7]: position added, rotation applied in the world frame."""
    position = pose[..., :3] + action[..., :3]
    rotation = rpy_to_matrix(action[..., 3:6]) @ rpy_to_matrix(pose[..., 3:6])
    gripper = (pose[..., 6:] + action[..., 6:]).clamp(0.0, 1.0)
    return torch.cat([position, matrix_to_rpy(rotation), gripper], dim=-1)


def pose_difference(start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """The action [..., 7] that takes pose ``start`` to pose ``end`` (inverse of :func:`compose_pose`)."""
    rotation = rpy_to_matrix(end[..., 3:6]) @ rpy_to_matrix(start[..., 3:6]).transpose(-1, -2)
    return torch.cat([end[..., :3] - start[..., :3], matrix_to_rpy(rotation), end[..., 6:] - start[..., 6:]], dim=-1)
