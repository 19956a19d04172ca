"""rosbag2 (and ROS 1) bags in and out with the pure-Python ``rosbags`` library.

Writing: :class:`BagWriter` serialises the messages the project uses to CDR, so the bags
open in ``ros2 bag`` (MCAP by default, sqlite3 on request). Reading: :func:`iter_messages`
yields ``(topic, stamp_ns, payload)`` with the payload decoded to numpy; it reads rosbag2
folders, lone ``.mcap`` / ``.db3`` files and ROS 1 ``.bag`` files. Message objects here are
``rosbags``' own dataclasses: the core never imports rclpy or ROS message packages.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, NamedTuple

import numpy as np
from rosbags.highlevel import AnyReader, AnyReaderError
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from jepa_wm import images
from jepa_wm.data.salvage import describe_readable

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
JOINT_STATE = "sensor_msgs/msg/JointState"
FLOAT64_ARRAY = "std_msgs/msg/Float64MultiArray"
JOINT_TRAJECTORY = "trajectory_msgs/msg/JointTrajectory"
POINT_STAMPED = "geometry_msgs/msg/PointStamped"
POSE_STAMPED = "geometry_msgs/msg/PoseStamped"
SUPPORTED_TYPES = (IMAGE, COMPRESSED_IMAGE, CAMERA_INFO, JOINT_STATE, FLOAT64_ARRAY, JOINT_TRAJECTORY, POINT_STAMPED,
                   POSE_STAMPED)

# Kilted matches the ROS 2 wheels used here; these types are identical across ROS 2 distros.
TYPESTORE = get_typestore(Stores.ROS2_KILTED)
_ZERO = QosTime(0, 0)
# What `ros2 bag record` stores for a SensorDataQoS publisher and for a default (reliable) one.
SENSOR_QOS = Qos(QosHistory.KEEP_LAST, 5, QosReliability.BEST_EFFORT, QosDurability.VOLATILE,
                 _ZERO, _ZERO, QosLiveliness.AUTOMATIC, _ZERO, False)
RELIABLE_QOS = Qos(QosHistory.KEEP_LAST, 10, QosReliability.RELIABLE, QosDurability.VOLATILE,
                   _ZERO, _ZERO, QosLiveliness.AUTOMATIC, _ZERO, False)
_SENSOR_TYPES = {IMAGE, COMPRESSED_IMAGE, JOINT_STATE}


class BagError(ValueError):
    """A bag is missing, truncated, corrupt, or lacks what was asked of it."""


class JointStateSample(NamedTuple):
    """Decoded sensor_msgs/JointState; arrays may be empty when the message left them out."""

    names: tuple[str, ...]
    positions: np.ndarray  # float64 [J] rad
    velocities: np.ndarray  # float64 [J] or [0]
    efforts: np.ndarray  # float64 [J] or [0]


class TrajectorySample(NamedTuple):
    """Decoded trajectory_msgs/JointTrajectory."""

    joint_names: tuple[str, ...]
    positions: np.ndarray  # float64 [P, J] rad, one row per trajectory point
    times_from_start: np.ndarray  # float64 [P] s


class CameraInfoSample(NamedTuple):
    """Decoded sensor_msgs/CameraInfo."""

    width: int
    height: int
    k: np.ndarray  # float64 [3, 3]
    d: np.ndarray  # float64 [n]
    distortion_model: str


class BagMessage(NamedTuple):
    """One decoded message: header stamp when the message has a non-zero one, else the log time."""

    topic: str
    msgtype: str
    stamp_ns: int
    log_time_ns: int
    payload: Any  # np.ndarray or one of the *Sample tuples above


# ---------------------------------------------------------------------------------------
# writing


def _stamp(stamp_ns: int) -> Any:
    if stamp_ns < 0:
        raise BagError(f"stamp_ns={stamp_ns}: expected a non-negative time in nanoseconds")
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return TYPESTORE.types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec)


def _header(stamp_ns: int, frame_id: str) -> Any:
    return TYPESTORE.types["std_msgs/msg/Header"](stamp=_stamp(stamp_ns), frame_id=frame_id)


def _duration(seconds: float) -> Any:
    sec, nanosec = divmod(int(round(seconds * 1e9)), 1_000_000_000)
    return TYPESTORE.types["builtin_interfaces/msg/Duration"](sec=sec, nanosec=nanosec)


def _f64(values: Sequence[float] | np.ndarray | None, what: str) -> np.ndarray:
    # contiguous: the CDR serializer views the buffer (a reversed or strided slice would fail there)
    array = np.ascontiguousarray(np.asarray([] if values is None else values, dtype=np.float64).reshape(-1))
    if not np.all(np.isfinite(array)):
        raise BagError(f"{what}={array.tolist()}: expected finite numbers")
    return array


class BagWriter:
    """Context manager writing one rosbag2 (a folder with metadata.yaml) in CDR."""

    def __init__(self, path: str | Path, storage: Literal["mcap", "sqlite3"] = "mcap") -> None:
        if storage not in ("mcap", "sqlite3"):
            raise BagError(f"storage={storage!r}: expected 'mcap' or 'sqlite3'")
        self.path = Path(path)
        if self.path.exists():
            raise BagError(f"{self.path} exists already: a bag is written into a new folder")
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        self._writer = Writer(self.path, version=Writer.VERSION_LATEST, storage_plugin=plugin)
        self._connections: dict[tuple[str, str], Any] = {}

    def __enter__(self) -> BagWriter:
        self._writer.open()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._writer.__exit__(exc_type, exc, tb)

    def _connection(self, topic: str, msgtype: str) -> Any:
        key = (topic, msgtype)
        if key not in self._connections:
            for other_topic, other_type in self._connections:
                if other_topic == topic:
                    raise BagError(f"{self.path}: topic {topic} already holds {other_type}, not {msgtype}")
            if msgtype not in TYPESTORE.fielddefs:
                raise BagError(f"{topic}: message type {msgtype} is not in rosbags' ROS 2 Kilted type store, so its "
                               "definition cannot be written to the bag")
            qos = SENSOR_QOS if msgtype in _SENSOR_TYPES else RELIABLE_QOS
            self._connections[key] = self._writer.add_connection(
                topic, msgtype, typestore=TYPESTORE, offered_qos_profiles=[qos])
        return self._connections[key]

    def _write(self, topic: str, msgtype: str, stamp_ns: int, message: Any) -> None:
        self._writer.write(self._connection(topic, msgtype), int(stamp_ns), TYPESTORE.serialize_cdr(message, msgtype))

    def write_serialized(self, topic: str, msgtype: str, log_time_ns: int, data: bytes) -> None:
        """Write one message exactly as received: CDR with its encapsulation header (an rclpy raw subscription's bytes)."""
        if len(data) < 4 or data[0] != 0 or data[1] not in (0, 1):
            raise BagError(f"{topic}: {len(data)} bytes starting {bytes(data[:4]).hex()}: expected CDR "
                           "(a 4-byte encapsulation header 00 00 or 00 01, then the message)")
        self._writer.write(self._connection(topic, msgtype), int(log_time_ns), bytes(data))

    def write_image(self, topic: str, stamp_ns: int, image: np.ndarray, frame_id: str = "camera_optical_frame",
                    encoding: Literal["rgb8", "bgr8", "mono8"] = "rgb8") -> None:
        """Write sensor_msgs/Image from uint8 [H, W, 3] RGB (or [H, W] for mono8)."""
        image = np.asarray(image)
        channels = 1 if encoding == "mono8" else 3
        expected_ndim = 2 if channels == 1 else 3
        if image.dtype != np.uint8 or image.ndim != expected_ndim or (channels == 3 and image.shape[2] != 3):
            raise BagError(f"image dtype={image.dtype} shape={image.shape}: expected uint8 "
                           f"{'[H, W]' if channels == 1 else '[H, W, 3] RGB'} for encoding {encoding}")
        if encoding == "bgr8":
            image = image[..., ::-1]
        elif encoding not in ("rgb8", "mono8"):
            raise BagError(f"encoding={encoding!r}: expected 'rgb8', 'bgr8' or 'mono8'")
        height, width = image.shape[:2]
        message = TYPESTORE.types[IMAGE](
            header=_header(stamp_ns, frame_id), height=height, width=width, encoding=encoding,
            is_bigendian=0, step=width * channels, data=np.ascontiguousarray(image).reshape(-1))
        self._write(topic, IMAGE, stamp_ns, message)

    def write_compressed_image(self, topic: str, stamp_ns: int, image: np.ndarray,
                               fmt: Literal["jpeg", "png"] = "jpeg", quality: int = 90,
                               frame_id: str = "camera_optical_frame") -> None:
        """Write sensor_msgs/CompressedImage, encoding uint8 [H, W, 3] RGB as JPEG or PNG."""
        try:
            encoded = images.rgb_to_compressed_bytes(image, fmt, quality)
        except images.ImageError as err:
            raise BagError(f"{topic}: {err}") from None
        message = TYPESTORE.types[COMPRESSED_IMAGE](
            header=_header(stamp_ns, frame_id), format=f"rgb8; {fmt} compressed bgr8", data=encoded.reshape(-1))
        self._write(topic, COMPRESSED_IMAGE, stamp_ns, message)

    def write_camera_info(self, topic: str, stamp_ns: int, width: int, height: int, fx: float, fy: float,
                          cx: float, cy: float, frame_id: str = "camera_optical_frame") -> None:
        """Write sensor_msgs/CameraInfo for an undistorted pinhole camera."""
        k = np.array([fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0])
        p = np.array([fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0])
        roi = TYPESTORE.types["sensor_msgs/msg/RegionOfInterest"](
            x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
        message = TYPESTORE.types[CAMERA_INFO](
            header=_header(stamp_ns, frame_id), height=int(height), width=int(width), distortion_model="plumb_bob",
            d=np.zeros(5), k=k, r=np.eye(3).reshape(-1), p=p, binning_x=0, binning_y=0, roi=roi)
        self._write(topic, CAMERA_INFO, stamp_ns, message)

    def write_joint_state(self, topic: str, stamp_ns: int, names: Sequence[str], positions: Sequence[float] | np.ndarray,
                          velocities: Sequence[float] | np.ndarray | None = None,
                          efforts: Sequence[float] | np.ndarray | None = None) -> None:
        """Write sensor_msgs/JointState; positions are in the order of ``names``."""
        positions = _f64(positions, "joint_state.position")
        if len(names) != len(positions):
            raise BagError(f"joint_state has {len(names)} names {list(names)} but {len(positions)} positions")
        message = TYPESTORE.types[JOINT_STATE](
            header=_header(stamp_ns, ""), name=list(names), position=positions,
            velocity=_f64(velocities, "joint_state.velocity"), effort=_f64(efforts, "joint_state.effort"))
        self._write(topic, JOINT_STATE, stamp_ns, message)

    def write_command(self, topic: str, stamp_ns: int, positions: Sequence[float] | np.ndarray) -> None:
        """Write std_msgs/Float64MultiArray (ForwardCommandController); it has no header, so log time = stamp."""
        layout = TYPESTORE.types["std_msgs/msg/MultiArrayLayout"](dim=[], data_offset=0)
        message = TYPESTORE.types[FLOAT64_ARRAY](layout=layout, data=_f64(positions, "command"))
        self._write(topic, FLOAT64_ARRAY, stamp_ns, message)

    def write_trajectory(self, topic: str, stamp_ns: int, joint_names: Sequence[str],
                         positions: Sequence[Sequence[float]] | np.ndarray,
                         times_from_start: Sequence[float] | np.ndarray) -> None:
        """Write trajectory_msgs/JointTrajectory: positions [P, J], times_from_start [P] s."""
        positions = np.asarray(positions, dtype=np.float64)
        positions = positions.reshape(1, -1) if positions.ndim == 1 else positions
        times = _f64(times_from_start, "trajectory.time_from_start")
        if positions.shape != (len(times), len(joint_names)):
            raise BagError(f"trajectory positions shape {positions.shape}: expected "
                           f"({len(times)} points, {len(joint_names)} joints {list(joint_names)})")
        point_type = TYPESTORE.types["trajectory_msgs/msg/JointTrajectoryPoint"]
        empty = np.zeros(0)
        points = [point_type(positions=_f64(row, "trajectory.positions"), velocities=empty, accelerations=empty,
                             effort=empty, time_from_start=_duration(t)) for row, t in zip(positions, times)]
        message = TYPESTORE.types[JOINT_TRAJECTORY](
            header=_header(stamp_ns, ""), joint_names=list(joint_names), points=points)
        self._write(topic, JOINT_TRAJECTORY, stamp_ns, message)

    def write_point(self, topic: str, stamp_ns: int, xyz: Sequence[float] | np.ndarray, frame_id: str = "world") -> None:
        """Write geometry_msgs/PointStamped (m)."""
        x, y, z = _f64(xyz, "point")
        point = TYPESTORE.types["geometry_msgs/msg/Point"](x=x, y=y, z=z)
        self._write(topic, POINT_STAMPED, stamp_ns, TYPESTORE.types[POINT_STAMPED](
            header=_header(stamp_ns, frame_id), point=point))

    def write_planar_pose(self, topic: str, stamp_ns: int, x: float, y: float, yaw: float, z: float = 0.0,
                          frame_id: str = "world") -> None:
        """Write geometry_msgs/PoseStamped of an object on a plane: position (m), turned ``yaw`` rad about z."""
        position = TYPESTORE.types["geometry_msgs/msg/Point"](x=float(x), y=float(y), z=float(z))
        orientation = TYPESTORE.types["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=float(np.sin(yaw / 2)),
                                                                       w=float(np.cos(yaw / 2)))
        pose = TYPESTORE.types["geometry_msgs/msg/Pose"](position=position, orientation=orientation)
        self._write(topic, POSE_STAMPED, stamp_ns, TYPESTORE.types[POSE_STAMPED](header=_header(stamp_ns, frame_id),
                                                                                 pose=pose))


# ---------------------------------------------------------------------------------------
# decoding rosbags message objects to numpy


def decode_image(message: Any, where: str = "") -> np.ndarray:
    """sensor_msgs/Image -> uint8 [H, W, 3] RGB; rows may be padded (step > width * channels)."""
    data = message.data if isinstance(message.data, np.ndarray) else np.frombuffer(message.data, dtype=np.uint8)
    try:
        return images.raw_to_rgb(message.encoding, message.height, message.width, message.step, data, f"{where}image")
    except images.ImageError as err:
        raise BagError(str(err)) from None


def decode_compressed_image(message: Any, where: str = "") -> np.ndarray:
    """sensor_msgs/CompressedImage (jpeg / png) -> uint8 [H, W, 3] RGB; its header is checked before decoding."""
    data = np.asarray(message.data, dtype=np.uint8)
    try:
        return images.compressed_to_rgb(message.format, data, f"{where}compressed image")
    except images.ImageError as err:
        raise BagError(str(err)) from None


def header_stamp_ns(message: Any) -> int:
    """Nanoseconds of ``message.header.stamp``, or 0 when the message has no header."""
    header = getattr(message, "header", None)
    if header is None:
        return 0
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def decode_message(msgtype: str, message: Any, where: str = "") -> Any:
    """A rosbags message object of a supported type -> numpy payload (see BagMessage)."""
    if msgtype == IMAGE:
        return decode_image(message, where)
    if msgtype == COMPRESSED_IMAGE:
        return decode_compressed_image(message, where)
    if msgtype == JOINT_STATE:
        return JointStateSample(tuple(message.name), np.asarray(message.position, dtype=np.float64),
                                np.asarray(message.velocity, dtype=np.float64),
                                np.asarray(message.effort, dtype=np.float64))
    if msgtype == FLOAT64_ARRAY:
        return np.asarray(message.data, dtype=np.float64)
    if msgtype == JOINT_TRAJECTORY:
        names = tuple(message.joint_names)
        positions = np.array([np.asarray(p.positions, dtype=np.float64) for p in message.points]).reshape(-1, len(names))
        times = np.array([p.time_from_start.sec + 1e-9 * p.time_from_start.nanosec for p in message.points])
        return TrajectorySample(names, positions, times)
    if msgtype == POINT_STAMPED:
        return np.array([message.point.x, message.point.y, message.point.z], dtype=np.float64)
    if msgtype == POSE_STAMPED:  # x, y, z (m) and the yaw (rad) of the orientation
        q = message.pose.orientation
        yaw = np.arctan2(2 * (q.w * q.z + q.x * q.y), 1 - 2 * (q.y**2 + q.z**2))
        return np.array([message.pose.position.x, message.pose.position.y, message.pose.position.z, yaw])
    if msgtype == CAMERA_INFO:
        return CameraInfoSample(int(message.width), int(message.height), np.asarray(message.k, dtype=np.float64).reshape(3, 3),
                                np.asarray(message.d, dtype=np.float64), message.distortion_model)
    raise BagError(f"{where}message type {msgtype} is not supported: expected one of {list(SUPPORTED_TYPES)}")


# ---------------------------------------------------------------------------------------
# reading


def _check_bag_path(path: Path) -> None:
    if not path.exists():
        raise BagError(f"bag {path} does not exist")
    if path.is_dir() and not (path / "metadata.yaml").is_file():
        raise BagError(f"{path} is a folder without metadata.yaml: not a rosbag2 bag")
    if path.is_file() and path.suffix not in (".mcap", ".db3", ".bag"):
        raise BagError(f"{path}: unknown bag file type {path.suffix!r}; expected a rosbag2 folder, .mcap, .db3 or .bag")


def _open_reader(path: Path) -> AnyReader:
    _check_bag_path(path)
    reader = AnyReader([path], default_typestore=TYPESTORE)
    try:
        reader.open()
    except Exception as err:  # rosbags, sqlite (apsw) and YAML all raise their own types
        raise BagError(f"bag {path} is truncated or corrupt: {str(err).rstrip('.')}. {describe_readable(path)}") from err
    return reader


class BagReader:
    """One open bag, read as many times as needed (opening parses metadata and types once)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._reader = _open_reader(self.path)
        self.topics: dict[str, str] = {t: i.msgtype or "?" for t, i in sorted(self._reader.topics.items())}

    def __enter__(self) -> BagReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the storage files."""
        self._reader.close()

    def raw_messages(self, topics: Iterable[str] | None = None) -> Iterator[tuple[str, str, int, Any]]:
        """Yield (topic, msgtype, log_time_ns, rosbags message object) in log-time order."""
        wanted = None if topics is None else set(topics)
        if wanted is not None:
            require_topics(self.path, self.topics, sorted(wanted))
        connections = [c for c in self._reader.connections if wanted is None or c.topic in wanted]
        if not connections:
            return
        messages = self._reader.messages(connections=connections)
        counts: Counter[str] = Counter()
        last_time = None
        while True:
            try:
                connection, log_time, raw = next(messages)
                message = self._deserialize(raw, connection.msgtype)
            except StopIteration:
                return
            except Exception as err:  # rosbags, sqlite and zstd each raise their own types
                read = ", ".join(f"{t}: {n}" for t, n in sorted(counts.items())) or "nothing"
                raise BagError(f"bag {self.path} is truncated or corrupt: {str(err).rstrip('.')}. Read before the "
                               f"error: {read}" + (f" (up to log time {last_time} ns)" if last_time is not None else "")
                               ) from err
            counts[connection.topic] += 1
            last_time = log_time
            yield connection.topic, connection.msgtype, log_time, message

    def _deserialize(self, raw: bytes | memoryview, msgtype: str) -> Any:
        try:
            return self._reader.deserialize(raw, msgtype)
        except AnyReaderError as err:
            if not (self._reader.is2 and "size mismatch" in str(err)):
                raise
        # rmw's serialize_message pads to its size estimate; rosbags refuses more than 3 trailing bytes,
        # so such messages are read with the same generated decoder, ignoring the tail.
        msgdef = self._reader.typestore.get_msgdef(msgtype)
        decode = msgdef.deserialize_cdr_le if raw[1] else msgdef.deserialize_cdr_be
        message, _ = decode(memoryview(raw)[4:], 0, msgdef.cls, self._reader.typestore)
        return message

    def messages(self, topics: Iterable[str] | None = None) -> Iterator[BagMessage]:
        """Yield decoded BagMessages of the supported types (others are skipped) in log-time order."""
        for topic, msgtype, log_time, message in self.raw_messages(topics):
            if msgtype in SUPPORTED_TYPES:
                stamp = header_stamp_ns(message) or log_time
                yield BagMessage(topic, msgtype, stamp, log_time, decode_message(msgtype, message, f"{self.path} {topic}: "))


def bag_topics(path: str | Path) -> dict[str, str]:
    """{topic: message type} of a bag."""
    with BagReader(path) as bag:
        return bag.topics


def require_topics(path: str | Path, available: dict[str, str], wanted: dict[str, str] | Iterable[str],
                   counts: dict[str, int] | None = None) -> None:
    """Raise BagError listing the topics a bag has when a wanted topic is absent (or, given ``counts``, empty).

    ``wanted``: topic names, or role -> topic name (the role is said in the message: "/image (camera)").
    """
    named = wanted.items() if isinstance(wanted, dict) else ((None, topic) for topic in wanted)
    missing = [f"{topic} ({role})" if role else topic for role, topic in named
               if topic not in available or (counts is not None and not counts.get(topic))]
    if missing:
        have = ", ".join(f"{topic} ({msgtype})" + (f" x{counts.get(topic, 0)}" if counts is not None else "")
                         for topic, msgtype in sorted(available.items())) or "no topics"
        raise BagError(f"bag {path} has no topic {', '.join(missing)}; it has: {have}")


def iter_messages(path: str | Path, topics: Iterable[str] | None = None) -> Iterator[BagMessage]:
    """Yield decoded BagMessages of the supported types (others are skipped) in log-time order."""
    with BagReader(path) as bag:
        yield from bag.messages(topics)
