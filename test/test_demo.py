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


def test_held_is_where_the_arm_ends_and_stays_touched_is_any_pass():
    from jepa_wm.reaching import ReachAttempt, summarize

    config = ReachingConfig(num_goals=3, max_steps=10, hold_steps=5)
    passing = ReachAttempt(0, [0.2, 0.1, 0.02, 0.05, 0.06, 0.06, 0.07, 0.06, 0.05, 0.06, 0.06])  # passes, hovers away
    settled = ReachAttempt(1, [0.2, 0.1, 0.05, 0.04, 0.04, 0.03, 0.02, 0.01, 0.02, 0.01, 0.02])  # the last 5 within 3 cm
    drifting = ReachAttempt(2, [0.2, 0.1, 0.05, 0.02, 0.01, 0.01, 0.01, 0.01, 0.01, 0.02, 0.04])  # leaves at the end
    assert [a.touched(config) for a in (passing, settled, drifting)] == [True, True, True]
    assert [a.held(config) for a in (passing, settled, drifting)] == [False, True, False]
    metrics = summarize([passing, settled, drifting], config)
    assert metrics["hold_success_rate"] == pytest.approx(1 / 3) and metrics["touch_success_rate"] == 1.0
    with pytest.raises(ValueError, match="hold_steps=11: expected 1..max_steps=10"):
        ReachingConfig(max_steps=10, hold_steps=11)


def test_the_video_marks_the_frames_where_the_arm_is_held_at_its_goal(tmp_path: Path):
    import imageio.v2 as imageio
    import numpy as np

    from jepa_wm.reaching import ReachAttempt, sample_goals, write_reaching_report

    config = ReachingConfig(num_goals=1, max_steps=4, hold_steps=2)
    with make_sim(64, 0) as sim:
        goals = sample_goals(sim, config)
        frame = sim.render().copy()
    attempt = ReachAttempt(0, [0.2, 0.1, 0.02, 0.01, 0.01], frames=[frame, frame], holding=[False, True],
                           replan_ms=[80.0, 90.0, 84.0])
    results = {name: [attempt] for name in ("world_model", "random", "zero")}
    hold = {"hold_below": 0.0449, "resume_above": 0.0688, "success_radius_m": 0.03}
    metrics = write_reaching_report(tmp_path, config, results, goals, {"num_samples": 24}, hold)
    report = (tmp_path / "report.md").read_text()
    assert "Replanning (encode + plan) took 84 ms (median), 24 candidates a plan" in report
    assert "holds the arm still" in report and "within an L1 distance of 0.0449" in report and "beyond 0.0688" in report
    assert metrics["hold_criterion"] == hold
    first, second = (np.asarray(image)[..., :3].astype(int) for image in imageio.mimread(tmp_path / "rollouts.gif"))
    green = lambda image: ((image[..., 1] > 150) & (image[..., 0] < 80) & (image[..., 2] < 80)).sum()  # noqa: E731
    assert green(second) > green(first) + 100  # a green frame and "holding" on the held step only


def test_reach_calibration_separates_frames_at_the_goal_from_frames_away():
    from jepa_wm.calibration import calibrate_reach
    from jepa_wm.models.checkpoint import default_checkpoint, load_checkpoint, read_checkpoint_config
    from jepa_wm.reaching import hold_criterion

    model = load_checkpoint(default_checkpoint()).eval()
    with make_sim(model.config.encoder.image_size, 0) as sim:
        reach = calibrate_reach(model, sim, ReachingConfig(num_goals=2, seed=10), poses_per_scale=3)
    assert 0 < reach["hold_below"] < reach["resume_above"] and reach["frames_near"] >= 10
    # the shipped model has a state readout: the tool read from frames near the goals reads near, from frames away not
    assert reach["tool_hold_m"] == 0.015 and reach["tool_resume_m"] == 0.03
    assert reach["tool_near_held"] > 0.5 and reach["tool_away_held"] < 0.1
    stored = read_checkpoint_config(default_checkpoint())[1]["reach"]  # `jepa-ros calibrate` of the shipped model
    assert 0 < stored["hold_below"] < stored["resume_above"] and stored["goals"] == 12 and "tool_hold_m" in stored
    text = hold_criterion(stored)
    assert f"within an L1 distance of {stored['hold_below']:.4f}" in text and "within 1.5 cm of the one read" in text
    assert "beyond 3.0 cm" in text
    alone = hold_criterion({**stored, "hold_by": "tool"})  # world_model_node's hold_by: tool
    assert "L1 distance" not in alone and "latent distance" not in alone
    assert "once the tool's position read from the frame" in alone and "plans again once the tool's beyond 3.0 cm" in alone


def test_push_demo_over_dds_starts_each_goal_as_set_and_measures_where_the_block_ends(tmp_path: Path):
    """sim_node (push scene) and world_model_node as processes, with a planar model of random weights: the
    client's set-up (arm to the start pose by commands, the block placed) and its measurements, end to end."""
    import dataclasses

    import numpy as np

    from jepa_ros.push_demo import run_push_closed_loop
    from jepa_wm.config import SimConfig, WorldModelConfig, load_robot
    from jepa_wm.models.checkpoint import save_checkpoint
    from jepa_wm.models.world_model import WorldModel
    from jepa_wm.pushing import PushingConfig
    from jepa_wm.sim import ArmSim
    from jepa_wm.sim.push_explorer import PushExplorer
    from wm_fixtures import tiny_config

    with ArmSim(SimConfig(scene="push", image_size=64)) as sim:
        tool_pose = tuple(float(v) for v in PushExplorer(sim, np.random.default_rng(0)).tool_pose)
    tiny = tiny_config()
    config = WorldModelConfig(encoder=dataclasses.replace(tiny.encoder, image_size=64), predictor=tiny.predictor, joint_names=load_robot("jepa_arm").joint_names,
                              action_scale=0.03, action_space="planar", tool_pose=tool_pose, arm_features=8,
                              state_readout=True)
    save_checkpoint(WorldModel(config), tmp_path / "push", {"robot": "jepa_arm", "period_s": 0.2, "train_seconds": 0.0})
    push = PushingConfig(num_goals=2, max_steps=4, seed=5)
    metrics = run_push_closed_loop(push, tmp_path / "push", "jepa_arm", [], tmp_path / "report")
    zero = metrics["zero"]
    # each goal started with the block where the goal's start has it: as far from the goal as the baseline's start
    assert metrics["world_model"]["median_initial_object_error_m"] == pytest.approx(zero["median_initial_object_error_m"], abs=0.003)
    assert push.min_move - 0.003 <= zero["median_initial_object_error_m"] <= push.max_move + 0.003
    assert np.isfinite(metrics["world_model"]["median_final_object_error_m"]) and metrics["world_model"]["median_replan_ms"] > 0
    assert {p.name for p in (tmp_path / "report").iterdir()} >= {"report.md", "metrics.json", "object_error.png"}
    assert dataclasses.asdict(push)["num_goals"] == metrics["config"]["num_goals"]
