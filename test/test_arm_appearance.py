"""The state readout, the arm-appearance model and the planner's cost that compares a goal without the arm
(planner.goal: objects)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jepa_wm.config import ConfigError, PlannerConfig, WorldModelConfig, load_robot
from jepa_wm.models.arm_appearance import ArmAppearance
from jepa_wm.models.checkpoint import load_checkpoint, save_checkpoint
from jepa_wm.models.state_readout import StateReadout
from jepa_wm.models.world_model import WorldModel
from jepa_wm.planning import latent_goal_cost, objects_goal_cost
from wm_fixtures import tiny_config

TOKENS, WIDTH = 4, 8


def scene_latents(arm_states: torch.Tensor, objects: torch.Tensor, generator: torch.Generator) -> tuple:
    """Toy latents [M, N, D]: a nonlinear function of the arm's 2-D state plus a linear one of an object's
    2-D position, the arm's part much the larger (as in a camera image); returns (latents, object map)."""
    arm_map = torch.randn(4, TOKENS * WIDTH, generator=generator) * 3
    object_map = torch.randn(2, TOKENS * WIDTH, generator=generator)

    def latents(states: torch.Tensor, places: torch.Tensor) -> torch.Tensor:
        arm = torch.cat([torch.sin(8 * states), torch.cos(8 * states)], dim=-1) @ arm_map
        return (arm + places @ object_map).unflatten(-1, (TOKENS, WIDTH))

    return latents(arm_states, objects), latents


@pytest.fixture(scope="module")
def fitted():
    generator = torch.Generator().manual_seed(0)
    states, objects = torch.rand(4000, 2, generator=generator) * 0.3, torch.rand(4000, 2, generator=generator)
    latents, make = scene_latents(states, objects, generator)
    arm = ArmAppearance(2, TOKENS, WIDTH, 256)
    arm.fit(latents, states, bandwidth=0.35, ridge=1e-8, generator=torch.Generator().manual_seed(1))
    readout = StateReadout(2, TOKENS, WIDTH)
    readout.fit(latents, states)
    return arm, make, readout


def test_what_the_arm_does_not_explain_is_the_object_wherever_the_arm_is(fitted):
    arm, make, _ = fitted
    generator = torch.Generator().manual_seed(2)
    place = torch.rand(1, 2, generator=generator).expand(50, 2)
    states = torch.rand(50, 2, generator=generator) * 0.3  # the arm all over, the object still
    latents = make(states, place)
    world = arm.without_arm(latents, states)

    def spread(values: torch.Tensor) -> float:
        return float((values - values.mean(0)).norm(dim=(1, 2)).mean())

    moved = arm.without_arm(make(states, place + 0.3), states)
    # the arm moving all over changes the latent a lot and the world's part little; the object moving, a lot
    assert spread(world) < 0.05 * spread(latents)
    assert spread(world) < 0.2 * float((moved - world).norm(dim=(1, 2)).mean())


def test_the_state_is_read_back_from_a_latent(fitted):
    _, make, readout = fitted
    generator = torch.Generator().manual_seed(3)
    states = torch.rand(200, 2, generator=generator) * 0.3
    read = readout(make(states, torch.rand(200, 2, generator=generator)))
    assert float((read - states).abs().median()) < 0.01  # 3 % of the range


def test_the_objects_cost_ranks_the_object_at_its_goal_first_whatever_the_arm_does(fitted):
    arm, make, readout = fitted
    config = PlannerConfig(goal="objects")
    goal_place, start = torch.tensor([[0.2, 0.7]]), torch.tensor([0.15, 0.15])
    goal_latent = make(torch.tensor([[0.05, 0.25]]), goal_place)[0]  # the arm elsewhere in the goal image
    actions = torch.tensor([[[0.5, 0.0]], [[0.0, 0.0]], [[-0.5, 0.5]]])  # [S=3, H=1, A]: the arm moves 0-0.07
    ends = start + actions[:, 0] * 0.1
    at_goal = make(ends, goal_place.expand(3, 2))[:, None]  # [S, H, N, D]: the object where the goal has it
    elsewhere = make(ends, torch.tensor([[0.8, 0.1]]).expand(3, 2))[:, None]

    def integrate(states, steps):
        return states + steps * 0.1

    cost = objects_goal_cost(arm.without_arm(goal_latent, readout(goal_latent)), config, arm, start, integrate)
    assert float(cost(at_goal, actions).max()) < float(cost(elsewhere, actions).min())
    # the whole-scene cost prefers whatever brings the arm near the goal image's arm instead
    scene = latent_goal_cost(goal_latent, PlannerConfig())
    assert float(scene(at_goal, actions).max()) > float(scene(elsewhere, actions).min())


def test_the_arm_model_is_saved_with_the_checkpoint_and_asked_for_by_the_controller(tmp_path):
    from jepa_wm.controller import LatentMPC

    base = tiny_config()
    config = WorldModelConfig(encoder=base.encoder, predictor=base.predictor, arm_features=16, state_readout=True)
    model = WorldModel(config)
    model.arm.appearance_weights.normal_()
    model.readout.weights.normal_()
    save_checkpoint(model, tmp_path / "with_arm")
    loaded = load_checkpoint(tmp_path / "with_arm")
    assert loaded.config.arm_features == 16 and loaded.config.state_readout
    torch.testing.assert_close(loaded.arm.appearance_weights, model.arm.appearance_weights)
    torch.testing.assert_close(loaded.readout.weights, model.readout.weights)
    with pytest.raises(ConfigError, match="arm_features=16 needs state_readout: true"):
        WorldModelConfig(encoder=base.encoder, predictor=base.predictor, arm_features=16)
    robot = load_robot("jepa_arm")
    small = dict(num_samples=8, num_elites=2, iterations=1, horizon=2)
    assert LatentMPC(loaded, PlannerConfig(**small), robot, 0.2).planner.goal == "objects"  # auto
    without = WorldModel(WorldModelConfig(encoder=base.encoder, predictor=base.predictor))
    assert LatentMPC(without, PlannerConfig(**small), robot, 0.2).planner.goal == "scene"
    with pytest.raises(ConfigError, match="planner.goal 'objects' needs a checkpoint with an arm-appearance model"):
        LatentMPC(without, PlannerConfig(goal="objects", **small), robot, 0.2)
    with pytest.raises(ConfigError, match="planner.goal='anything'"):
        PlannerConfig(goal="anything")
    frame = np.zeros((32, 32, 3), np.uint8)
    mpc = LatentMPC(loaded, PlannerConfig(**small), robot, 0.2)
    mpc.set_goal(frame)
    out = mpc.step(frame, np.zeros(6))
    assert out.command is not None and np.isfinite(out.goal_distance)
    assert mpc.replan_ms(8, repeats=1) > 0  # a planning budget times the objects cost as the plans use it
