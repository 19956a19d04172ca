"""ROS 2 messages <-> numpy: the only module of jepa_ros that knows message fields.

Images become uint8 RGB arrays [H, W, 3]; joint states and commands become float64
arrays in a caller-given joint-name order (order comes from names, never from array
position); stamps are int64 nanoseconds. Every malformed message raises
``ConversionError`` naming the offending value and what was expected.
"""

from __future__ import annotations

import array
import collections
import math
from collections.abc import Sequence

import numpy as np
from builtin_interfaces.msg import Duration, Time
from geometry_msgs.msg import PointStamped, PoseStamped
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from jepa_wm import images
from jepa_wm.safety import non_finite


class ConversionError(ValueError):
    """A message cannot be converted: wrong size, unknown encoding, missing or bad joints."""


NS_PER_S = 1_000_000_000
# far more joints than any robot has; a message naming more is refused before it is read
MAX_JOINT_NAMES = 256


# ---------------------------------------------------------------------------------------
# time


def stamp_to_ns(stamp: Time) -> int:
    """builtin_interfaces/Time -> int nanoseconds."""
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def ns_to_stamp(ns: int) -> Time:
    """Int nanoseconds (>= 0) -> builtin_interfaces/Time."""
    ns = int(ns)
    if ns < 0:
        raise ConversionError(f"stamp {ns} ns is negative; expected >= 0")
    return Time(sec=ns // NS_PER_S, nanosec=ns % NS_PER_S)


def duration_to_s(duration: Duration) -> float:
    """builtin_interfaces/Duration -> float seconds."""
    return float(duration.sec) + float(duration.nanosec) * 1e-9


def s_to_duration(seconds: float) -> Duration:
    """Float seconds (>= 0) -> builtin_interfaces/Duration."""
    if not math.isfinite(seconds) or seconds < 0:
        raise ConversionError(f"duration {seconds} s: expected a finite value >= 0")
    ns = round(seconds * NS_PER_S)
    return Duration(sec=ns // NS_PER_S, nanosec=ns % NS_PER_S)


def clock_message(ns: int) -> Clock:
    """rosgraph_msgs/Clock for simulated time ``ns``."""
    return Clock(clock=ns_to_stamp(ns))


# ---------------------------------------------------------------------------------------
# images


def image_to_rgb(msg: Image, max_pixels: int = images.MAX_IMAGE_PIXELS) -> np.ndarray:
    """sensor_msgs/Image (rgb8, bgr8, rgba8, bgra8, mono8; row padding allowed) -> uint8 [H, W, 3]."""
    try:
        return images.raw_to_rgb(msg.encoding, msg.height, msg.width, msg.step, msg.data, "image", max_pixels)
    except images.ImageError as err:
        raise ConversionError(str(err)) from None


def compressed_to_rgb(msg: CompressedImage, max_pixels: int = images.MAX_IMAGE_PIXELS) -> np.ndarray:
    """sensor_msgs/CompressedImage (jpeg or png) -> uint8 [H, W, 3] RGB; its header is checked before decoding."""
    try:
        return images.compressed_to_rgb(msg.format, msg.data, "compressed image", max_pixels)
    except images.ImageError as err:
        raise ConversionError(str(err)) from None


def rgb_to_image(rgb: np.ndarray, stamp_ns: int = 0, frame_id: str = "") -> Image:
    """uint8 [H, W, 3] RGB -> sensor_msgs/Image (rgb8, no row padding)."""
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ConversionError(f"frame has dtype {rgb.dtype} and shape {rgb.shape}; expected uint8 [H, W, 3] RGB")
    height, width, _ = rgb.shape
    msg = Image(height=height, width=width, encoding="rgb8", is_bigendian=0, step=width * 3)
    msg.header.stamp = ns_to_stamp(stamp_ns)
    msg.header.frame_id = frame_id
    # array.array skips the per-element checks of the generated setter (fast for large frames)
    msg.data = array.array("B", np.ascontiguousarray(rgb).tobytes())
    return msg


def rgb_to_compressed(rgb: np.ndarray, fmt: str = "jpeg", stamp_ns: int = 0, frame_id: str = "",
                      quality: int = 95) -> CompressedImage:
    """uint8 [H, W, 3] RGB -> sensor_msgs/CompressedImage (jpeg of ``quality``, or png)."""
    try:
        encoded = images.rgb_to_compressed_bytes(rgb, fmt, quality)
    except images.ImageError as err:
        raise ConversionError(f"frame: {err}") from None
    msg = CompressedImage(format=fmt)
    msg.header.stamp = ns_to_stamp(stamp_ns)
    msg.header.frame_id = frame_id
    msg.data = array.array("B", encoded.tobytes())
    return msg


def camera_info(intrinsics: dict[str, float], stamp_ns: int = 0, frame_id: str = "") -> CameraInfo:
    """Pinhole intrinsics (width, height, fx, fy, cx, cy) -> sensor_msgs/CameraInfo without distortion."""
    missing = sorted({"width", "height", "fx", "fy", "cx", "cy"} - set(intrinsics))
    if missing:
        raise ConversionError(f"camera intrinsics lack {missing}; got keys {sorted(intrinsics)}")
    fx, fy, cx, cy = (float(intrinsics[key]) for key in ("fx", "fy", "cx", "cy"))
    msg = CameraInfo(width=int(intrinsics["width"]), height=int(intrinsics["height"]), distortion_model="plumb_bob")
    msg.header.stamp = ns_to_stamp(stamp_ns)
    msg.header.frame_id = frame_id
    msg.d = [0.0] * 5
    msg.k = [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg


# ---------------------------------------------------------------------------------------
# joints


def _check_names(names: Sequence[str], what: str) -> None:
    """Refuse more than MAX_JOINT_NAMES names (before any other work) and duplicated names; linear time."""
    if len(names) > MAX_JOINT_NAMES:
        raise ConversionError(f"{what} names {len(names)} joints; expected at most {MAX_JOINT_NAMES}")
    if len(set(names)) != len(names):
        duplicates = sorted(name for name, count in collections.Counter(names).items() if count > 1)
        raise ConversionError(f"{what} names joints more than once: {duplicates[:10]}"
                              + (f" and {len(duplicates) - 10} more" if len(duplicates) > 10 else ""))


def joint_state_positions(msg: JointState, joint_names: Sequence[str]) -> np.ndarray:
    """sensor_msgs/JointState -> float64 [J] positions in ``joint_names`` order (by name)."""
    _check_names(msg.name, "joint_state")
    if len(msg.position) != len(msg.name):
        raise ConversionError(f"joint_state has {len(msg.name)} names but {len(msg.position)} positions; expected equal")
    index = {name: i for i, name in enumerate(msg.name)}
    missing = [name for name in joint_names if name not in index]
    if missing:
        raise ConversionError(f"joint_state lacks joints {missing}; it names {list(msg.name)}")
    positions = np.array([msg.position[index[name]] for name in joint_names], dtype=np.float64)
    bad = non_finite(positions, joint_names)
    if bad:
        raise ConversionError(f"joint_state has non-finite positions: {', '.join(bad)}")
    return positions


def positions_to_joint_state(
    positions: np.ndarray,
    joint_names: Sequence[str],
    stamp_ns: int = 0,
    velocities: np.ndarray | None = None,
) -> JointState:
    """float [J] positions (and optional velocities) -> sensor_msgs/JointState."""
    positions = np.asarray(positions, dtype=np.float64).reshape(-1)
    if positions.size != len(joint_names):
        raise ConversionError(f"{positions.size} positions for {len(joint_names)} joints {list(joint_names)}")
    msg = JointState(name=list(joint_names), position=positions.tolist())
    if velocities is not None:
        velocities = np.asarray(velocities, dtype=np.float64).reshape(-1)
        if velocities.size != positions.size:
            raise ConversionError(f"{velocities.size} velocities for {positions.size} positions; expected equal")
        msg.velocity = velocities.tolist()
    msg.header.stamp = ns_to_stamp(stamp_ns)
    return msg


def multiarray_to_numpy(msg: Float64MultiArray) -> np.ndarray:
    """std_msgs/Float64MultiArray -> float64 [N] (its flat data)."""
    return np.asarray(msg.data, dtype=np.float64).reshape(-1)


def numpy_to_multiarray(values: np.ndarray) -> Float64MultiArray:
    """float [N] -> std_msgs/Float64MultiArray (flat, no layout), e.g. a ForwardCommandController command."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    return Float64MultiArray(data=array.array("d", values.tobytes()))


def trajectory_points(
    msg: JointTrajectory,
    joint_names: Sequence[str],
    current: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """trajectory_msgs/JointTrajectory -> (times_from_start [P] s, positions [P, J] in ``joint_names`` order).

    Joints the trajectory does not name hold ``current``; without ``current`` every joint must be named.
    """
    _check_names(msg.joint_names, "trajectory")
    unknown = [name for name in msg.joint_names if name not in joint_names]
    if unknown:
        raise ConversionError(f"trajectory names unknown joints {unknown}; known joints are {list(joint_names)}")
    if not msg.points:
        raise ConversionError("trajectory has no points; expected at least one")
    unnamed = [name for name in joint_names if name not in msg.joint_names]
    if unnamed and current is None:
        raise ConversionError(f"trajectory lacks joints {unnamed} and no current positions were given to hold them")
    base = np.zeros(len(joint_names)) if current is None else np.asarray(current, dtype=np.float64).reshape(-1)
    if base.size != len(joint_names):
        raise ConversionError(f"{base.size} current positions for {len(joint_names)} joints")
    columns = [list(joint_names).index(name) for name in msg.joint_names]
    times = np.empty(len(msg.points))
    positions = np.tile(base, (len(msg.points), 1))
    for p, point in enumerate(msg.points):
        if len(point.positions) != len(msg.joint_names):
            raise ConversionError(
                f"trajectory point {p} has {len(point.positions)} positions for {len(msg.joint_names)} joints "
                f"{list(msg.joint_names)}"
            )
        values = np.asarray(point.positions, dtype=np.float64)
        bad = non_finite(values, msg.joint_names)
        if bad:
            raise ConversionError(f"trajectory point {p} has non-finite positions: {', '.join(bad)}")
        positions[p, columns] = values
        times[p] = duration_to_s(point.time_from_start)
    if np.any(np.diff(times) < 0):
        raise ConversionError(f"trajectory times_from_start {times.tolist()} are not increasing")
    return times, positions


def trajectory_target(msg: JointTrajectory, joint_names: Sequence[str], current: np.ndarray | None = None) -> np.ndarray:
    """The last point of a JointTrajectory as float64 [J] target positions in ``joint_names`` order."""
    return trajectory_points(msg, joint_names, current)[1][-1]


def positions_to_trajectory(
    positions: np.ndarray,
    joint_names: Sequence[str],
    time_from_start: float = 0.1,
    stamp_ns: int = 0,
) -> JointTrajectory:
    """float [J] target (or [P, J] waypoints, ``time_from_start`` apart) -> trajectory_msgs/JointTrajectory."""
    waypoints = np.atleast_2d(np.asarray(positions, dtype=np.float64))
    if waypoints.ndim != 2 or waypoints.shape[1] != len(joint_names):
        raise ConversionError(f"positions of shape {np.shape(positions)} for {len(joint_names)} joints; expected [J] or [P, J]")
    msg = JointTrajectory(joint_names=list(joint_names))
    msg.header.stamp = ns_to_stamp(stamp_ns)
    msg.points = [
        JointTrajectoryPoint(positions=row.tolist(), time_from_start=s_to_duration(time_from_start * (p + 1)))
        for p, row in enumerate(waypoints)
    ]
    return msg


def point_stamped(xyz: np.ndarray, stamp_ns: int = 0, frame_id: str = "world") -> PointStamped:
    """float [3] position (m) -> geometry_msgs/PointStamped."""
    xyz = np.asarray(xyz, dtype=np.float64).reshape(-1)
    if xyz.size != 3:
        raise ConversionError(f"point has {xyz.size} values; expected 3 (x, y, z)")
    msg = PointStamped()
    msg.header.stamp = ns_to_stamp(stamp_ns)
    msg.header.frame_id = frame_id
    msg.point.x, msg.point.y, msg.point.z = (float(v) for v in xyz)
    return msg


def planar_pose_stamped(pose: np.ndarray, stamp_ns: int = 0, frame_id: str = "world", z: float = 0.0) -> PoseStamped:
    """An object's pose on a plane, float [3] x, y (m) and yaw (rad) -> geometry_msgs/PoseStamped at height ``z``."""
    pose = np.asarray(pose, dtype=np.float64).reshape(-1)
    if pose.size != 3 or not np.isfinite(pose).all():
        raise ConversionError(f"planar pose {pose.tolist()}: expected 3 finite values (x, y, yaw)")
    msg = PoseStamped()
    msg.header.stamp = ns_to_stamp(stamp_ns)
    msg.header.frame_id = frame_id
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = float(pose[0]), float(pose[1]), float(z)
    msg.pose.orientation.z, msg.pose.orientation.w = math.sin(pose[2] / 2), math.cos(pose[2] / 2)
    return msg


def pose_to_planar(msg: PoseStamped) -> np.ndarray:
    """geometry_msgs/PoseStamped -> float64 [3] x, y (m) and yaw (rad) about z; ConversionError if not finite."""
    q, p = msg.pose.orientation, msg.pose.position
    values = [p.x, p.y, q.x, q.y, q.z, q.w]
    if not all(math.isfinite(v) for v in values) or q.x**2 + q.y**2 + q.z**2 + q.w**2 < 1e-12:
        raise ConversionError(f"pose {values}: expected finite values and a non-zero quaternion")
    yaw = math.atan2(2 * (q.w * q.z + q.x * q.y), 1 - 2 * (q.y**2 + q.z**2))
    return np.array([p.x, p.y, yaw], dtype=np.float64)


def point_to_numpy(msg: PointStamped) -> np.ndarray:
    """geometry_msgs/PointStamped -> float64 [3]."""
    return np.array([msg.point.x, msg.point.y, msg.point.z], dtype=np.float64)
