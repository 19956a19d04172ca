"""End-effector states and actions (V-JEPA 2-AC's 7-D pose and delta), checked against pinocchio."""

import numpy as np
import pinocchio as pin
import pytest
import torch

from jepa_wm.models.end_effector import compose_pose, matrix_to_rpy, pose_difference, rpy_to_matrix


def test_roll_pitch_yaw_follow_the_ros_convention():
    rng = np.random.default_rng(0)
    for rpy in rng.uniform([-np.pi, -1.5, -np.pi], [np.pi, 1.5, np.pi], size=(20, 3)):
        expected = pin.rpy.rpyToMatrix(*rpy)
        matrix = rpy_to_matrix(torch.tensor(rpy))
        assert np.allclose(matrix.numpy(), expected, atol=1e-12)
        assert np.allclose(matrix_to_rpy(matrix).numpy(), pin.rpy.matrixToRpy(expected), atol=1e-9)


def test_an_action_composes_in_the_world_frame_and_the_difference_recovers_it():
    pose = torch.tensor([0.4, -0.1, 0.3, 0.2, -0.3, 1.0, 0.5], dtype=torch.float64)
    action = torch.tensor([0.02, 0.0, -0.01, 0.0, 0.0, 0.1, 0.3], dtype=torch.float64)
    after = compose_pose(pose, action)
    assert torch.allclose(after[:3], pose[:3] + action[:3])
    expected = pin.rpy.rpyToMatrix(*action[3:6].numpy()) @ pin.rpy.rpyToMatrix(*pose[3:6].numpy())
    assert np.allclose(rpy_to_matrix(after[3:6]).numpy(), expected, atol=1e-12)
    assert after[6] == pytest.approx(0.8)
    assert torch.allclose(pose_difference(pose, after), action, atol=1e-12)
    assert compose_pose(pose, torch.tensor([0, 0, 0, 0, 0, 0, 0.9], dtype=torch.float64))[6] == 1.0  # clipped closed
