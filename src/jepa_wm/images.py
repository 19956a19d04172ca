"""Camera images as bytes -> uint8 RGB arrays [H, W, 3]: the one decoding path for messages and bags.

Raw images (sensor_msgs/Image fields: encoding, height, width, step, data) and compressed
images (jpeg / png bytes) are decoded here, whether they come from a live topic or a rosbag.
Every size is checked before any pixel is touched: a compressed image's declared size is read
from its header first, so a few bytes declaring 65500 x 65500 pixels (a decompression bomb)
are refused without decoding them.
"""

from __future__ import annotations

import io
import warnings

import cv2
import numpy as np
import PIL.Image

# 4K UHD: larger than any camera a 2-core controller plans from, small enough to decode in tens of ms
MAX_IMAGE_PIXELS = 3840 * 2160

# encoding -> (channels, cv2 conversion to RGB or None when already RGB)
RAW_ENCODINGS: dict[str, tuple[int, int | None]] = {
    "rgb8": (3, None),
    "bgr8": (3, cv2.COLOR_BGR2RGB),
    "rgba8": (4, cv2.COLOR_RGBA2RGB),
    "bgra8": (4, cv2.COLOR_BGRA2RGB),
    "mono8": (1, cv2.COLOR_GRAY2RGB),
    "8uc1": (1, cv2.COLOR_GRAY2RGB),
    "8uc3": (3, cv2.COLOR_BGR2RGB),  # OpenCV's own order
}


class ImageError(ValueError):
    """Image bytes that cannot be decoded safely: unknown encoding, inconsistent or oversized dimensions."""


def check_size(width: int, height: int, max_pixels: int, what: str) -> None:
    """Refuse a non-positive size, or more than ``max_pixels`` pixels, naming both."""
    if width <= 0 or height <= 0:
        raise ImageError(f"{what} declares {width}x{height} pixels; expected a positive width and height")
    if width * height > max_pixels:
        raise ImageError(
            f"{what} declares {width}x{height} = {width * height} pixels; expected at most {max_pixels} "
            f"(max_image_pixels)"
        )


def raw_to_rgb(
    encoding: str, height: int, width: int, step: int, data: bytes | np.ndarray, what: str = "image",
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> np.ndarray:
    """Raw image fields -> uint8 [H, W, 3] RGB; row padding (step > width * channels) is dropped."""
    key = encoding.lower()
    if key not in RAW_ENCODINGS:
        raise ImageError(f"{what} encoding {encoding!r} is not supported; expected one of {sorted(RAW_ENCODINGS)}")
    channels, to_rgb = RAW_ENCODINGS[key]
    height, width, step = int(height), int(width), int(step)
    check_size(width, height, max_pixels, f"{what} ({encoding})")
    row_bytes = width * channels
    if step < row_bytes:
        raise ImageError(
            f"{what} step {step} is smaller than width {width} x {channels} bytes per pixel ({encoding}) = {row_bytes}"
        )
    buffer = data if isinstance(data, np.ndarray) else np.frombuffer(data, dtype=np.uint8)
    if buffer.size != step * height:
        raise ImageError(
            f"{what} data has {buffer.size} bytes; expected step {step} x height {height} = {step * height} "
            f"for a {width}x{height} {encoding} image"
        )
    pixels = np.ascontiguousarray(buffer.reshape(height, step)[:, :row_bytes].reshape(height, width, channels))
    return pixels if to_rgb is None else cv2.cvtColor(pixels, to_rgb)


def compressed_size(data: bytes | np.ndarray, what: str = "compressed image") -> tuple[str, int, int]:
    """(format, width, height) read from a JPEG / PNG header without decoding the pixels."""
    raw = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PIL.Image.DecompressionBombWarning)
            with PIL.Image.open(io.BytesIO(raw)) as header:  # reads the header only
                return str(header.format).lower(), int(header.width), int(header.height)
    except (PIL.Image.DecompressionBombError, PIL.Image.DecompressionBombWarning) as err:
        raise ImageError(f"{what} ({len(raw)} bytes) declares too many pixels: {err}") from None
    except (PIL.UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise ImageError(f"{what} ({len(raw)} bytes) is not a readable JPEG or PNG: {err}") from None


def compressed_to_rgb(
    fmt: str, data: bytes | np.ndarray, what: str = "compressed image", max_pixels: int = MAX_IMAGE_PIXELS,
) -> np.ndarray:
    """JPEG / PNG bytes (CompressedImage format ``fmt``) -> uint8 [H, W, 3] RGB, size checked before decoding."""
    # image_transport writes e.g. "jpeg", "png" or "rgb8; jpeg compressed bgr8"
    lowered = fmt.lower()
    if fmt and not any(name in lowered for name in ("jpeg", "jpg", "png", "rgb8", "bgr8")):
        raise ImageError(f"{what} format {fmt!r} is not supported; expected 'jpeg' or 'png'")
    buffer = data if isinstance(data, np.ndarray) else np.frombuffer(data, dtype=np.uint8)
    if buffer.size == 0:
        raise ImageError(f"{what} ({fmt!r}) has no data")
    kind, width, height = compressed_size(buffer, f"{what} ({fmt!r})")
    if kind not in ("jpeg", "png"):
        raise ImageError(f"{what} ({fmt!r}) holds a {kind} image; expected JPEG or PNG")
    check_size(width, height, max_pixels, f"{what} ({fmt!r})")
    try:
        bgr = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    except cv2.error as err:
        raise ImageError(f"{what} ({fmt!r}, {buffer.size} bytes) could not be decoded: {err}") from None
    if bgr is None:
        raise ImageError(f"{what} ({fmt!r}, {buffer.size} bytes) could not be decoded")
    if bgr.shape[:2] != (height, width):
        raise ImageError(f"{what} ({fmt!r}) decoded to {bgr.shape[1]}x{bgr.shape[0]}; its header declares {width}x{height}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def rgb_to_compressed_bytes(rgb: np.ndarray, fmt: str = "jpeg", quality: int = 95) -> np.ndarray:
    """uint8 [H, W, 3] RGB -> JPEG (of ``quality``, 0..100) or PNG bytes as uint8 [K]; ImageError names a bad input."""
    if fmt not in ("jpeg", "png"):
        raise ImageError(f"compressed format {fmt!r}: expected 'jpeg' or 'png'")
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ImageError(f"image has dtype {rgb.dtype} and shape {rgb.shape}; expected uint8 [H, W, 3] RGB")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if fmt == "jpeg" else []
    ok, encoded = cv2.imencode(".jpg" if fmt == "jpeg" else ".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ImageError(f"OpenCV could not encode a {rgb.shape} image as {fmt}")
    return encoded.reshape(-1)
