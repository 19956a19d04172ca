"""Training windows over episodes, held in contiguous arrays (no per-item file I/O)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from jepa_wm.data.episodes import Episode, resize_frame


def split_episodes(episodes: Sequence[Episode], val_fraction: float, seed: int) -> tuple[list[Episode], list[Episode]]:
    """Split by whole episodes (never inside one), shuffled by ``seed``: (train, validation)."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction={val_fraction}: expected a fraction in (0, 1)")
    if len(episodes) < 2:
        raise ValueError(f"{len(episodes)} episode(s): a train/validation split by episode needs at least 2")
    order = np.random.default_rng(seed).permutation(len(episodes))
    num_val = min(len(episodes) - 1, max(1, int(round(val_fraction * len(episodes)))))
    val_ids = set(order[:num_val].tolist())
    train = [e for i, e in enumerate(episodes) if i not in val_ids]
    val = [e for i, e in enumerate(episodes) if i in val_ids]
    return train, val


class WindowDataset:
    """Every run of ``window`` consecutive steps inside one episode.

    Item: dict of ``frames`` uint8 [W, S, S, 3], ``joint_positions`` float32 [W, J],
    ``actions`` float32 [W, J]. Frames are resized once here (centre crop + INTER_AREA);
    a torch DataLoader takes this as a map-style dataset.
    """

    def __init__(self, episodes: Sequence[Episode], window: int, image_size: int, stride: int = 1) -> None:
        if window < 1 or stride < 1:
            raise ValueError(f"window={window}, stride={stride}: expected both >= 1")
        if not episodes:
            raise ValueError("WindowDataset needs at least one episode")
        self.window, self.image_size = window, image_size
        self.joint_names = episodes[0].joint_names
        for episode in episodes:
            if episode.joint_names != self.joint_names:
                raise ValueError(f"{episode.source}: joint_names {list(episode.joint_names)} differ from "
                                 f"{list(self.joint_names)} of {episodes[0].source}")
        total = sum(len(e) for e in episodes)
        joints = len(self.joint_names)
        self.frames = np.empty((total, image_size, image_size, 3), np.uint8)
        self.joint_positions = np.empty((total, joints), np.float32)
        self.actions = np.empty((total, joints), np.float32)
        starts, offset = [], 0
        for episode in episodes:
            steps = len(episode)
            frames = episode.frames
            if frames.shape[1:3] != (image_size, image_size):
                frames = np.stack([resize_frame(f, image_size) for f in frames])
            self.frames[offset: offset + steps] = frames
            self.joint_positions[offset: offset + steps] = episode.joint_positions
            self.actions[offset: offset + steps] = episode.actions
            starts.append(offset + np.arange(0, steps - window + 1, stride))
            offset += steps
        self.starts = np.concatenate(starts).astype(np.int64)
        if len(self.starts) == 0:
            longest = max(len(e) for e in episodes)
            raise ValueError(f"no episode has window={window} steps (the longest has {longest})")

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"window {index} out of range for {len(self)} windows")
        start = self.starts[index]
        stop = start + self.window
        return {"frames": self.frames[start:stop], "joint_positions": self.joint_positions[start:stop],
                "actions": self.actions[start:stop]}

    def batch(self, indices: Sequence[int] | np.ndarray) -> dict[str, np.ndarray]:
        """Several windows at once by fancy indexing: frames [B, W, S, S, 3], the others [B, W, J]."""
        steps = self.starts[np.asarray(indices)][:, None] + np.arange(self.window)  # [B, W]
        return {"frames": self.frames[steps], "joint_positions": self.joint_positions[steps],
                "actions": self.actions[steps]}
