"""The closed-loop demo's set-up: the goals are rendered in the scene sim_node runs, or it refuses."""

from pathlib import Path

import pytest

from jepa_ros.demo import SCENE_TOLERANCE, run_closed_loop, scene_difference
from jepa_wm.reaching import ReachingConfig, make_sim


def _home(seed: int):
    with make_sim(64, seed) as sim:
        sim.reset(seed=0)
        return sim.render().copy()


def test_another_scene_seed_is_told_apart_from_the_goals_scene():
    home = _home(0)
    assert scene_difference(_home(0), home) == 0.0
    for other in (1, 2):  # the table objects sit elsewhere
        assert scene_difference(_home(other), home) > 4 * SCENE_TOLERANCE
    assert scene_difference(home[:32], home) == 1.0  # another image size


def test_a_graph_seed_that_is_not_the_goals_scene_is_refused_before_anything_starts(tmp_path: Path):
    with pytest.raises(ValueError, match=r"seed:=3 would give sim_node another scene .*scene seed 0.*--scene-seed"):
        run_closed_loop(ReachingConfig(num_goals=1), 64, ["seed:=3"], tmp_path)
    assert not any(tmp_path.iterdir())  # no report written
