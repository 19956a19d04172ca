"""`jepa-ros calibrate` on recorded frames: an arm that is not simulated gets its hold distances from its bags."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from jepa_wm.calibration import calibrate_reach_on_bags
from jepa_wm.command_line import main
from jepa_wm.config import load_robot
from jepa_wm.data import read_episodes
from jepa_wm.models.checkpoint import default_checkpoint, load_checkpoint
from jepa_wm.reaching import ReachingConfig, hold_criterion


@pytest.fixture(scope="module")
def slow_bags(tmp_path_factory) -> Path:
    """Exploration of the default arm in small steps, so that frames a step apart lie near each other."""
    out = tmp_path_factory.mktemp("calibration") / "bags"
    assert main(["collect", "--episodes", "4", "--steps", "30", "--max-delta", "0.03", "--out", str(out),
                 "--workers", "1", "--seed", "3"]) == 0
    return out


def test_recorded_frames_near_a_goal_frame_look_closer_to_it_than_frames_away(slow_bags):
    model = load_checkpoint(default_checkpoint()).eval()
    episodes = read_episodes(slow_bags, image_size=model.config.encoder.image_size, progress=False)
    reach = calibrate_reach_on_bags(model, episodes, load_robot("jepa_arm"), ReachingConfig(num_goals=12, seed=0))
    assert reach["source"] == "bags" and reach["frames_near"] >= 10 and reach["frames_away"] >= 10
    assert 0 < reach["hold_below"] < reach["resume_above"]
    # the tool read from the latents says "arrived" for frames near the goal frame, not for frames away
    assert reach["tool_near_held"] > 0.5 and reach["tool_away_held"] < 0.1
    assert "lie below it in the exploration bags" in hold_criterion(reach)


def test_calibrating_on_bags_needs_the_arm_description_and_the_bags(slow_bags, tmp_path):
    model = load_checkpoint(default_checkpoint()).eval()
    episodes = read_episodes(slow_bags, image_size=model.config.encoder.image_size, progress=False)
    no_urdf = dataclasses.replace(load_robot("jepa_arm"), description="")
    with pytest.raises(ValueError, match="has no description \\(URDF\\).*set `description` in its preset"):
        calibrate_reach_on_bags(model, episodes, no_urdf, ReachingConfig(num_goals=4, seed=0))
    with pytest.raises(SystemExit, match="needs its exploration bags \\(--bags DIR...\\)"):
        main(["calibrate", "--checkpoint", str(default_checkpoint()), "--on", "bags"])
