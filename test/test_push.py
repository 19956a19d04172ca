"""The push task: a block on the table (real MuJoCo contact), random pushes recorded to rosbag2, and planar
end-effector actions (the tool's x, y at a held height) through training and the controller."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from jepa_wm.command_line import main
from jepa_wm.config import PlannerConfig, SimConfig, TrainConfig, WorldModelConfig, load_robot, to_dict
from jepa_wm.data import iter_messages
from jepa_wm.sim import ArmSim
from jepa_wm.sim.push_explorer import PushExplorer
from wm_fixtures import tiny_config


@pytest.fixture(scope="module")
def sim():
    with ArmSim(SimConfig(scene="push", image_size=64, control_period=0.2)) as arm:
        yield arm


def test_a_block_left_alone_stays_and_a_pushed_one_moves(sim):
    sim.reset(seed=3)
    start = sim.object_pose()
    sim.step(2.0)  # resting on the table: friction holds it
    np.testing.assert_allclose(sim.object_pose(), start, atol=1e-4)
    explorer = PushExplorer(sim, np.random.default_rng(0))
    sim.reset(joint_positions=explorer.start(), object_pose=start)
    block = start[:2]
    tool = explorer.kinematics.pose(sim.joint_positions)[:2]
    direction = (block - tool) / np.linalg.norm(block - tool)
    explorer.waypoints = [block + 0.06 * direction]  # through the block, 6 cm past its centre
    for _ in range(25):
        sim.set_target(explorer.next_target(sim.joint_positions))
        sim.step()
    moved = sim.object_pose()[:2] - block
    assert np.linalg.norm(moved) > 0.02 and moved @ direction > 0.02, moved  # pushed along the tool's way
    assert abs(sim.data.qpos[sim._object_qpos + 2] - sim.table_top - 0.02) < 0.005  # still on the table


@pytest.mark.parametrize("robot", ["jepa_arm", "so101_sim"])
def test_the_push_camera_looks_down_on_the_whole_push_area_and_shows_the_block_large(robot):
    with ArmSim(SimConfig(robot=robot, scene="push", image_size=64)) as arm:
        area = arm.reachable_table_area
        spans = area.max(axis=0) - area.min(axis=0)
        # room for 5-15 cm pushes, bench-sized (a small arm such as so101 reaches a narrower band)
        assert spans.max() > 0.15 and spans.min() > 0.08 and np.all(spans <= 0.24 + 1e-9), spans
        u, v = arm.project(np.column_stack([area, np.full(len(area), arm.table_top)])).T
        assert u.min() >= 0.2 * 64 - 1e-6 and u.max() <= 0.8 * 64 + 1e-6 and v.min() >= 0.2 * 64 - 1e-6 and v.max() <= 0.8 * 64 + 1e-6
        assert arm.data.cam_xmat[arm._camera].reshape(3, 3)[:, 2] @ np.array([0.0, 0.0, 1.0]) > 0.999  # straight down
        centre = area.mean(axis=0)
        sides = np.array([[*(centre - [0.03, 0.0]), arm.table_top], [*(centre + [0.03, 0.0]), arm.table_top]])
        assert np.linalg.norm(np.diff(arm.project(sides), axis=0)) >= 7  # a 6 cm block spans 7+ of 64 px
        home = PushExplorer(arm, np.random.default_rng(0)).start()
        arm.reset(object_pose=np.array([*area[np.argmin(area[:, 0])], 0.0]), joint_positions=home)
        before = arm.render().astype(int)
        arm.place_object(np.array([*area[np.argmax(area[:, 0])], 0.0]))
        changed = np.abs(arm.render().astype(int) - before).max(axis=-1) > 40
        assert changed.sum() >= 2 * 40, changed.sum()  # the block fills 40+ of the 64 x 64 pixels where it leaves and comes


def test_the_tool_is_held_clear_of_the_table_over_the_push_area(sim):
    explorer = PushExplorer(sim, np.random.default_rng(1))
    for xy in sim.reachable_table_area[::40]:
        joints = explorer._joints(xy, sim.home_joint_positions)
        assert 0.004 < sim.table_gap(joints) < 0.03  # low enough to push a 4 cm block, never touching the table


def test_push_bags_train_a_planar_model_that_plans_through_the_controller(tmp_path, capsys):
    from jepa_wm.controller import LatentMPC
    from jepa_wm.models.checkpoint import load_checkpoint

    bags = tmp_path / "bags"
    assert main(["collect", "--scene", "push", "--episodes", "3", "--steps", "30", "--out", str(bags),
                 "--workers", "1", "--image-size", "64"]) == 0
    poses = [m.payload for m in iter_messages(bags / "episode_0000", ["/object_pose"])]
    assert len(poses) == 30 * 10 and all(np.isfinite(p).all() for p in poses)  # 50 Hz, for evaluation only
    config = WorldModelConfig(encoder=tiny_config().encoder, predictor=tiny_config().predictor, action_space="planar")
    (tmp_path / "model.yaml").write_text(yaml.safe_dump({"world_model": to_dict(config)}))
    train = TrainConfig(steps=4, batch_size=4, warmup_steps=1, context_steps=1, rollout_steps=2, val_every=4,
                        checkpoint_every=4, val_fraction=0.34)
    # as the shipped recipe: a readout stage, then a joint one with the readout and inverse dynamics kept
    (tmp_path / "proprio.yaml").write_text(yaml.safe_dump({"train": {**to_dict(train), "mode": "proprio"}}))
    (tmp_path / "joint.yaml").write_text(yaml.safe_dump({"train": {**to_dict(train), "proprio_weight": 0.5,
                                                                   "inverse_dynamics_weight": 0.1}}))
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump({"stages": ["proprio.yaml", "joint.yaml"]}))
    assert main(["train", "--bags", str(bags), "--robot", "jepa_arm", "--model-config", str(tmp_path / "model.yaml"),
                 "--config", str(tmp_path / "recipe.yaml"), "--out", str(tmp_path / "run"), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "planar tool held at" in printed and "m of tool motion" in printed
    model = load_checkpoint(tmp_path / "run" / "checkpoint")
    robot = load_robot("jepa_arm")
    assert model.config.action_space == "planar" and model.config.state_names == ("x", "y")
    # the last stage fits the arm-appearance model the planner compares push goals with (planner.goal auto: objects)
    assert model.config.arm_features > 0 and model.arm is not None and "arm_explained_variance" in printed
    assert torch.count_nonzero(model.arm.appearance_weights) > 0
    # offline evaluation reads the bags into the checkpoint's planar space by the preset's kinematics
    assert main(["evaluate", "--bag", str(bags), "--checkpoint", str(tmp_path / "run" / "checkpoint"), "--out",
                 str(tmp_path / "eval"), "--robot", "jepa_arm", "--horizon", "2", "--no-progress", "--plan-every", "8",
                 "--energy-every", "4", "--num-random", "7"]) == 0
    evaluated = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert evaluated["joint_names"] == ["x", "y"] and evaluated["overall"]["prediction"]
    assert "probe R^2 x" in evaluated["readiness"]["statement"]
    height = model.config.tool_pose[0]
    assert abs(height - PushExplorer(ArmSim(SimConfig(scene="push", image_size=64)), np.random.default_rng(0)).tool_pose[0]) < 1e-3
    mpc = LatentMPC.from_checkpoint(tmp_path / "run" / "checkpoint", PlannerConfig(num_samples=8, num_elites=4, iterations=1,
                                                                                  horizon=2), robot, hold_at_goal=False,
                                   stay_in_explored_range=False)  # 3 short bags explore too little to start in
    with ArmSim(SimConfig(scene="push", image_size=64, control_period=0.2)) as arm:
        explorer = PushExplorer(arm, np.random.default_rng(2))
        arm.reset(joint_positions=explorer.start(), object_pose=arm.object_pose())
        mpc.set_goal(arm.render())
        assert mpc.planner.goal == "objects"
        out = mpc.step(arm.render(), arm.joint_positions)
        assert out.action.shape == (2,)
        assert np.all(out.command >= robot.joint_lower) and np.all(out.command <= robot.joint_upper)
        # the commanded joints hold the tool at the trained height
        assert abs(mpc.kinematics.pose(out.command)[2] - height) < 0.005, out.warnings


def test_push_goals_move_the_block_within_reach_and_a_still_arm_reaches_none(sim):
    from jepa_wm.pushing import PushingConfig, object_errors, run_push_baseline, sample_push_goals, summarize_pushes

    config = PushingConfig(num_goals=3, max_steps=5, seed=4)
    goals = sample_push_goals(sim, config)
    for goal in goals:
        move = np.linalg.norm(goal.goal_object[:2] - goal.start_object[:2])
        assert config.min_move <= move <= config.max_move
        assert abs(goal.goal_object[2] - goal.start_object[2]) <= config.max_turn + 1e-9
        assert np.min(np.linalg.norm(sim.reachable_table_area - goal.goal_object[:2], axis=1)) <= 0.02
    # the goal image shows the block moved and the arm elsewhere: it is not the start scene
    sim.reset(joint_positions=goals[0].start_joints, object_pose=goals[0].start_object)
    assert np.abs(sim.render().astype(int) - goals[0].image).mean() > 2
    still = run_push_baseline(sim, goals, config, "zero")
    assert [a.position_errors_m[-1] for a in still] == pytest.approx([a.position_errors_m[0] for a in still], abs=1e-3)
    metrics = summarize_pushes(still, config)
    assert metrics["push_success_rate"] == 0.0 and metrics["median_final_object_error_m"] >= config.min_move - 1e-3
    # a square block looks the same every quarter turn
    assert object_errors(np.array([0.3, 0.1, np.pi / 4 - 0.05]), np.array([0.3, 0.1, -np.pi / 4 + 0.05]))[1] == pytest.approx(0.1)


def test_make_checkpoint_push_runs_the_push_recipe_with_planar_actions():
    from pathlib import Path

    from jepa_wm.config import load_yaml, package_share
    from jepa_wm.training.command import load_stages

    stages = load_stages(package_share() / "config" / "training" / "push_recipe.yaml")
    assert [(name, config.mode) for name, config in stages] == [
        ("proprio", "proprio"), ("push_joint", "joint"), ("predictor", "frozen_encoder")]
    joint = dict(stages)["push_joint"]  # the JEPA objective keeps what moves in the scene, not the arm alone
    assert joint.sigreg_weight > 0 and joint.inverse_dynamics_weight == 0 and joint.smoothness_weight == 0
    assert load_yaml(package_share() / "config" / "models" / "push.yaml", WorldModelConfig, "world_model").action_space == "planar"
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    rule = makefile.split("\ncheckpoint-push:")[1].split("\n\n")[0].replace("\\\n", " ")
    assert "--config config/training/push_recipe.yaml" in rule and "--model-config config/models/push.yaml" in rule
    assert "--robot $(ROBOT)" in rule
