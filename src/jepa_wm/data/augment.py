"""Camera and room changes drawn per training frame, so the latent learns to ignore them.

Every frame of a training sample gets its own brightness, colour cast, contrast, small shift and turn of
the view, sensor noise and, for some frames, JPEG compression. Context and target frames of one sample
then differ in all of these: the predictor cannot foresee them, so the JEPA objective pays for any of
it the latent keeps, and a goal image taken under one light still matches frames taken under another.
The ranges are those of an ordinary lab camera, not of any robot: they need no tuning per arm.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch

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
    chosen = (torch.rand(frames.shape[0], generator=generator) >= UNCHANGED_SHARE).nonzero().flatten().tolist()
    count, (height, width) = len(chosen), frames.shape[1:3]
    draws = torch.rand(count, 10, generator=generator).double().numpy()  # [C, 10] uniform, one column per change
    # sensor noise, the same on the three channels (luminance noise dominates a colour sensor's)
    noise = torch.randn((count, height, width, 1), generator=generator).numpy()  # [C, H, W, 1]
    qualities = torch.randint(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1, (count,), generator=generator).tolist()
    low, high = (math.log(g) for g in LIGHT_GAIN)
    levels = np.arange(256, dtype=np.float64)
    changed = []
    for i, index in enumerate(chosen):  # per frame with OpenCV: ~0.2 ms at 128 px, where batched torch took ~1 ms
        draw = draws[i]
        turn = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), TURN_DEG * (2 * draw[5] - 1), 1.0)
        turn[:, 2] += SHIFT * (2 * draw[6:8] - 1) * (width, height)
        image = cv2.warpAffine(frames[index].numpy(), turn, (width, height), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
        # light, white balance and contrast as one lookup per channel: gain * (mean + contrast * (x - mean))
        gain = math.exp(low + (high - low) * draw[0]) * (1.0 + COLOUR_CAST * (2 * draw[1:4] - 1))  # [3]
        contrast = CONTRAST[0] + (CONTRAST[1] - CONTRAST[0]) * draw[4]
        mean = float(image.mean())
        table = gain[None, :] * (mean + contrast * (levels[:, None] - mean))  # [256, 3]
        image = cv2.LUT(image, np.clip(table, 0, 255).round().astype(np.uint8).reshape(256, 1, 3))
        image = np.clip(image + np.float32(NOISE_LEVELS * draw[8]) * noise[i], 0, 255).round().astype(np.uint8)
        if draw[9] < JPEG_SHARE:
            encoded = image_bytes.rgb_to_compressed_bytes(image, "jpeg", qualities[i])
            image = image_bytes.compressed_to_rgb("jpeg", encoded, "augmented frame")
        changed.append(torch.from_numpy(image))
    augmented = frames.clone()
    if chosen:
        augmented[chosen] = torch.stack(changed)
    return augmented

