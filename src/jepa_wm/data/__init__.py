"""Data: rosbag2 I/O, time-aligned episodes, training windows and simulated collection."""

from jepa_wm.data.dataset import EpisodeWindows, split_episodes
from jepa_wm.data.episodes import (
    ActionWarning,
    BagTopics,
    Episode,
    GapWarning,
    find_bags,
    read_episode,
    read_episode_segments,
    read_episodes,
    resize_frame,
)
from jepa_wm.data.rosbag_io import BagError, BagMessage, BagWriter, bag_topics, iter_messages

__all__ = [
    "BagError",
    "BagMessage",
    "BagTopics",
    "BagWriter",
    "Episode",
    "ActionWarning",
    "GapWarning",
    "EpisodeWindows",
    "bag_topics",
    "find_bags",
    "iter_messages",
    "read_episode",
    "read_episode_segments",
    "read_episodes",
    "resize_frame",
    "split_episodes",
]
