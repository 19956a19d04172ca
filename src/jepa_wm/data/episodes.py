"""Episodes: a bag's camera frames, joint states and commands aligned on one time grid.

A step is one control period. Frames and joint states are matched to each grid time by
their header stamps (nearest within a tolerance, joint order from names); the action of a
step is the position command in effect over [t, t + period) minus the measured joint
positions at t, or the next step's positions minus this step's when the bag has no
commands. A stream that stops for more than two periods splits the episode there, with a
warning naming the time: nothing is interpolated across a gap.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from jepa_wm import topics
from jepa_wm.data.rosbag_io import (
    COMPRESSED_IMAGE,
    FLOAT64_ARRAY,
    IMAGE,
    JOINT_STATE,
    JOINT_TRAJECTORY,
    POINT_STAMPED,
    BagError,
    BagReader,
    decode_message,
    header_stamp_ns,
    require_topics,
)
from jepa_wm.safety import non_finite

NS = 1_000_000_000
DEFAULT_TOLERANCE_NS = 50_000_000  # 50 ms, capped at half a step


class GapWarning(UserWarning):
    """A stream in a bag stopped for longer than two control periods."""


class ActionWarning(UserWarning):
    """What a bag's actions mean rests on an assumption: the order of unnamed commands, or no commands at all."""


# Below this cosine between a joint's commanded steps and the motion that follows them, commands and
# joints do not belong together: a joint moves the way it is commanded (a correct order reads 0.9 and
# more on the simulated arm; commands taken for another joint read near 0).
MIN_COMMAND_MOTION_AGREEMENT = 0.2
LONG_BAG_STEPS = 300  # steps after which one bag's command/motion cosine decides on its own


@dataclass
class Episode:
    """One time-aligned sequence from one bag (see docs/interfaces.md)."""

    frames: np.ndarray  # uint8 [T, H, W, 3] RGB
    joint_positions: np.ndarray  # float32 [T, J] rad, in joint_names order
    actions: np.ndarray  # float32 [T, J] rad: commanded position minus measured position at step t
    stamps_ns: np.ndarray  # int64 [T]
    joint_names: tuple[str, ...]
    source: str  # bag path it came from
    ee_positions: np.ndarray | None = None  # float32 [T, 3] m, ground truth when the bag has it

    def __post_init__(self) -> None:
        steps, joints = len(self.stamps_ns), len(self.joint_names)
        assert self.frames.dtype == np.uint8 and self.frames.ndim == 4 and self.frames.shape[0] == steps \
            and self.frames.shape[3] == 3, f"{self.source}: frames {self.frames.dtype} {self.frames.shape}, expected uint8 [{steps}, H, W, 3]"
        for name in ("joint_positions", "actions"):
            value = getattr(self, name)
            assert value.dtype == np.float32 and value.shape == (steps, joints), \
                f"{self.source}: {name} {value.dtype} {value.shape}, expected float32 [{steps}, {joints}]"
        assert self.stamps_ns.dtype == np.int64, f"{self.source}: stamps_ns dtype {self.stamps_ns.dtype}, expected int64"
        assert self.ee_positions is None or self.ee_positions.shape == (steps, 3), \
            f"{self.source}: ee_positions shape {self.ee_positions.shape}, expected [{steps}, 3]"

    def __len__(self) -> int:
        return len(self.stamps_ns)

    def steps(self, start: int, stop: int) -> Episode:
        """Steps ``start``..``stop - 1`` as an Episode of their own (arrays sliced, not copied)."""
        ee = None if self.ee_positions is None else self.ee_positions[start:stop]
        return dataclasses.replace(self, frames=self.frames[start:stop], joint_positions=self.joint_positions[start:stop],
                                   actions=self.actions[start:stop], stamps_ns=self.stamps_ns[start:stop],
                                   ee_positions=ee)


@dataclass(frozen=True)
class BagTopics:
    """Topic names in a bag; the command topics and the end-effector topic are optional."""

    image: str = topics.in_bag(topics.CAMERA)
    joint_states: str = topics.in_bag(topics.JOINT_STATES)
    commands: str = topics.in_bag(topics.POSITION_COMMANDS)
    trajectory: str = topics.in_bag(topics.TRAJECTORY_COMMANDS)
    end_effector: str = topics.in_bag(topics.END_EFFECTOR)
    # Joint order of Float64MultiArray commands (they carry no names): the controller's joint list, as a
    # robot preset states it. Empty: the order of the joints read, with an ActionWarning naming it.
    command_joints: tuple[str, ...] = ()
    # What pairs a frame with its joint state: "header" stamps (when the sensor saw it), or "arrival" (when
    # the recorder received it), for a camera that stamps on its own device clock. Arrival adds the
    # transport's latency to every frame: prefer fixing the camera's clock.
    stamps: str = "header"

    def __post_init__(self) -> None:
        if self.stamps not in ("header", "arrival"):
            raise BagError(f"stamps={self.stamps!r}: expected 'header' or 'arrival'")


def resize_frame(image: np.ndarray, image_size: int | None) -> np.ndarray:
    """Centre-crop to a square and resize with INTER_AREA (uint8 [H, W, 3] -> [S, S, 3]); None keeps it."""
    if image_size is None:
        return image
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = image[top: top + side, left: left + side]
    if side == image_size:
        return np.ascontiguousarray(square)
    return cv2.resize(square, (image_size, image_size), interpolation=cv2.INTER_AREA)


def _nearest(stamps: np.ndarray, times: np.ndarray, tolerance_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest stamp for each time (stamps sorted), and whether it lies within tolerance."""
    if len(stamps) == 0:
        return np.zeros(len(times), dtype=np.int64), np.zeros(len(times), dtype=bool)
    right = np.clip(np.searchsorted(stamps, times), 0, len(stamps) - 1)
    left = np.clip(right - 1, 0, len(stamps) - 1)
    index = np.where(np.abs(stamps[left] - times) <= np.abs(stamps[right] - times), left, right)
    return index, np.abs(stamps[index] - times) <= tolerance_ns


def gap_breaks(stamps_ns: np.ndarray, factor: float, step_ns: int | None = None) -> np.ndarray:
    """bool [T-1]: where the spacing of sorted stamps exceeds ``factor`` x the step (default: the median spacing).

    The one gap detector: episodes split at these, evaluation segments at them, replay reports them.
    With fewer than three stamps and no step there is nothing to compare against: no gap.
    """
    spacing = np.diff(np.asarray(stamps_ns, dtype=np.int64))
    if step_ns is None:
        step_ns = int(np.median(spacing)) if spacing.size >= 2 else 0
    if step_ns <= 0:
        return np.zeros(spacing.size, dtype=bool)
    return spacing > factor * step_ns


def _warn_gaps(source: str, name: str, stamps: np.ndarray, step_ns: int, origin_ns: int) -> None:
    for i in np.flatnonzero(gap_breaks(stamps, 2.0, step_ns)):
        start, end = stamps[i], stamps[i + 1]
        warnings.warn(f"{source}: no {name} from t={(start - origin_ns) / NS:.3f} s to t={(end - origin_ns) / NS:.3f} s "
                      f"(stamps {start}..{end} ns, a gap of {(end - start) / NS:.3f} s > 2 periods of "
                      f"{step_ns / NS:.3f} s); the episode is split there", GapWarning, stacklevel=3)


class _Streams:
    """Pass 1 over a bag: every stamp, the joint states and commands; frames stay undecoded."""

    def __init__(self, bag: BagReader, topics: BagTopics, joint_names: tuple[str, ...] | None) -> None:
        path, available = bag.path, bag.topics
        self.image_topic = topics.image
        if topics.image not in available and f"{topics.image}/compressed" in available:
            self.image_topic = f"{topics.image}/compressed"
        require_topics(path, available, [self.image_topic, topics.joint_states])
        expected = {self.image_topic: (IMAGE, COMPRESSED_IMAGE), topics.joint_states: (JOINT_STATE,),
                    topics.commands: (FLOAT64_ARRAY,), topics.trajectory: (JOINT_TRAJECTORY,),
                    topics.end_effector: (POINT_STAMPED,)}
        wanted = [t for t in expected if t in available]
        for topic in wanted:
            if available[topic] not in expected[topic]:
                raise BagError(f"bag {path}: topic {topic} holds {available[topic]}; expected {' or '.join(expected[topic])}")
        self.frame_stamps: list[int] = []
        joint_msgs: list[tuple[int, Any]] = []
        command_msgs: list[tuple[int, str, Any]] = []
        ee: list[tuple[int, np.ndarray]] = []
        by_arrival = topics.stamps == "arrival"
        for topic, msgtype, log_time, message in bag.raw_messages(wanted):
            stamp = log_time if by_arrival else header_stamp_ns(message) or log_time
            if topic == self.image_topic:
                self.frame_stamps.append(stamp)
                continue
            payload = decode_message(msgtype, message, f"{path} {topic}: ")
            if topic == topics.joint_states:
                joint_msgs.append((stamp, payload))
            elif topic == topics.end_effector:
                ee.append((stamp, payload))
            else:
                command_msgs.append((stamp, msgtype, payload))
        if not joint_msgs or not self.frame_stamps:
            raise BagError(f"bag {path}: {len(self.frame_stamps)} frames on {self.image_topic} and {len(joint_msgs)} "
                           f"joint states on {topics.joint_states}; expected both to have messages")
        self.joint_names = joint_names or joint_msgs[0][1].names
        self.order_stated = bool(joint_names or topics.command_joints)
        self.joint_stamps, self.joint_positions = self._joint_matrix(path, joint_msgs, topics.joint_states)
        self.command_stamps, self.commands = self._command_matrix(path, command_msgs, topics)
        self.ee_stamps = np.array([s for s, _ in ee], dtype=np.int64)
        self.ee = np.array([p for _, p in ee]).reshape(-1, 3)

    def _joint_matrix(self, path: Path, messages: list[tuple[int, Any]], topic: str) -> tuple[np.ndarray, np.ndarray]:
        stamps, rows = [], []
        for stamp, sample in messages:
            position_of = dict(zip(sample.names, sample.positions))
            if all(name in position_of for name in self.joint_names):  # other sources (a gripper) are skipped
                stamps.append(stamp)
                rows.append([position_of[name] for name in self.joint_names])
                _require_finite(rows[-1], self.joint_names, f"bag {path}: {topic} at {stamp} ns")
        if not rows:
            raise BagError(f"bag {path}: no joint state names all of {list(self.joint_names)}; "
                           f"the first one names {list(messages[0][1].names)}")
        order = np.argsort(stamps, kind="stable")  # header stamps may arrive out of order
        return np.asarray(stamps, dtype=np.int64)[order], np.asarray(rows, dtype=np.float64)[order]

    def _command_matrix(self, path: Path, messages: list[tuple[int, str, Any]],
                        topics: BagTopics) -> tuple[np.ndarray, np.ndarray]:
        joints = len(self.joint_names)
        self.unnamed_commands = False
        stamps, rows = [], []
        for stamp, msgtype, payload in messages:
            if msgtype == FLOAT64_ARRAY:
                # ForwardCommandController commands carry no names: they are in the controller's joint order.
                order = topics.command_joints or self.joint_names
                if len(payload) != len(order):
                    raise BagError(f"bag {path}: a command at {stamp} ns on {topics.commands} has {len(payload)} "
                                   f"values; expected {len(order)} for the command joints {list(order)}")
                _require_finite(payload, order, f"bag {path}: {topics.commands} at {stamp} ns")
                value_of = dict(zip(order, payload))
                missing = [name for name in self.joint_names if name not in value_of]
                if missing:
                    raise BagError(f"bag {path}: the command joints {list(order)} lack {missing}, read from "
                                   f"{topics.joint_states}; expected the controller's joint list")
                rows.append([value_of[name] for name in self.joint_names])
                self.unnamed_commands = True
            else:
                if len(payload.positions) == 0:
                    continue
                _require_finite(payload.positions[-1], payload.joint_names,
                                f"bag {path}: {topics.trajectory} at {stamp} ns (its last point)")
                target = dict(zip(payload.joint_names, payload.positions[-1]))  # the goal the controller moves to
                rows.append([target.get(name, np.nan) for name in self.joint_names])  # NaN: joint not commanded
            stamps.append(stamp)
        order = np.argsort(stamps, kind="stable")
        return np.asarray(stamps, dtype=np.int64)[order], np.asarray(rows, dtype=np.float64).reshape(-1, joints)[order]


def _require_finite(values: Any, names: tuple[str, ...], where: str) -> None:
    """BagError naming each joint whose value is NaN or infinite (where: bag, topic and stamp)."""
    bad = non_finite(values, names)
    if bad:
        raise BagError(f"{where} has non-finite values: {', '.join(bad)}; expected finite joint positions in rad")


def _check_command_order(path: Path, topics: BagTopics, streams: _Streams, actions: np.ndarray,
                         joint_positions: np.ndarray, valid: np.ndarray, breaks: np.ndarray) -> None:
    """Refuse a bag whose unnamed commands do not move the joints they are taken for; warn when the order is assumed.

    Each joint's commanded steps must point the way the joint then moves: with commands in another
    joint order than assumed, every action lands on the wrong joint and the agreement (a cosine) falls
    to about 0. A joint that hardly moves, or is hardly commanded, is not judged.
    """
    order = list(topics.command_joints or streams.joint_names)
    if not streams.order_stated:
        warnings.warn(f"bag {path}: {topics.commands} (Float64MultiArray) names no joints; its values are taken in the "
                      f"joint states' order {order}. State the controller's joint order (--robot PRESET or "
                      f"--command-joints) when it may differ", ActionWarning, stacklevel=4)
    follows = valid[:-1] & valid[1:] & ~breaks  # steps whose successor is the next step
    motion = joint_positions[1:][follows] - joint_positions[:-1][follows]
    commanded = actions[:-1][follows]
    disagree, judged = _disagreeing_joints(commanded, motion, streams.joint_names, min_steps=10)
    said = (f"commands on {topics.commands} and the motion that follows disagree for joints {', '.join(disagree)} "
            f"(cosine of commanded step and next motion; expected >= {MIN_COMMAND_MOTION_AGREEMENT}); its values were "
            f"taken in the order {order}")
    # Another command order moves two or more joints the wrong way; one joint alone in a short bag is as
    # likely an arm held back by contact for a while. Over a long bag the cosine is sure either way.
    if len(disagree) >= 2 or (disagree and (judged == 1 or len(commanded) >= LONG_BAG_STEPS)):
        raise BagError(f"bag {path}: {said}. Give the controller's joint order (--robot PRESET or --command-joints)")
    if disagree:
        warnings.warn(f"bag {path}: {said}: a joint held back by contact, or a command order that moves it wrongly "
                      f"(the recording as a whole is checked too)", ActionWarning, stacklevel=4)


def _disagreeing_joints(commanded: np.ndarray, motion: np.ndarray, names: tuple[str, ...],
                        min_steps: int) -> tuple[list[str], int]:
    """("<joint> <cosine>" for each joint whose commanded steps [K, J] and following motion [K, J] point apart
    (cosine below MIN_COMMAND_MOTION_AGREEMENT), number of joints judged). A joint that hardly moves or is
    hardly commanded, or fewer than ``min_steps`` steps, is not judged."""
    disagree, judged = [], 0
    for j, name in enumerate(names):
        a, m = commanded[:, j].astype(np.float64), motion[:, j].astype(np.float64)
        size_a, size_m = float(np.sqrt(np.mean(a**2))), float(np.sqrt(np.mean(m**2)))
        if len(a) < min_steps or size_a < 1e-4 or size_m < 1e-4:
            continue
        judged += 1
        agreement = float(np.mean(a * m)) / (size_a * size_m)  # cosine: a joint moves the way it is commanded
        if agreement < MIN_COMMAND_MOTION_AGREEMENT:
            disagree.append(f"{name} {agreement:.2f}")
    return disagree, judged


def check_actions_follow_motion(episodes: list[Episode], where: str) -> None:
    """Refuse a recording whose actions, over all its episodes, do not point where each joint then moves.

    Each bag is checked alone as it is read; a short bag says little, all of them together say enough.
    """
    commanded = np.concatenate([e.actions[:-1] for e in episodes if len(e) > 1])
    motion = np.concatenate([np.diff(e.joint_positions, axis=0) for e in episodes if len(e) > 1])
    names = episodes[0].joint_names
    disagree, _ = _disagreeing_joints(commanded, motion, names, min_steps=1)
    if disagree:
        raise BagError(f"{where}: over {len(episodes)} episodes the actions and the motion that follows disagree for joints "
                       f"{', '.join(disagree)} (cosine; expected >= {MIN_COMMAND_MOTION_AGREEMENT}): the commands are "
                       f"in another joint order than {list(names)}, or the arm was held back for much of it. Give the "
                       f"controller's joint order (--robot PRESET or --command-joints)")


def _segments(valid: np.ndarray, breaks: np.ndarray) -> list[np.ndarray]:
    """Runs of valid grid indices, also cut where ``breaks[i]`` says step i+1 does not follow step i."""
    runs, current = [], []
    for i, ok in enumerate(valid):
        if ok and current and breaks[i - 1]:
            runs.append(np.array(current))
            current = []
        if ok:
            current.append(i)
        elif current:
            runs.append(np.array(current))
            current = []
    if current:
        runs.append(np.array(current))
    return runs


def read_episode_segments(path: str | Path, topics: BagTopics = BagTopics(), period: float | None = None,
                          joint_names: tuple[str, ...] | None = None, image_size: int | None = None,
                          tolerance: float | None = None, min_steps: int = 2) -> list[Episode]:
    """All gap-free runs of a bag as Episodes (period in s; None keeps the camera rate).

    ``tolerance`` (s, default min(period / 2, 0.05)) is how far the matched frame and joint
    state may be from a step's time. Float64MultiArray commands carry no joint names, so
    they are taken in ``joint_names`` order (default: the first joint state's order).
    """
    path = Path(path)
    if period is not None and period <= 0:
        raise BagError(f"period={period}: expected a positive control period in seconds")
    with BagReader(path) as bag:
        return _read_segments(bag, topics, period, tuple(joint_names) if joint_names else None, image_size,
                              tolerance, min_steps)


def _read_segments(bag: BagReader, topics: BagTopics, period: float | None, joint_names: tuple[str, ...] | None,
                   image_size: int | None, tolerance: float | None, min_steps: int) -> list[Episode]:
    path = bag.path
    streams = _Streams(bag, topics, joint_names)
    frame_order = np.argsort(streams.frame_stamps, kind="stable")
    frame_stamps = np.asarray(streams.frame_stamps, dtype=np.int64)[frame_order]
    if period is not None:
        step_ns = int(round(period * NS))
    elif len(frame_stamps) > 1:
        step_ns = int(np.median(np.diff(frame_stamps)))
    else:
        raise BagError(f"bag {path} has a single frame; cannot infer the camera period (pass period=)")
    if step_ns <= 0:
        raise BagError(f"bag {path}: frames on {streams.image_topic} share one stamp; cannot infer a period (pass period=)")
    # A frame or joint state further than this from a grid time does not describe that step.
    tolerance_ns = min(step_ns // 2, DEFAULT_TOLERANCE_NS) if tolerance is None else int(tolerance * NS)
    origin = int(min(frame_stamps[0], streams.joint_stamps[0]))
    _warn_gaps(str(path), f"frames on {streams.image_topic}", frame_stamps, step_ns, origin)
    _warn_gaps(str(path), f"joint states on {topics.joint_states}", streams.joint_stamps, step_ns, origin)

    # The grid is anchored on frames, and spans those with a joint state within tolerance.
    covered = frame_stamps[_nearest(streams.joint_stamps, frame_stamps, tolerance_ns)[1]]
    if len(covered) == 0:
        raise BagError(f"bag {path}: no frame on {streams.image_topic} has a joint state within {tolerance_ns / NS:.3f} s "
                       f"(frames {frame_stamps[0]}..{frame_stamps[-1]} ns, joint states "
                       f"{streams.joint_stamps[0]}..{streams.joint_stamps[-1]} ns); if the camera stamps on its own "
                       "clock, pair by arrival time (--stamps arrival)")
    start, end = int(covered[0]), int(covered[-1])
    if period is not None:
        grid = start + step_ns * np.arange(max(0, (end - start) // step_ns + 1), dtype=np.int64)
    else:
        grid = frame_stamps[(frame_stamps >= start) & (frame_stamps <= end)]
    frame_index, frame_ok = _nearest(frame_stamps, grid, tolerance_ns)
    joint_index, joint_ok = _nearest(streams.joint_stamps, grid, tolerance_ns)
    valid = frame_ok & joint_ok
    breaks = np.diff(grid) > 2 * step_ns
    joint_positions = streams.joint_positions[joint_index]
    has_commands = len(streams.command_stamps) > 0
    if has_commands:
        window_end = np.append(grid[1:], grid[-1] + step_ns) if period is None else grid + step_ns
        window_end = np.minimum(window_end, grid + step_ns)
        command_index = np.searchsorted(streams.command_stamps, window_end, side="left") - 1
        valid &= command_index >= 0  # steps before the first command have no known action
        targets = streams.commands[np.maximum(command_index, 0)]
        targets = np.where(np.isnan(targets), joint_positions, targets)
        actions = targets - joint_positions
        if streams.unnamed_commands:
            _check_command_order(path, topics, streams, actions, joint_positions, valid, breaks)
    else:
        warnings.warn(f"bag {path} has no commands on {topics.commands} or {topics.trajectory}: its actions are the "
                      f"measured joint-position differences between steps, not commands as world_model_node sends "
                      f"them; name the command topic if it has another", ActionWarning, stacklevel=3)

    runs_kept: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]] = []
    runs = _segments(valid, breaks)
    if len(runs) > 1:  # also holes shorter than a reported gap: a step is never made up
        spans = ", ".join(f"{(grid[r[0]] - origin) / NS:.3f}..{(grid[r[-1]] - origin) / NS:.3f} s" for r in runs)
        warnings.warn(f"{path}: steps without a frame or joint state within {tolerance_ns / NS:.3f} s split the "
                      f"bag into runs at t={spans}", GapWarning, stacklevel=3)
    for run in runs:
        if not has_commands:
            run_actions = np.diff(joint_positions[run], axis=0)
            run = run[:-1]  # the last step has no successor to difference against
        else:
            run_actions = actions[run]
        if len(run) < min_steps:
            if len(runs) > 1:
                warnings.warn(f"{path}: dropped a run of {len(run)} steps at t={(grid[run[0]] - origin) / NS:.3f} s "
                              f"(fewer than {min_steps})", GapWarning, stacklevel=2)
            continue
        ee = None
        if len(streams.ee_stamps):
            ee_index, ee_ok = _nearest(streams.ee_stamps, grid[run], tolerance_ns)
            ee = np.where(ee_ok[:, None], streams.ee[ee_index], np.nan).astype(np.float32)
            if not ee_ok.all():
                warnings.warn(f"{path}: {int((~ee_ok).sum())} steps have no {topics.end_effector} within "
                              f"{tolerance_ns / NS:.3f} s; their ee_positions are NaN", GapWarning, stacklevel=2)
        runs_kept.append((run, run_actions, ee))
    return _with_frames(bag, streams, frame_order, frame_index, grid, joint_positions, runs_kept, image_size)


def _with_frames(bag: BagReader, streams: _Streams, frame_order: np.ndarray, frame_index: np.ndarray, grid: np.ndarray,
                 joint_positions: np.ndarray, runs: list[tuple[np.ndarray, np.ndarray, Any]],
                 image_size: int | None) -> list[Episode]:
    """Pass 2: decode only the frames the runs use, resized once."""
    wanted: dict[int, list[tuple[int, int]]] = {}  # message number -> [(run, row)]
    for run_number, (run, _, _) in enumerate(runs):
        for row, step in enumerate(run):
            wanted.setdefault(int(frame_order[frame_index[step]]), []).append((run_number, row))
    frames: list[np.ndarray | None] = [None] * len(runs)
    number = -1
    path = bag.path
    camera_size: tuple[int, int] | None = None  # (H, W) of the bag's first used frame, as recorded
    for topic, msgtype, _, message in bag.raw_messages([streams.image_topic]):
        number += 1
        if number not in wanted:
            continue
        decoded = decode_message(msgtype, message, f"{path} {topic}: ")
        camera_size = camera_size or decoded.shape[:2]
        if decoded.shape[:2] != camera_size:  # one camera, one size: resizing would hide a mix-up
            raise BagError(f"bag {path}: frame {number} on {topic} is {decoded.shape[1]}x{decoded.shape[0]}, "
                           f"earlier frames {camera_size[1]}x{camera_size[0]}; expected one image size per bag")
        image = resize_frame(decoded, image_size)
        for run_number, row in wanted[number]:
            if frames[run_number] is None:
                frames[run_number] = np.empty((len(runs[run_number][0]), *image.shape), np.uint8)
            if frames[run_number].shape[1:] != image.shape:
                raise BagError(f"bag {path}: frame {number} on {topic} is {image.shape[:2]}, earlier ones "
                               f"{frames[run_number].shape[1:3]}; pass image_size to resize them to one size")
            frames[run_number][row] = image
    return [Episode(frames=frames[i], joint_positions=joint_positions[run].astype(np.float32),
                    actions=run_actions.astype(np.float32), stamps_ns=grid[run].astype(np.int64),
                    joint_names=tuple(streams.joint_names), source=str(path), ee_positions=ee)
            for i, (run, run_actions, ee) in enumerate(runs)]


def read_episode(path: str | Path, topics: BagTopics = BagTopics(), period: float | None = None,
                 joint_names: tuple[str, ...] | None = None, image_size: int | None = None,
                 tolerance: float | None = None) -> Episode:
    """One bag as one Episode; when gaps split it, the longest run (with a warning naming the others)."""
    segments = read_episode_segments(path, topics, period, joint_names, image_size, tolerance)
    if not segments:
        raise BagError(f"bag {path}: no two consecutive steps have a frame and a joint state within tolerance "
                       "(and a command, when the bag has commands)")
    check_actions_follow_motion(segments, f"bag {path}")
    if len(segments) > 1:
        lengths = [len(s) for s in segments]
        warnings.warn(f"{path}: gaps split the bag into runs of {lengths} steps; read_episode keeps the longest "
                      "(read_episode_segments returns them all)", GapWarning, stacklevel=2)
    return max(segments, key=len)


def find_bags(paths: str | Path | list[str | Path]) -> list[Path]:
    """Every bag at or under the given paths: rosbag2 folders (metadata.yaml), lone .mcap/.db3/.bag files."""
    roots = [Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
    found: list[Path] = []
    for root in roots:
        if not root.exists():
            raise BagError(f"bag path {root} does not exist")
        if (root / "metadata.yaml").is_file() or root.is_file():
            found.append(root)
            continue
        folders, files = _walk_bags(root)
        found += folders
        found += [p for p in files if not any(folder in p.parents for folder in folders)]
    if not found:
        raise BagError(f"no bags (folders with metadata.yaml, .mcap, .db3 or .bag files) under {[str(r) for r in roots]}")
    return sorted(set(found))


def _walk_bags(root: Path) -> tuple[list[Path], list[Path]]:
    """Bag folders and lone bag files under ``root``, following symbolic links (each real folder once)."""
    folders, files, seen = [], [], set()
    for here, subfolders, names in os.walk(root, followlinks=True):
        real = os.path.realpath(here)
        if real in seen:  # a link back up the tree, or two links to one folder
            subfolders.clear()
            continue
        seen.add(real)
        subfolders.sort()
        if "metadata.yaml" in names:
            folders.append(Path(here))
        files += [Path(here) / name for name in names if Path(name).suffix in (".mcap", ".db3", ".bag")]
    return sorted(folders), sorted(files)


def step_period_s(episodes: list[Episode]) -> float:
    """The median time step of episodes (s): what one action of theirs spans."""
    steps = np.concatenate([np.diff(episode.stamps_ns) for episode in episodes if len(episode) > 1])
    if steps.size == 0:
        raise BagError("no episode has two steps: the time step is unknown")
    return float(np.median(steps)) / NS


def period_mismatch(trained_s: float | None, used_s: float) -> str:
    """Why a time step more than 10 % from a checkpoint's training step is wrong ('' when it fits or is unknown)."""
    if trained_s is None or abs(used_s - trained_s) <= 0.1 * trained_s:
        return ""
    return (f"a {used_s:.3f} s step ({1 / used_s:.2f} Hz), but the checkpoint was trained at {trained_s:.3f} s "
            f"({1 / trained_s:.2f} Hz) and its actions span one such step")


def read_episodes(paths: str | Path | list[str | Path], topics: BagTopics = BagTopics(), period: float | None = None,
                  joint_names: tuple[str, ...] | None = None, image_size: int | None = None,
                  tolerance: float | None = None, progress: bool = True) -> list[Episode]:
    """Every gap-free run of every bag under ``paths``, with a progress bar."""
    episodes: list[Episode] = []
    names: tuple[str, ...] | None = tuple(joint_names) if joint_names else None
    for bag in tqdm(find_bags(paths), desc="reading bags", unit="bag", disable=not progress):
        segments = read_episode_segments(bag, topics, period, names, image_size, tolerance)
        if segments and names is None:
            names = segments[0].joint_names  # every bag is put in the first bag's joint order
        episodes += segments
    if episodes:
        check_actions_follow_motion(episodes, f"the bags under {[str(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]}")
    return episodes
