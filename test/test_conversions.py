"""Message <-> numpy conversions: round trips on real message classes, and bad input refused."""

import array
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage, Image, JointState
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from jepa_ros import conversions as conv
from jepa_ros.conversions import ConversionError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from adversarial import declare_size, encoded, png_bomb  # noqa: E402 - the fuzz benchmark's malformed images

JOINTS = ("joint1", "joint2", "joint3")


@pytest.fixture
def frame() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(6, 5, 3), dtype=np.uint8)


def _raw_image(pixels: np.ndarray, encoding: str, padding: int = 0) -> Image:
    height, width = pixels.shape[:2]
    rows = pixels.reshape(height, -1)
    padded = np.concatenate([rows, np.full((height, padding), 7, np.uint8)], axis=1)
    return Image(
        height=height, width=width, encoding=encoding, step=rows.shape[1] + padding, data=array.array("B", padded.tobytes())
    )


def test_stamps_round_trip():
    for ns in (0, 1, 999_999_999, 1_700_000_000_123_456_789):
        assert conv.stamp_to_ns(conv.ns_to_stamp(ns)) == ns
    assert conv.duration_to_s(conv.s_to_duration(2.25)) == 2.25
    assert conv.stamp_to_ns(conv.clock_message(5_000_000_001).clock) == 5_000_000_001
    with pytest.raises(ConversionError, match="-5"):
        conv.ns_to_stamp(-5)


def test_rgb_image_round_trip(frame):
    msg = conv.rgb_to_image(frame, stamp_ns=42, frame_id="camera_optical_frame")
    assert (msg.encoding, msg.height, msg.width, msg.step) == ("rgb8", 6, 5, 15)
    assert conv.stamp_to_ns(msg.header.stamp) == 42
    np.testing.assert_array_equal(conv.image_to_rgb(msg), frame)


@pytest.mark.parametrize("padding", [0, 3])
def test_every_encoding_with_row_padding(frame, padding):
    alpha = np.full(frame.shape[:2] + (1,), 200, np.uint8)
    cases = {
        "rgb8": frame,
        "bgr8": frame[..., ::-1],
        "rgba8": np.concatenate([frame, alpha], axis=2),
        "bgra8": np.concatenate([frame[..., ::-1], alpha], axis=2),
    }
    for encoding, pixels in cases.items():
        decoded = conv.image_to_rgb(_raw_image(np.ascontiguousarray(pixels), encoding, padding))
        np.testing.assert_array_equal(decoded, frame, err_msg=encoding)
    gray = frame[..., 0].copy()
    decoded = conv.image_to_rgb(_raw_image(gray[..., None], "mono8", padding))
    np.testing.assert_array_equal(decoded, np.repeat(gray[..., None], 3, axis=2))


def test_bad_images_are_refused(frame):
    msg = conv.rgb_to_image(frame)
    msg.encoding = "16UC1"
    with pytest.raises(ConversionError, match="16UC1.*rgb8"):
        conv.image_to_rgb(msg)
    short = conv.rgb_to_image(frame)
    short.data = short.data[:-1]
    with pytest.raises(ConversionError, match="89 bytes; expected step 15 x height 6 = 90"):
        conv.image_to_rgb(short)
    narrow = conv.rgb_to_image(frame)
    narrow.step = 10
    with pytest.raises(ConversionError, match="step 10"):
        conv.image_to_rgb(narrow)
    with pytest.raises(ConversionError, match="expected uint8"):
        conv.rgb_to_image(frame.astype(np.float32))


def test_compressed_images(frame):
    png = conv.rgb_to_compressed(frame, "png")
    np.testing.assert_array_equal(conv.compressed_to_rgb(png), frame)  # lossless
    smooth = np.tile(np.linspace(0, 255, 32, dtype=np.uint8)[None, :, None], (32, 1, 3))
    jpeg = conv.rgb_to_compressed(smooth, "jpeg")
    assert np.abs(conv.compressed_to_rgb(jpeg).astype(int) - smooth).max() < 12
    # image_transport's format string; the payload is encoded from BGR as cv2 does
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(smooth, cv2.COLOR_RGB2BGR))
    msg = CompressedImage(format="rgb8; jpeg compressed bgr8", data=array.array("B", encoded.tobytes()))
    assert conv.compressed_to_rgb(msg).shape == (32, 32, 3)
    with pytest.raises(ConversionError, match="'tiff'"):
        conv.compressed_to_rgb(CompressedImage(format="tiff", data=png.data))
    with pytest.raises(ConversionError, match="not a readable JPEG or PNG"):
        conv.compressed_to_rgb(CompressedImage(format="png", data=array.array("B", b"not a png")))


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_a_compressed_image_declaring_a_huge_size_is_refused_before_decoding(fmt):
    # a 97-byte PNG / 631-byte JPEG declaring 65500 x 65500 made cv2.imdecode raise cv2.error
    small = encoded(np.zeros((16, 16, 3), np.uint8), fmt)
    for size, message in ((65500, "declares too many pixels"), (4000, r"declares 4000x4000 = 16000000 pixels")):
        msg = CompressedImage(format=fmt, data=array.array("B", declare_size(small, size, size)))
        with pytest.raises(ConversionError, match=message):
            conv.compressed_to_rgb(msg)
    bomb = CompressedImage(format="png", data=array.array("B", png_bomb(128, 96)))
    assert conv.compressed_to_rgb(bomb).shape == (96, 128, 3)
    with pytest.raises(ConversionError, match=r"declares 128x96 = 12288 pixels; expected at most 10000"):
        conv.compressed_to_rgb(bomb, max_pixels=10_000)


def test_a_raw_image_larger_than_the_limit_is_refused_naming_its_size(frame):
    with pytest.raises(ConversionError, match=r"declares 5x6 = 30 pixels; expected at most 20"):
        conv.image_to_rgb(conv.rgb_to_image(frame), max_pixels=20)


def test_joint_states_with_very_many_names_are_refused_at_once():
    started = time.perf_counter()
    many = JointState(name=["joint1"] * 60_000, position=[0.0] * 60_000)
    with pytest.raises(ConversionError, match=r"names 60000 joints; expected at most 256"):
        conv.joint_state_positions(many, ("joint1",))
    duplicated = JointState(name=[f"j{i % 100}" for i in range(200)], position=[0.0] * 200)
    with pytest.raises(ConversionError, match=r"names joints more than once: \['j0', 'j1'.* and 90 more"):
        conv.joint_state_positions(duplicated, ("j0",))
    assert time.perf_counter() - started < 1.0  # was 100 s for 60000 duplicated names (a quadratic check)


def test_camera_info():
    info = conv.camera_info({"width": 64, "height": 48, "fx": 50.0, "fy": 51.0, "cx": 32.0, "cy": 24.0}, 7, "cam")
    assert (info.width, info.height, info.header.frame_id) == (64, 48, "cam")
    assert list(info.k) == [50.0, 0.0, 32.0, 0.0, 51.0, 24.0, 0.0, 0.0, 1.0]
    assert info.p[0] == 50.0 and info.p[6] == 24.0
    with pytest.raises(ConversionError, match="fx"):
        conv.camera_info({"width": 64, "height": 48})


def test_joint_state_order_comes_from_names():
    msg = JointState(name=["joint3", "gripper", "joint1", "joint2"], position=[3.0, 9.0, 1.0, 2.0])
    np.testing.assert_array_equal(conv.joint_state_positions(msg, JOINTS), [1.0, 2.0, 3.0])
    back = conv.positions_to_joint_state(np.array([1.0, 2.0, 3.0]), JOINTS, stamp_ns=5, velocities=np.zeros(3))
    assert list(back.name) == list(JOINTS) and list(back.velocity) == [0.0] * 3
    np.testing.assert_array_equal(conv.joint_state_positions(back, JOINTS), [1.0, 2.0, 3.0])


def test_bad_joint_states_are_refused():
    with pytest.raises(ConversionError, match=r"lacks joints \['joint3'\]"):
        conv.joint_state_positions(JointState(name=["joint1", "joint2"], position=[0.0, 0.0]), JOINTS)
    with pytest.raises(ConversionError, match="joint2=nan"):
        conv.joint_state_positions(JointState(name=list(JOINTS), position=[0.0, float("nan"), 0.0]), JOINTS)
    with pytest.raises(ConversionError, match="3 names but 2 positions"):
        conv.joint_state_positions(JointState(name=list(JOINTS), position=[0.0, 0.0]), JOINTS)
    with pytest.raises(ConversionError, match="2 positions for 3 joints"):
        conv.positions_to_joint_state(np.zeros(2), JOINTS)


def test_multiarray_round_trip():
    values = np.array([0.5, -1.25, 3.0])
    np.testing.assert_array_equal(conv.multiarray_to_numpy(conv.numpy_to_multiarray(values)), values)


def test_trajectory_round_trip_and_partial_joints():
    msg = conv.positions_to_trajectory(np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]), JOINTS, time_from_start=0.5)
    times, points = conv.trajectory_points(msg, JOINTS)
    np.testing.assert_allclose(times, [0.5, 1.0])
    np.testing.assert_allclose(points, [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])
    np.testing.assert_allclose(conv.trajectory_target(msg, JOINTS), [0.4, 0.5, 0.6])
    partial = JointTrajectory(joint_names=["joint3", "joint1"], points=[JointTrajectoryPoint(positions=[3.0, 1.0])])
    np.testing.assert_allclose(conv.trajectory_target(partial, JOINTS, current=np.array([0.0, -2.0, 0.0])), [1.0, -2.0, 3.0])
    with pytest.raises(ConversionError, match=r"lacks joints \['joint2'\]"):
        conv.trajectory_target(partial, JOINTS)


def test_bad_trajectories_are_refused():
    unknown = JointTrajectory(joint_names=["joint1", "elbow"], points=[JointTrajectoryPoint(positions=[0.0, 0.0])])
    with pytest.raises(ConversionError, match=r"unknown joints \['elbow'\]; known joints are \['joint1', 'joint2', 'joint3'\]"):
        conv.trajectory_target(unknown, JOINTS)
    with pytest.raises(ConversionError, match="no points"):
        conv.trajectory_target(JointTrajectory(joint_names=list(JOINTS)), JOINTS)
    short = JointTrajectory(joint_names=list(JOINTS), points=[JointTrajectoryPoint(positions=[0.0])])
    with pytest.raises(ConversionError, match="1 positions for 3 joints"):
        conv.trajectory_target(short, JOINTS)
    nan = JointTrajectory(joint_names=list(JOINTS), points=[JointTrajectoryPoint(positions=[0.0, 0.0, float("inf")])])
    with pytest.raises(ConversionError, match="joint3=inf"):
        conv.trajectory_target(nan, JOINTS)


def test_point_stamped():
    msg = conv.point_stamped(np.array([0.1, 0.2, 0.3]), 9, "world")
    np.testing.assert_array_equal(conv.point_to_numpy(msg), [0.1, 0.2, 0.3])
    with pytest.raises(ConversionError, match="2 values"):
        conv.point_stamped(np.zeros(2))
