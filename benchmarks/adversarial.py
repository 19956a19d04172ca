"""Malformed inputs an attacker or a careless integrator sends: shared by benchmarks/fuzz.py and the tests.

Compressed images that declare another size than their data holds are made the way an attacker
makes them: a real encoder's output with the size fields of its header rewritten.
"""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np


def encoded(image: np.ndarray, fmt: str) -> bytes:
    """uint8 [H, W, 3] (BGR, as OpenCV takes it) encoded as 'png' or 'jpeg'."""
    ok, data = cv2.imencode(".png" if fmt == "png" else ".jpg", image)
    assert ok, f"cv2 could not encode a {image.shape} image as {fmt}"
    return data.tobytes()


def declare_size(data: bytes, width: int, height: int) -> bytes:
    """A PNG or JPEG whose header declares ``width`` x ``height`` pixels, whatever its data holds."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        # the IHDR chunk comes first: length (4), type (4), width, height, ...; its CRC covers type + body
        body = bytearray(data[12:29])
        body[4:12] = struct.pack(">II", width, height)
        crc = struct.pack(">I", zlib.crc32(bytes(body)) & 0xFFFFFFFF)
        return data[:12] + bytes(body) + crc + data[33:]
    if data[:2] == b"\xff\xd8":
        out, i = bytearray(data), 2
        while i + 4 < len(out):
            marker, length = out[i + 1], struct.unpack(">H", out[i + 2 : i + 4])[0]
            if marker in (0xC0, 0xC1, 0xC2):  # start of frame: precision (1), height (2), width (2)
                out[i + 5 : i + 9] = struct.pack(">HH", height, width)
                return bytes(out)
            i += 2 + length
        raise ValueError("no start-of-frame marker in the JPEG")
    raise ValueError("expected PNG or JPEG data")


def png_bomb(width: int, height: int) -> bytes:
    """A real PNG of ``width`` x ``height`` black grey pixels: a few KB that decode to width * height * 3 bytes."""
    row = b"\x00" + bytes(width)  # filter byte, then one zero byte per pixel
    compressor = zlib.compressobj(9)
    pixels = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
