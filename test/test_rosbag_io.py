"""rosbag2 I/O on real bag files: round trips, hand-made `ros2 bag record` layout, broken bags."""

from __future__ import annotations

import dataclasses
import shutil
import sqlite3
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag1 import Writer as Ros1Writer
from rosbags.typesys import Stores, get_typestore

from jepa_wm.data.rosbag_io import (
    TYPESTORE,
    BagError,
    BagWriter,
    bag_topics,
    decode_image,
    iter_messages,
)

NAMES = ["shoulder", "elbow", "wrist"]
RNG = np.random.default_rng(7)
PICTURE = RNG.integers(0, 256, size=(12, 16, 3), dtype=np.uint8)


def _write_every_type(path: Path, storage: str, count: int = 4) -> None:
    with BagWriter(path, storage) as bag:
        for i in range(count):
            stamp = 1_000_000_000 * (100 + i) + 123
            bag.write_image("/camera/image_raw", stamp, PICTURE + i)
            bag.write_image("/camera/bgr", stamp, PICTURE, encoding="bgr8")
            bag.write_image("/camera/mono", stamp, PICTURE[..., 0], encoding="mono8")
            bag.write_compressed_image("/camera/png", stamp, PICTURE, fmt="png")
            bag.write_compressed_image("/camera/jpeg", stamp, np.full((16, 16, 3), 100, np.uint8), fmt="jpeg")
            bag.write_camera_info("/camera/camera_info", stamp, 16, 12, fx=20.0, fy=21.0, cx=8.0, cy=6.0)
            bag.write_joint_state("/joint_states", stamp, NAMES, [0.1 * i, -0.2, 0.3], velocities=[1, 2, 3])
            bag.write_command("/forward_position_controller/commands", stamp, [0.5, 0.6, 0.7 + i])
            bag.write_trajectory("/joint_trajectory_controller/joint_trajectory", stamp, NAMES,
                                 [[0, 0, 0], [0.1, 0.2, 0.3 + i]], [0.1, 0.2])
            bag.write_point("/end_effector_position", stamp, [0.4, -0.1, 0.2 + i])


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_every_message_type_round_trips(tmp_path: Path, storage: str) -> None:
    bag = tmp_path / "bag"
    _write_every_type(bag, storage)
    assert (bag / "metadata.yaml").is_file()
    assert bag_topics(bag)["/camera/png"] == "sensor_msgs/msg/CompressedImage"
    assert len(bag_topics(bag)) == 10
    messages = list(iter_messages(bag))
    assert len(messages) == 40
    by_topic: dict[str, list] = {}
    for message in messages:
        by_topic.setdefault(message.topic, []).append(message)
    assert [m.stamp_ns for m in by_topic["/joint_states"]] == [1_000_000_000 * (100 + i) + 123 for i in range(4)]
    for i in range(4):
        np.testing.assert_array_equal(by_topic["/camera/image_raw"][i].payload, PICTURE + i)
        joint = by_topic["/joint_states"][i].payload
        assert joint.names == tuple(NAMES)
        np.testing.assert_allclose(joint.positions, [0.1 * i, -0.2, 0.3])
        np.testing.assert_allclose(joint.velocities, [1, 2, 3])
        np.testing.assert_allclose(by_topic["/forward_position_controller/commands"][i].payload, [0.5, 0.6, 0.7 + i])
        trajectory = by_topic["/joint_trajectory_controller/joint_trajectory"][i].payload
        np.testing.assert_allclose(trajectory.positions, [[0, 0, 0], [0.1, 0.2, 0.3 + i]])
        np.testing.assert_allclose(trajectory.times_from_start, [0.1, 0.2])
        np.testing.assert_allclose(by_topic["/end_effector_position"][i].payload, [0.4, -0.1, 0.2 + i])
    np.testing.assert_array_equal(by_topic["/camera/bgr"][0].payload, PICTURE)
    np.testing.assert_array_equal(by_topic["/camera/mono"][0].payload, np.repeat(PICTURE[..., :1], 3, axis=2))
    np.testing.assert_array_equal(by_topic["/camera/png"][0].payload, PICTURE)
    assert np.abs(by_topic["/camera/jpeg"][0].payload.astype(int) - 100).max() <= 2
    info = by_topic["/camera/camera_info"][0].payload
    assert (info.width, info.height) == (16, 12)
    np.testing.assert_allclose(info.k, [[20, 0, 8], [0, 21, 6], [0, 0, 1]])


def test_strided_arrays_are_written(tmp_path: Path) -> None:
    # a reversed view (joint order flipped) is not contiguous; the writer must still serialise it
    with BagWriter(tmp_path / "bag") as writer:
        writer.write_joint_state("/joint_states", 5, ["a", "b", "c"], np.arange(3.0)[::-1])
        writer.write_command("/commands", 6, np.arange(6.0)[::2])
    payloads = [message.payload for message in iter_messages(tmp_path / "bag")]
    np.testing.assert_array_equal(payloads[0].positions, [2.0, 1.0, 0.0])
    np.testing.assert_array_equal(payloads[1], [0.0, 2.0, 4.0])


def test_lone_storage_files_and_ros1_bags_read(tmp_path: Path) -> None:
    for storage, suffix in (("mcap", ".mcap"), ("sqlite3", ".db3")):
        _write_every_type(tmp_path / storage, storage, count=2)
        lone = tmp_path / f"lone{suffix}"
        shutil.copy(next((tmp_path / storage).glob(f"*{suffix}")), lone)
        assert len(list(iter_messages(lone, ["/joint_states"]))) == 2
    noetic = get_typestore(Stores.ROS1_NOETIC)
    types = noetic.types
    with Ros1Writer(tmp_path / "old.bag") as bag:
        connection = bag.add_connection("/joint_states", "sensor_msgs/msg/JointState", typestore=noetic)
        header = types["std_msgs/msg/Header"](seq=1, stamp=types["builtin_interfaces/msg/Time"](sec=5, nanosec=7), frame_id="")
        state = types["sensor_msgs/msg/JointState"](header=header, name=["a"], position=np.array([1.5]),
                                                    velocity=np.zeros(0), effort=np.zeros(0))
        bag.write(connection, 5_000_000_009, noetic.serialize_ros1(state, "sensor_msgs/msg/JointState"))
    (message,) = iter_messages(tmp_path / "old.bag")
    assert message.stamp_ns == 5_000_000_007 and message.payload.positions.tolist() == [1.5]


# ---------------------------------------------------------------------------------------
# a bag laid out by hand as `ros2 bag record` (Humble, sqlite3) writes it, CDR packed here


class _Cdr:
    """Little-endian CDR with alignment counted from the end of the 4-byte encapsulation header."""

    def __init__(self) -> None:
        self.body = bytearray()

    def _align(self, size: int) -> None:
        self.body += b"\0" * (-len(self.body) % size)

    def u32(self, value: int) -> None:
        self._align(4)
        self.body += struct.pack("<I", value)

    def i32(self, value: int) -> None:
        self._align(4)
        self.body += struct.pack("<i", value)

    def u8(self, value: int) -> None:
        self.body += struct.pack("<B", value)

    def string(self, text: str) -> None:
        self.u32(len(text) + 1)
        self.body += text.encode() + b"\0"

    def doubles(self, values: list[float]) -> None:
        self.u32(len(values))
        if values:  # an empty sequence is not padded to its element alignment
            self._align(8)
            self.body += struct.pack(f"<{len(values)}d", *values)

    def header(self, stamp_ns: int, frame_id: str) -> None:
        self.i32(stamp_ns // 1_000_000_000)
        self.u32(stamp_ns % 1_000_000_000)
        self.string(frame_id)

    def bytes(self) -> bytes:
        return b"\x00\x01\x00\x00" + bytes(self.body)


def _joint_state_cdr(stamp_ns: int, names: list[str], positions: list[float]) -> bytes:
    cdr = _Cdr()
    cdr.header(stamp_ns, "")
    cdr.u32(len(names))
    for name in names:
        cdr.string(name)
    cdr.doubles(positions)
    cdr.doubles([])
    cdr.doubles([])
    return cdr.bytes()


def _padded_bgr8_cdr(stamp_ns: int, rgb: np.ndarray, step: int) -> bytes:
    height, width = rgb.shape[:2]
    rows = np.zeros((height, step), np.uint8)
    rows[:, : width * 3] = rgb[..., ::-1].reshape(height, -1)
    cdr = _Cdr()
    cdr.header(stamp_ns, "camera_optical_frame")
    cdr.u32(height)
    cdr.u32(width)
    cdr.string("bgr8")
    cdr.u8(0)
    cdr.u32(step)
    cdr.u32(rows.size)
    cdr.body += rows.tobytes()
    return cdr.bytes()


QOS_YAML = ("- history: 3\n  depth: 0\n  reliability: 2\n  durability: 2\n  deadline:\n    sec: 2147483647\n"
            "    nsec: 4294967295\n  lifespan:\n    sec: 2147483647\n    nsec: 4294967295\n  liveliness: 1\n"
            "  liveliness_lease_duration:\n    sec: 2147483647\n    nsec: 4294967295\n"
            "  avoid_ros_namespace_conventions: false")


def _write_record_layout_bag(folder: Path, joint_rows: list[tuple[int, list[str], list[float]]],
                             images: list[tuple[int, np.ndarray]]) -> None:
    folder.mkdir()
    db = sqlite3.connect(folder / "recorded_0.db3")
    db.executescript(
        "CREATE TABLE schema(schema_version INTEGER PRIMARY KEY, ros_distro TEXT NOT NULL);"
        "CREATE TABLE metadata(id INTEGER PRIMARY KEY, metadata_version INTEGER NOT NULL, metadata TEXT NOT NULL);"
        "CREATE TABLE topics(id INTEGER PRIMARY KEY, name TEXT NOT NULL, type TEXT NOT NULL, "
        "serialization_format TEXT NOT NULL, offered_qos_profiles TEXT NOT NULL);"
        "CREATE TABLE messages(id INTEGER PRIMARY KEY, topic_id INTEGER NOT NULL, timestamp INTEGER NOT NULL, "
        "data BLOB NOT NULL);"
        "CREATE INDEX timestamp_idx ON messages (timestamp ASC);"
        "INSERT INTO schema VALUES (3, 'humble');")
    db.execute("INSERT INTO topics VALUES (1, '/joint_states', 'sensor_msgs/msg/JointState', 'cdr', ?)", (QOS_YAML,))
    db.execute("INSERT INTO topics VALUES (2, '/camera/image_raw', 'sensor_msgs/msg/Image', 'cdr', ?)", (QOS_YAML,))
    rows = [(1, stamp + 1000, _joint_state_cdr(stamp, names, positions)) for stamp, names, positions in joint_rows]
    rows += [(2, stamp + 2000, _padded_bgr8_cdr(stamp, image, step=image.shape[1] * 3 + 4)) for stamp, image in images]
    rows.sort(key=lambda row: row[1])
    db.executemany("INSERT INTO messages (topic_id, timestamp, data) VALUES (?, ?, ?)", rows)
    db.commit()
    db.close()
    start = rows[0][1]
    duration = rows[-1][1] - start
    topics = "".join(
        f"    - topic_metadata:\n        name: {name}\n        type: {msgtype}\n        serialization_format: cdr\n"
        f"        offered_qos_profiles: \"{QOS_YAML.replace(chr(10), chr(92) + 'n')}\"\n      message_count: {count}\n"
        for name, msgtype, count in (("/joint_states", "sensor_msgs/msg/JointState", len(joint_rows)),
                                     ("/camera/image_raw", "sensor_msgs/msg/Image", len(images))))
    (folder / "metadata.yaml").write_text(
        "rosbag2_bagfile_information:\n  version: 5\n  storage_identifier: sqlite3\n  duration:\n"
        f"    nanoseconds: {duration}\n  starting_time:\n    nanoseconds_since_epoch: {start}\n"
        f"  message_count: {len(rows)}\n  topics_with_message_count:\n{topics}"
        "  compression_format: \"\"\n  compression_mode: \"\"\n  relative_file_paths:\n    - recorded_0.db3\n"
        f"  files:\n    - path: recorded_0.db3\n      starting_time:\n        nanoseconds_since_epoch: {start}\n"
        f"      duration:\n        nanoseconds: {duration}\n      message_count: {len(rows)}\n")


def test_hand_made_record_layout_reads_like_our_writer(tmp_path: Path) -> None:
    stamps = [1_700_000_000_000_000_000 + k * 100_000_000 for k in range(3)]
    joints = [(s, NAMES, [0.1 * k, 0.2, -0.3]) for k, s in enumerate(stamps)]
    images = [(s, PICTURE + k) for k, s in enumerate(stamps)]
    _write_record_layout_bag(tmp_path / "recorded", joints, images)
    with BagWriter(tmp_path / "ours", "sqlite3") as bag:
        for (stamp, names, positions), (_, image) in zip(joints, images):
            bag.write_joint_state("/joint_states", stamp, names, positions)
            bag.write_image("/camera/image_raw", stamp, image)
    recorded, ours = list(iter_messages(tmp_path / "recorded")), list(iter_messages(tmp_path / "ours"))
    assert bag_topics(tmp_path / "recorded") == bag_topics(tmp_path / "ours")
    assert len(recorded) == len(ours) == 6
    key = lambda m: (m.stamp_ns, m.topic)  # noqa: E731
    for mine, theirs in zip(sorted(ours, key=key), sorted(recorded, key=key)):
        assert (mine.topic, mine.stamp_ns) == (theirs.topic, theirs.stamp_ns)
        if mine.topic == "/camera/image_raw":
            np.testing.assert_array_equal(mine.payload, theirs.payload)  # padded bgr8 rows decode to the same RGB
        else:
            assert mine.payload.names == theirs.payload.names
            np.testing.assert_array_equal(mine.payload.positions, theirs.payload.positions)
    # our CDR is byte-identical to the hand-packed one
    assert TYPESTORE.serialize_cdr(TYPESTORE.deserialize_cdr(_joint_state_cdr(5, NAMES, [1, 2, 3]), "sensor_msgs/msg/JointState"),
                                   "sensor_msgs/msg/JointState") == _joint_state_cdr(5, NAMES, [1, 2, 3])


# ---------------------------------------------------------------------------------------
# image decoding


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8", "mono8"])
def test_image_encodings_with_row_padding(encoding: str) -> None:
    height, width = PICTURE.shape[:2]
    channels = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}[encoding]
    source = {"rgb8": PICTURE, "bgr8": PICTURE[..., ::-1], "rgba8": np.dstack([PICTURE, PICTURE[..., :1]]),
              "bgra8": np.dstack([PICTURE[..., ::-1], PICTURE[..., :1]]), "mono8": PICTURE[..., :1]}[encoding]
    step = width * channels + 5  # padded rows, as some camera drivers send
    rows = np.full((height, step), 77, np.uint8)
    rows[:, : width * channels] = source.reshape(height, -1)
    image = TYPESTORE.types["sensor_msgs/msg/Image"](
        header=TYPESTORE.types["std_msgs/msg/Header"](stamp=TYPESTORE.types["builtin_interfaces/msg/Time"](sec=0, nanosec=0),
                                                      frame_id=""),
        height=height, width=width, encoding=encoding, is_bigendian=0, step=step, data=rows.reshape(-1))
    expected = np.repeat(PICTURE[..., :1], 3, axis=2) if encoding == "mono8" else PICTURE
    np.testing.assert_array_equal(decode_image(image), expected)
    with pytest.raises(BagError, match="yuv422"):
        decode_image(dataclasses.replace(image, encoding="yuv422"))


# ---------------------------------------------------------------------------------------
# broken bags


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_truncated_bag_names_the_file_and_what_could_be_read(tmp_path: Path, storage: str) -> None:
    bag = tmp_path / "broken"
    _write_every_type(bag, storage)
    (storage_file,) = [p for p in bag.iterdir() if p.suffix in (".mcap", ".db3")]
    data = storage_file.read_bytes()
    storage_file.write_bytes(data[: len(data) // 2])
    with pytest.raises(BagError) as error:
        list(iter_messages(bag))
    message = str(error.value)
    assert str(bag) in message and "truncated or corrupt" in message
    assert "metadata.yaml lists" in message and "/joint_states: 4" in message
    assert storage_file.name in message


def test_corrupt_mcap_chunk_and_missing_bag_fail_clearly(tmp_path: Path) -> None:
    bag = tmp_path / "corrupt"
    _write_every_type(bag, "mcap")
    (storage_file,) = bag.glob("*.mcap")
    data = bytearray(storage_file.read_bytes())
    data[-28:-20] = struct.pack("<Q", len(data) * 2)  # the footer's summary offset now points past the end
    storage_file.write_bytes(bytes(data))
    with pytest.raises(BagError, match=f"{bag}.*(truncated or corrupt)"):
        list(iter_messages(bag))
    with pytest.raises(BagError, match="does not exist"):
        bag_topics(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BagError, match="without metadata.yaml"):
        bag_topics(tmp_path / "empty")


def test_missing_topic_lists_the_topics_present(tmp_path: Path) -> None:
    with BagWriter(tmp_path / "bag") as bag:
        bag.write_joint_state("/joint_states", 1, NAMES, [0, 0, 0])
    with pytest.raises(BagError, match=r"no topic /camera/image_raw; it has: /joint_states \(sensor_msgs/msg/JointState\)"):
        list(iter_messages(tmp_path / "bag", ["/camera/image_raw", "/joint_states"]))


def test_writer_refuses_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BagError, match="storage='rosbag'"):
        BagWriter(tmp_path / "x", storage="rosbag")  # type: ignore[arg-type]
    with BagWriter(tmp_path / "bag") as bag:
        with pytest.raises(BagError, match="3 names .* 2 positions"):
            bag.write_joint_state("/joint_states", 1, NAMES, [0, 0])
        with pytest.raises(BagError, match="finite"):
            bag.write_command("/cmd", 1, [0.0, float("nan")])
        with pytest.raises(BagError, match=r"expected uint8 \[H, W, 3\] RGB"):
            bag.write_image("/img", 1, np.zeros((4, 4), np.float32))
        with pytest.raises(BagError, match="3 bytes starting 7b2278: expected CDR"):
            bag.write_serialized("/cmd", "std_msgs/msg/Float64MultiArray", 1, b'{"x')
        with pytest.raises(BagError, match="my_msgs/msg/Thing is not in rosbags' ROS 2 Kilted type store"):
            bag.write_serialized("/thing", "my_msgs/msg/Thing", 1, b"\x00\x01\x00\x00")
    with pytest.raises(BagError, match="exists already"):
        BagWriter(tmp_path / "bag")


def test_cdr_matches_the_ros2_serializer(tmp_path: Path) -> None:
    """Our CDR deserialises with ROS 2's own (rmw) typesupport; bytes serialised by rmw read back the same."""
    serialization = pytest.importorskip("rclpy.serialization")
    from geometry_msgs.msg import PointStamped
    from rosbags.rosbag2 import Reader, Writer
    from sensor_msgs.msg import CameraInfo, CompressedImage, Image, JointState
    from std_msgs.msg import Float64MultiArray
    from trajectory_msgs.msg import JointTrajectory

    ros_types = {"sensor_msgs/msg/Image": Image, "sensor_msgs/msg/CompressedImage": CompressedImage,
                 "sensor_msgs/msg/CameraInfo": CameraInfo, "sensor_msgs/msg/JointState": JointState,
                 "std_msgs/msg/Float64MultiArray": Float64MultiArray,
                 "trajectory_msgs/msg/JointTrajectory": JointTrajectory, "geometry_msgs/msg/PointStamped": PointStamped}
    _write_every_type(tmp_path / "ours", "mcap", count=2)
    with Reader(tmp_path / "ours") as reader, Writer(tmp_path / "rmw", version=9) as writer:
        connections = {}
        for connection, log_time, raw in reader.messages():
            message = serialization.deserialize_message(bytes(raw), ros_types[connection.msgtype])
            if connection.msgtype == "sensor_msgs/msg/JointState":
                assert list(message.name) == NAMES and message.header.stamp.sec in (100, 101)
                assert message.header.stamp.nanosec == 123
            if connection.topic == "/camera/image_raw" and message.header.stamp.sec == 100:
                assert (message.height, message.width, message.encoding, message.step) == (12, 16, "rgb8", 48)
                np.testing.assert_array_equal(np.frombuffer(bytes(message.data), np.uint8).reshape(12, 16, 3), PICTURE)
            if connection.msgtype == "trajectory_msgs/msg/JointTrajectory":
                assert message.points[1].time_from_start.nanosec == 200_000_000
            if connection.topic not in connections:
                connections[connection.topic] = writer.add_connection(connection.topic, connection.msgtype,
                                                                      typestore=TYPESTORE)
            # rmw's own bytes (alignment padding and a padded tail included), as `ros2 bag record` stores them
            writer.write(connections[connection.topic], log_time, serialization.serialize_message(message))
    assert {c.msgtype for c in connections.values()} == set(ros_types)
    for mine, theirs in zip(iter_messages(tmp_path / "ours"), iter_messages(tmp_path / "rmw"), strict=True):
        assert (mine.topic, mine.stamp_ns) == (theirs.topic, theirs.stamp_ns)
        fields = zip(mine.payload, theirs.payload) if isinstance(mine.payload, tuple) else [(mine.payload, theirs.payload)]
        for a, b in fields:
            np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------------------
# an MCAP laid out by hand as `ros2 bag record` leaves it when killed: zstd chunks, no summary


def _string(text: str) -> bytes:
    return struct.pack("<I", len(text.encode())) + text.encode()


def _record(opcode: int, body: bytes) -> bytes:
    return struct.pack("<BQ", opcode, len(body)) + body


def _write_unindexed_mcap(path: Path, stamps: list[int], per_chunk: int) -> None:
    """Header, schema and channel records, zstd chunks of JointState messages, DataEnd, a footer with no summary."""
    from backports import zstd

    msgdef, _ = TYPESTORE.generate_msgdef("sensor_msgs/msg/JointState", ros_version=2)
    qos = _string("offered_qos_profiles") + _string(QOS_YAML)
    out = b"\x89MCAP0\r\n" + _record(0x01, _string("ros2") + _string("rosbag2"))
    out += _record(0x03, struct.pack("<H", 1) + _string("sensor_msgs/msg/JointState") + _string("ros2msg")
                   + _string(msgdef))
    out += _record(0x04, struct.pack("<HH", 1, 1) + _string("/joint_states") + _string("cdr")
                   + struct.pack("<I", len(qos)) + qos)
    for first in range(0, len(stamps), per_chunk):
        chunk_stamps = stamps[first: first + per_chunk]
        records = b"".join(
            _record(0x05, struct.pack("<HIQQ", 1, first + i, stamp, stamp) + _joint_state_cdr(stamp, NAMES, [0.1 * (first + i), 0.0, 0.0]))
            for i, stamp in enumerate(chunk_stamps))
        compressed = zstd.compress(records)
        out += _record(0x06, struct.pack("<QQQI", chunk_stamps[0], chunk_stamps[-1], len(records), zlib.crc32(records))
                       + _string("zstd") + struct.pack("<Q", len(compressed)) + compressed)
    out += _record(0x0F, struct.pack("<I", 0))
    out += _record(0x02, struct.pack("<QQI", 0, 0, 0)) + b"\x89MCAP0\r\n"
    path.write_bytes(out)


def test_unindexed_zstd_mcap_reads_and_a_cut_one_reports_the_complete_chunks(tmp_path: Path) -> None:
    stamps = [1_000_000_000 + k * 10_000_000 for k in range(9)]
    bag = tmp_path / "recorded.mcap"
    _write_unindexed_mcap(bag, stamps, per_chunk=3)
    messages = list(iter_messages(bag))
    assert [m.stamp_ns for m in messages] == stamps
    np.testing.assert_allclose([m.payload.positions[0] for m in messages], 0.1 * np.arange(9))
    assert bag_topics(bag) == {"/joint_states": "sensor_msgs/msg/JointState"}

    data = bag.read_bytes()
    cut = tmp_path / "killed.mcap"
    cut.write_bytes(data[: len(data) - 60])  # the recorder died inside the last chunk
    with pytest.raises(BagError) as error:
        list(iter_messages(cut))
    assert "killed.mcap" in str(error.value) and "truncated or corrupt" in str(error.value)
    assert "holds readable messages {/joint_states: 6} before a record cut off" in str(error.value)
