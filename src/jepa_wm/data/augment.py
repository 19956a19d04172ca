"""Camera and room changes drawn per training frame, so the latent learns to ignore them.

Every frame of a training sample gets its own brightness, colour cast, contrast, small shift and turn of
the view, sensor noise and, for some frames, JPEG compression. Context and target frames of one sample
then differ in all of these: the predictor cannot foresee them, so the JEPA objective pays for any of
it the latent keeps, and a goal image taken under one light still matches frames taken under another.
The ranges are those of an ordinary lab camera, not of any robot: they need no tuning per arm.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from jepa_wm import images as image_bytes

LIGHT_GAIN = (0.55, 1.6)  # overall brightness, times (drawn log-uniform)
COLOUR_CAST = 0.12  # per-channel gain 1 +- this (white balance)
CONTRAST = (0.7, 1.3)  # contrast about the frame's mean, times
SHIFT = 0.03  # the view moves by up to this fraction of the image side, each way
TURN_DEG = 3.0  # and turns about its centre by up to this
NOISE_LEVELS = 6.0  # sensor noise std, up to this many 8-bit levels
JPEG_SHARE = 0.3  # frames sent through JPEG
JPEG_QUALITY = (40, 95)
UNCHANGED_SHARE = 0.2  # frames left as recorded


def augment_frames(frames: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """uint8 RGB frames [M, H, W, 3] -> the same frames as another camera and room would show them, each its own draw.

    Deterministic for a generator state; a share ``UNCHANGED_SHARE`` of the frames is returned as given.
    """
    if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames: expected uint8 [M, H, W, 3] RGB, got {frames.dtype} {tuple(frames.shape)}")
    chosen = (torch.rand(frames.shape[0], generator=generator) >= UNCHANGED_SHARE).nonzero().flatten()  # [C]
    count = len(chosen)
    draws = torch.rand(count, 10, generator=generator)  # [C, 10] uniform, one column per change
    images = frames[chosen].permute(0, 3, 1, 2).float()  # [C, 3, H, W], 0..255

    # light, white balance and contrast in one per-channel gain and offset: gain * (mean + contrast * (x - mean))
    low, high = (math.log(g) for g in LIGHT_GAIN)
    gain = torch.exp(low + (high - low) * draws[:, 0]).view(-1, 1) * (1.0 + COLOUR_CAST * (2.0 * draws[:, 1:4] - 1.0))
    contrast = (CONTRAST[0] + (CONTRAST[1] - CONTRAST[0]) * draws[:, 4]).view(-1, 1)  # [C, 1]
    mean = images.mean(dim=(1, 2, 3)).view(-1, 1)  # [C, 1]
    scale, offset = gain * contrast, gain * (1.0 - contrast) * mean  # [C, 3]

    angle = torch.deg2rad(TURN_DEG * (2.0 * draws[:, 5] - 1.0))  # [C]
    shift = 2.0 * SHIFT * (2.0 * draws[:, 6:8] - 1.0)  # [C, 2] in affine_grid's [-1, 1] units
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)  # [C, 2, 3]
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    images = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    images = torch.addcmul(offset.view(-1, 3, 1, 1), images, scale.view(-1, 3, 1, 1))

    # sensor noise, the same on the three channels (luminance noise dominates a colour sensor's)
    sigma = NOISE_LEVELS * draws[:, 8]  # [C] 8-bit levels
    noise = torch.randn((count, 1, *images.shape[2:]), generator=generator)  # [C, 1, H, W]
    images = torch.addcmul(images, noise, sigma.view(-1, 1, 1, 1))
    changed = images.clamp_(0.0, 255.0).round_().to(torch.uint8).permute(0, 2, 3, 1).contiguous()  # [C, H, W, 3]

    jpeg = (draws[:, 9] < JPEG_SHARE).nonzero().flatten().tolist()
    if jpeg:
        qualities = torch.randint(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1, (len(jpeg),), generator=generator).tolist()
        for index, quality in zip(jpeg, qualities):
            encoded = image_bytes.rgb_to_compressed_bytes(changed[index].numpy(), "jpeg", quality)
            changed[index] = torch.from_numpy(image_bytes.compressed_to_rgb("jpeg", encoded, "augmented frame"))
    augmented = frames.clone()
    augmented[chosen] = changed
    return augmented

