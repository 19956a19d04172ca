"""Training-time camera changes (data/augment.py) on rendered frames of the real scene."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jepa_wm.config import ConfigError, TrainConfig
from jepa_wm.data import augment
from jepa_wm.data.augment import augment_frames


@pytest.fixture(scope="module")
def frame() -> torch.Tensor:
    from jepa_wm.config import SimConfig
    from jepa_wm.sim import ArmSim

    with ArmSim(SimConfig(robot="jepa_arm", image_size=64)) as sim:
        return torch.from_numpy(sim.render())  # uint8 [64, 64, 3]


def test_each_frame_gets_its_own_camera_and_room(frame: torch.Tensor) -> None:
    frames = frame[None].repeat(200, 1, 1, 1)  # [200, 64, 64, 3] the same picture
    out = augment_frames(frames, torch.Generator().manual_seed(0))
    assert out.shape == frames.shape and out.dtype == torch.uint8
    unchanged = (out == frames).all(dim=(1, 2, 3))
    assert 0.1 < unchanged.float().mean() < 0.3  # about UNCHANGED_SHARE left as recorded
    changed = out[~unchanged].float()
    brightness = changed.mean(dim=(1, 2, 3)) / frames.float().mean()
    assert brightness.min() < 0.8 and brightness.max() > 1.2  # dimmer and brighter rooms
    assert len({f.numpy().tobytes() for f in out[~unchanged]}) == int((~unchanged).sum())  # all different
    np.testing.assert_array_equal(out, augment_frames(frames, torch.Generator().manual_seed(0)))  # reproducible
    assert not torch.equal(out, augment_frames(frames, torch.Generator().manual_seed(1)))


def test_the_view_moves_only_slightly(frame: torch.Tensor, monkeypatch: pytest.MonkeyPatch) -> None:
    # light, noise and JPEG off: what is left is the shift and turn, a few pixels at most
    monkeypatch.setattr(augment, "LIGHT_GAIN", (1.0, 1.0))
    monkeypatch.setattr(augment, "COLOUR_CAST", 0.0)
    monkeypatch.setattr(augment, "CONTRAST", (1.0, 1.0))
    monkeypatch.setattr(augment, "NOISE_LEVELS", 0.0)
    monkeypatch.setattr(augment, "JPEG_SHARE", 0.0)
    frames = frame[None].repeat(50, 1, 1, 1)
    out = augment_frames(frames, torch.Generator().manual_seed(2)).float()
    side = frame.shape[0]
    limit = int(np.ceil(augment.SHIFT * side + np.radians(augment.TURN_DEG) * side / 2)) + 1
    for image in out:
        # the best integer shift within the limit explains the moved picture far better than none
        errors = {(dy, dx): (image - torch.roll(frame.float(), (dy, dx), (0, 1)))[limit:-limit, limit:-limit].abs().mean()
                  for dy in range(-limit, limit + 1) for dx in range(-limit, limit + 1)}
        assert min(errors.values()) < 10.0  # against 20-30 levels for a picture moved by the limit


def test_refused_where_nothing_is_encoded_and_for_bad_frames() -> None:
    with pytest.raises(ConfigError, match="train.augment=true with train.mode='frozen_encoder'"):
        TrainConfig(mode="frozen_encoder", augment=True)
    with pytest.raises(ValueError, match=r"expected uint8 \[M, H, W, 3\] RGB, got torch.float32"):
        augment_frames(torch.zeros(2, 8, 8, 3), torch.Generator())
