"""Training windows over episodes, held in one tensor (no per-item file I/O), and the train/validation split."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from jepa_wm.data.episodes import Episode
from jepa_wm.models.objectives import Batch
from jepa_wm.models.world_model import WorldModel


def split_episodes(episodes: Sequence[Episode], val_fraction: float, seed: int) -> tuple[list[Episode], list[Episode]]:
    """Split by whole episodes (never inside one), shuffled by ``seed``: (train, validation).

    One episode (a single long recording) is split by time instead: its last ``val_fraction`` of steps
    is the validation part, so no validation frame neighbours a training frame but at the cut.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction={val_fraction}: expected a fraction in (0, 1)")
    if len(episodes) == 1:  # one long recording: its last val_fraction of steps is held out
        episode = episodes[0]
        cut = len(episode) - max(2, int(round(val_fraction * len(episode))))
        if cut < 2:
            raise ValueError(f"{episode.source}: {len(episode)} steps is too short to hold out a validation part; "
                             f"expected at least 4 steps, or more episodes")
        return [episode.steps(0, cut)], [episode.steps(cut, len(episode))]
    if not episodes:
        raise ValueError("no episodes to split")
    order = np.random.default_rng(seed).permutation(len(episodes))
    num_val = min(len(episodes) - 1, max(1, int(round(val_fraction * len(episodes)))))
    val_ids = set(order[:num_val].tolist())
    train = [e for i, e in enumerate(episodes) if i not in val_ids]
    val = [e for i, e in enumerate(episodes) if i in val_ids]
    return train, val


class EpisodeWindows:
    """All frames of a set of episodes in one tensor; samples runs of ``length`` consecutive frames
    (one training window, or a sequence of several) that stay inside an episode.

    After :meth:`encode_all` it holds every frame's latent instead (a frozen latent is computed once).
    """

    def __init__(self, episodes: list, length: int, action_scale: float, device: torch.device) -> None:
        usable = [e for e in episodes if len(e.frames) >= length]
        if not usable:
            lengths = sorted({len(e.frames) for e in episodes})
            raise ValueError(f"no episode has the {length} steps a training sample needs; lengths are {lengths}")
        self.frames = torch.from_numpy(np.concatenate([e.frames for e in usable])).to(device)  # uint8 [M, H, W, 3]
        self.joint_positions = torch.from_numpy(np.concatenate([e.joint_positions for e in usable])).float().to(device)
        self.actions = (torch.from_numpy(np.concatenate([e.actions for e in usable])).float() / action_scale).to(device)
        starts, offset = [], 0
        for e in usable:
            starts.append(torch.arange(offset, offset + len(e.frames) - length + 1))
            offset += len(e.frames)
        self.starts = torch.cat(starts)  # first index of every sample that fits
        self.episode_starts = np.cumsum([0] + [len(e.frames) for e in usable])  # first frame of each episode
        self.sources = [f"{e.source} (from {e.stamps_ns[0]} ns)" for e in usable]
        self.last_sampled = self.starts[:0]  # the window starts of the latest batch
        self.length = length
        self.latents: torch.Tensor | None = None  # [M, N, D] after encode_all

    @torch.no_grad()
    def encode_all(self, model: WorldModel, batch_size: int = 256, progress: bool = False) -> None:
        """Replace the frames by their latents under ``model`` (eval mode), which must stay fixed."""
        was_training = model.training
        model.eval()
        chunks = [
            model.embed(model.encoder.preprocess(self.frames[i : i + batch_size]))
            for i in tqdm(range(0, len(self.frames), batch_size), desc="encoding frames", unit="batch",
                          disable=not progress)
        ]
        model.train(was_training)
        self.latents = torch.cat(chunks)
        self.frames = self.frames[:0]  # the images are not needed any more

    def sample(self, batch_size: int, generator: torch.Generator, preprocess: Any) -> Batch:
        """A batch of random windows: images normalised by ``preprocess`` (uint8 [M,H,W,3] -> [M,3,S,S]),
        or their latents after :meth:`encode_all`."""
        chosen = self.starts[torch.randint(len(self.starts), (batch_size,), generator=generator)]
        self.last_sampled = chosen
        index = (chosen[:, None] + torch.arange(self.length)).to(self.joint_positions.device)  # [B, L]
        if self.latents is not None:
            return Batch(None, self.joint_positions[index], self.actions[index], latents=self.latents[index])
        images = preprocess(self.frames[index.flatten()])  # [B*W, 3, S, S]
        return Batch(images.unflatten(0, index.shape), self.joint_positions[index], self.actions[index])


    def episodes_of(self, starts: torch.Tensor) -> list[str]:
        """The episodes (bag and first stamp) that windows starting at ``starts`` come from, each once."""
        numbers = np.searchsorted(self.episode_starts, starts.cpu().numpy(), side="right") - 1
        return [self.sources[i] for i in sorted(set(numbers.tolist()))]
