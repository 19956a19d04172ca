"""LatentMPC with a real (tiny, untrained) WorldModel: ordering by name, clamping, goals, bad input."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from jepa_wm.config import (
    ConfigError,
    EncoderConfig,
    PlannerConfig,
    PredictorConfig,
    RobotConfig,
    WorldModelConfig,
    load_robot,
    node_planner,
    package_share,
)
from jepa_wm.controller import (
    SETTLE_TICKS,
    Arrival,
    ControlError,
    LatentMPC,
    read_image_file,
    to_rgb,
)
from jepa_wm.models import load_checkpoint
from jepa_wm.models.world_model import WorldModel
from jepa_wm.reaching import ReachingConfig, make_sim, run_controller, sample_goals
from jepa_wm.runtime import FEWEST_SAMPLES, resolve_precision

JOINTS = ("joint1", "joint2", "joint3")
TINY = WorldModelConfig(
    encoder=EncoderConfig(image_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2),
    predictor=PredictorConfig(embed_dim=32, depth=1, num_heads=2, latent_grid=2, max_steps=8),
    joint_names=JOINTS,
    action_scale=0.2,
)
PLANNER = PlannerConfig(horizon=2, num_samples=16, iterations=2, num_elites=4)
ROBOT = RobotConfig(
    name="tiny",
    joint_names=JOINTS,
    joint_lower=(-1.0, -0.5, -2.0),
    joint_upper=(1.0, 0.5, 2.0),
    velocity_limits=(1.0, 0.5, 2.0),
    control_rate=10.0,
)


@pytest.fixture(scope="module")
def model() -> WorldModel:
    torch.manual_seed(0)
    return WorldModel(TINY)


def frame(seed: int, height: int = 40, width: int = 40) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_no_goal_no_command(model):
    mpc = LatentMPC(model, PLANNER, ROBOT)
    out = mpc.step(frame(0), np.zeros(3))
    assert out.command is None and out.reason == "no goal image set"


def test_step_plans_and_keeps_warm_start(model):
    mpc = LatentMPC(model, PLANNER, ROBOT)
    mpc.set_goal(frame(1))
    out = mpc.step(frame(0), np.zeros(3))
    assert out.command is not None and out.command.shape == (3,) and out.reason == ""
    assert np.isfinite(out.energy) and out.plan_ms > 0 and out.encode_ms > 0
    # command = current + first action * action_scale, unless the safety clamp had to step in
    if not out.warnings:
        np.testing.assert_allclose(out.command, out.action * TINY.action_scale, atol=1e-6)
    assert mpc.warm_start is not None
    torch.testing.assert_close(mpc.warm_start[:-1], mpc.last_plan.actions[1:])
    mpc.set_goal(frame(2))
    assert mpc.warm_start is None  # a new goal restarts the search


def test_joint_order_comes_from_names(model):
    reversed_robot = RobotConfig(
        name="reversed",
        joint_names=tuple(reversed(ROBOT.joint_names)),
        joint_lower=tuple(reversed(ROBOT.joint_lower)),
        joint_upper=tuple(reversed(ROBOT.joint_upper)),
        velocity_limits=tuple(reversed(ROBOT.velocity_limits)),
        control_rate=ROBOT.control_rate,
    )
    current = np.array([0.1, -0.2, 0.3])
    outputs = []
    for robot, q in ((ROBOT, current), (reversed_robot, current[::-1].copy())):
        mpc = LatentMPC(model, PLANNER, robot)
        mpc.set_goal(frame(1))
        outputs.append(mpc.step(frame(0), q).command)
    np.testing.assert_allclose(outputs[1], outputs[0][::-1], atol=1e-9)


def test_bfloat16_rollouts_keep_the_model_and_command(model):
    mpc = LatentMPC(model, dataclasses.replace(PLANNER, precision="bfloat16"), ROBOT)
    assert next(model.parameters()).dtype == torch.float32  # the caller's model is left as it was
    assert next(mpc.rollout_model.parameters()).dtype == torch.bfloat16
    assert mpc.encode(frame(0)).dtype == torch.float32  # frames are still encoded in float32
    mpc.set_goal(frame(1))
    out = mpc.step(frame(0), np.zeros(3))
    assert out.command is not None and np.isfinite(out.energy)


def test_bfloat16_rollouts_pick_the_same_elites_on_the_default_checkpoint():
    trained = load_checkpoint(package_share() / "checkpoints" / "default")
    fast = LatentMPC(trained, dataclasses.replace(PlannerConfig(), precision="bfloat16"),
                     load_robot("jepa_arm")).rollout_model
    with make_sim(trained.config.encoder.image_size, 0) as sim:
        goal = sample_goals(sim, ReachingConfig(num_goals=1))[0]
        sim.reset()
        latent = trained.encode(torch.from_numpy(sim.render())[None])[0]
        joints = torch.tensor(sim.joint_positions, dtype=torch.float32)
    goal_latent = trained.encode(torch.from_numpy(goal.image)[None])[0]
    actions = (torch.randn(128, 4, 6, generator=torch.Generator().manual_seed(0)) * 0.5).clamp(-1, 1)
    exact = trained.rollout_fn(latent, joints)(actions)
    approx = fast.rollout_fn(latent.bfloat16(), joints)(actions).float()
    assert (approx - exact).abs().mean() < 0.05 * (exact - latent).abs().mean()
    cost_exact = (exact[:, -1] - goal_latent).abs().mean(dim=(1, 2))
    cost_approx = (approx[:, -1] - goal_latent).abs().mean(dim=(1, 2))
    elites_exact, elites_approx = set(cost_exact.argsort()[:16].tolist()), set(cost_approx.argsort()[:16].tolist())
    assert len(elites_exact & elites_approx) >= 14


def test_commands_never_pass_a_limit(model):
    # Wide actions and a start at the edge of the box: the clamp has to work every tick.
    planner = dataclasses.replace(PLANNER, action_bound=5.0, init_std=3.0, max_std=5.0)
    mpc = LatentMPC(model, planner, ROBOT)
    mpc.set_goal(frame(1))
    lower, upper = np.array(ROBOT.joint_lower), np.array(ROBOT.joint_upper)
    max_step = np.array(ROBOT.velocity_limits) / ROBOT.control_rate
    rng = np.random.default_rng(0)
    clamped_ticks = 0
    for tick in range(12):
        current = rng.uniform(lower - 0.05, upper + 0.05)  # sometimes already past a limit
        out = mpc.step(frame(tick + 10), current)
        assert np.all(out.command >= lower) and np.all(out.command <= upper), (current, out.command)
        inside = (current >= lower) & (current <= upper)
        assert np.all(np.abs(out.command - current)[inside] <= max_step[inside] + 1e-9)
        clamped_ticks += bool(out.warnings)
    assert clamped_ticks > 0  # the test really exercised the clamp


def test_commands_stay_in_the_explored_range(model):
    # the range the training data covered is narrower than the robot's limits: commands stay inside it
    lower, upper = np.array(ROBOT.joint_lower), np.array(ROBOT.joint_upper)
    explored = (lower + 0.3 * (upper - lower), upper - 0.3 * (upper - lower))
    planner = dataclasses.replace(PLANNER, action_bound=5.0, init_std=3.0, max_std=5.0)
    mpc = LatentMPC(model, planner, ROBOT, explored_range=explored)
    mpc.set_goal(frame(1))
    rng = np.random.default_rng(1)
    outside = 0
    for tick in range(10):
        current = rng.uniform(explored[0], explored[1])
        out = mpc.step(frame(tick + 10), current)
        assert np.all(out.command >= explored[0] - 1e-12) and np.all(out.command <= explored[1] + 1e-12)
        outside += bool(out.warnings)
    assert outside > 0  # wide actions really pushed against the explored range
    with pytest.raises(ConfigError, match=r"explored joint range has shapes \[2\], \[2\]; expected \[3\]"):
        LatentMPC(model, PLANNER, ROBOT, explored_range=(np.zeros(2), np.ones(2)))


def test_an_arm_outside_the_explored_range_is_brought_back_at_the_velocity_limit(model):
    # joint1 at 2.0 rad (legal) with the explored range ending at 0.95 rad was commanded to 0.95 rad in one
    # period: 5.25 rad/s against a 1.5 rad/s limit
    explored = (np.array(ROBOT.joint_lower) * 0.3, np.array(ROBOT.joint_upper) * 0.3)
    planner = dataclasses.replace(PLANNER, action_bound=5.0, init_std=3.0, max_std=5.0)
    period = 0.2
    mpc = LatentMPC(model, planner, ROBOT, control_period=period, explored_range=explored)
    mpc.set_goal(frame(1))
    current = np.array(ROBOT.joint_upper) * 0.9  # every joint far past the explored range
    max_step = np.array(ROBOT.velocity_limits) * period
    first = mpc.step(frame(10), current)
    np.testing.assert_allclose(first.command, current - max_step)  # toward the range, one step at the limit
    assert len(first.warnings) == 3 and all("exceeds velocity limit" in warning for warning in first.warnings)
    for tick in range(8):
        out = mpc.step(frame(tick + 11), current)
        assert np.all(np.abs(out.command - current) <= max_step + 1e-12), (current, out.command)
        current = out.command  # a servo that follows exactly
    assert np.all(current >= explored[0] - 1e-12) and np.all(current <= explored[1] + 1e-12)  # back inside


def test_mismatched_joints_refused_naming_both(model):
    other = dataclasses.replace(ROBOT, name="other", joint_names=("shoulder", "elbow", "wrist"))
    with pytest.raises(ConfigError, match=r"checkpoint joints \['joint1', 'joint2', 'joint3'\].*'other'.*'shoulder'"):
        LatentMPC(model, PLANNER, other)


def test_bad_inputs_are_named(model, tmp_path):
    mpc = LatentMPC(model, PLANNER, ROBOT)
    with pytest.raises(ControlError, match="dtype float32"):
        mpc.set_goal(np.zeros((32, 32, 3), dtype=np.float32))
    with pytest.raises(ControlError, match=r"shape \(32, 32, 2\)"):
        mpc.set_goal(np.zeros((32, 32, 2), dtype=np.uint8))
    mpc.set_goal(frame(1)[:, :, 0])  # mono is converted
    assert to_rgb(np.zeros((9, 9, 4), dtype=np.uint8)).shape == (9, 9, 3)  # RGBA too
    with pytest.raises(ControlError, match=r"non-finite joint positions: joint2=nan"):
        mpc.step(frame(0), np.array([0.0, np.nan, 0.0]))
    with pytest.raises(ControlError, match=r"shape \(2,\); expected \[3\]"):
        mpc.step(frame(0), np.zeros(2))
    with pytest.raises(ControlError, match="goal image is 40x40 but camera frames are 80x40"):
        mpc.step(frame(0, height=40, width=80), np.zeros(3))
    with pytest.raises(ControlError, match="does not exist"):
        read_image_file(tmp_path / "missing.png")
    (tmp_path / "junk.png").write_bytes(b"not an image")
    with pytest.raises(ControlError, match="could not be decoded"):
        read_image_file(tmp_path / "junk.png")


def test_goal_of_another_size_is_resized_like_camera_frames(model):
    def gradient(size: int) -> np.ndarray:  # smooth, so resampling barely changes it
        ramp = (np.arange(size) + 0.5) / size
        return (np.stack(np.broadcast_arrays(ramp[:, None], ramp[None, :], 0.5), axis=-1) * 255).astype(np.uint8)

    small, large = gradient(32), gradient(128)  # the model's size, and 4x larger
    mpc = LatentMPC(model, PLANNER, ROBOT)
    mpc.set_goal(large)
    goal_from_large = mpc.goal_latent.clone()
    mpc.set_goal(small)
    torch.testing.assert_close(goal_from_large, mpc.goal_latent, atol=0.05, rtol=0.05)
    assert mpc.step(gradient(64), np.zeros(3)).command is not None


class ExactJointModel(torch.nn.Module):
    """A world model whose latent is the arm's joint positions and whose rollout is exact.

    It isolates the controller's own mechanics (joint order, action scale, sign, clamping,
    warm start) from how well a learned model predicts: with it, MPC must reach every goal.
    """

    integrate = WorldModel.integrate  # the real model's state arithmetic, joints or end-effector pose
    actions_between = WorldModel.actions_between

    def __init__(self, joint_names: tuple[str, ...], action_space: str = "joint", action_scale: float = 0.1) -> None:
        super().__init__()
        self.config = WorldModelConfig(joint_names=joint_names, action_scale=action_scale, action_space=action_space)
        self.seen_joint_positions = np.zeros(self.config.action_dim)  # the state the "camera" shows now

    def latent_of(self, states: torch.Tensor) -> torch.Tensor:
        """The state itself; a pose as position and rotation matrix (roll-pitch-yaw wrap at +-pi)."""
        if self.config.action_space == "joint":
            return states
        from jepa_wm.models.end_effector import rpy_to_matrix

        return torch.cat([states[..., :3], 0.1 * rpy_to_matrix(states[..., 3:6]).flatten(-2)], dim=-1)

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        state = torch.tensor(self.seen_joint_positions, dtype=torch.float32)
        return self.latent_of(state).view(1, 1, -1)  # [1, N=1, D]

    def rollout_fn(self, latent: torch.Tensor, state: torch.Tensor):
        def rollout(actions: torch.Tensor) -> torch.Tensor:
            states, current = [], state.expand(len(actions), -1)
            for step in range(actions.shape[1]):
                current = self.integrate(current, actions[:, step])
                states.append(current)
            return self.latent_of(torch.stack(states, dim=1)).unsqueeze(2)  # [S, H, N=1, D]
        return rollout


@pytest.mark.parametrize("robot_name", ["jepa_arm", "so101_sim", "fr3_sim"])
def test_end_effector_actions_reach_goals_in_mujoco_through_inverse_kinematics(robot_name):
    # V-JEPA 2-AC's action space on three arms (6, 5 and 7 joints): the planner moves the tool's 7-D
    # pose, the controller turns each planned pose into joint commands by IK within the limits.
    from jepa_wm.config import load_robot

    sim = make_sim(64, 0, robot_name)
    goals = sample_goals(sim, ReachingConfig(num_goals=2, seed=1))
    robot = load_robot(robot_name)
    model = ExactJointModel(robot.joint_names, action_space="end_effector", action_scale=0.02)  # 2 cm per unit
    planner = PlannerConfig(method="mppi", horizon=2, num_samples=96, iterations=3)
    for goal in goals:
        sim.reset(seed=0)
        mpc = LatentMPC(model, planner, robot, control_period=sim.config.control_period)
        assert mpc.kinematics is not None
        model.seen_joint_positions = mpc.model_state(goal.joint_positions).numpy()
        mpc.set_goal(goal.image)
        start_error = np.linalg.norm(sim.end_effector_position() - goal.ee_position)
        for _ in range(40):
            model.seen_joint_positions = mpc.model_state(sim.joint_positions).numpy()
            out = mpc.step(sim.render(), sim.joint_positions)
            assert out.action.shape == (7,)
            sim.set_target(out.command)
            sim.step()
        final_error = np.linalg.norm(sim.end_effector_position() - goal.ee_position)
        assert start_error > 0.1 and final_error < 0.03, (start_error, final_error)


@pytest.mark.parametrize("method", ["cem", "mppi"])
def test_closed_loop_in_mujoco_reaches_goals_with_an_exact_model(method):
    from jepa_wm.config import load_robot
    from jepa_wm.reaching import ReachingConfig, make_sim, sample_goals

    sim = make_sim(64, 0)
    goals = sample_goals(sim, ReachingConfig(num_goals=2, seed=1))
    robot = load_robot("jepa_arm")
    reversed_joints = tuple(reversed(robot.joint_names))  # checkpoint order differs from the robot's
    model = ExactJointModel(reversed_joints)
    order = [robot.joint_names.index(name) for name in reversed_joints]
    for goal in goals:
        sim.reset(seed=0)
        mpc = LatentMPC(model, PlannerConfig(method=method), robot, control_period=sim.config.control_period)
        model.seen_joint_positions = goal.joint_positions[order]
        mpc.set_goal(goal.image)
        start_error = np.linalg.norm(sim.end_effector_position() - goal.ee_position)
        for _ in range(30):
            model.seen_joint_positions = sim.joint_positions[order]
            sim.set_target(mpc.step(sim.render(), sim.joint_positions).command)
            sim.step()
        final_error = np.linalg.norm(sim.end_effector_position() - goal.ee_position)
        assert start_error > 0.1 and final_error < 0.03, (start_error, final_error)


def test_a_command_still_under_way_is_imagined_not_dropped():
    # Over DDS a tick's inputs show the arm barely started on the previous command: the next
    # target must build on that command (imagined by the model), not restart from the measured pose.
    model = ExactJointModel(JOINTS)
    robot = dataclasses.replace(ROBOT, velocity_limits=(5.0, 5.0, 5.0))  # no velocity clamp in the way
    mpc = LatentMPC(model, dataclasses.replace(PLANNER, num_samples=64, iterations=3), robot)
    model.seen_joint_positions = np.array([0.8, 0.4, -1.5])  # the goal pose, far in every joint
    mpc.set_goal(frame(1))
    model.seen_joint_positions = np.zeros(3)
    first = mpc.step(frame(0), np.zeros(3)).command
    assert np.all(np.abs(first) > 0.05), first
    second = mpc.step(frame(0), np.zeros(3)).command  # the arm has not moved yet
    assert np.all(np.abs(second) > np.abs(first) + 0.05), (first, second)
    assert np.all(np.sign(second) == np.sign(first))
    # Once most of the move is done, the tick plans from the measured pose again.
    nearly_there = second - 0.3 * (second - first)
    latent, start = mpc.imagine_pending(torch.zeros(1, 3), nearly_there)
    np.testing.assert_array_equal(start, nearly_there)
    mpc.reset()  # commanding paused: nothing is under way any more
    assert mpc.pending is None


class CameraJointModel(ExactJointModel):
    """ExactJointModel whose camera is the simulator: it sees the goal pose in a goal image, else the arm now."""

    def __init__(self, joint_names: tuple[str, ...], sim, goals) -> None:
        super().__init__(joint_names)
        self.sim, self.goal_poses = sim, {goal.image.tobytes(): goal.joint_positions for goal in goals}

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        self.seen_joint_positions = self.goal_poses.get(frames[0].numpy().tobytes(), self.sim.joint_positions)
        return super().encode(frames)


def test_closed_loop_in_mujoco_reaches_goals_when_commands_arrive_late():
    # As over DDS: the new target reaches the arm 80 % into the period (planning time), so each
    # tick's frame shows the arm just starting on the previous command.
    sim = make_sim(64, 0)
    config = ReachingConfig(num_goals=2, seed=1, max_steps=30)
    goals = sample_goals(sim, config)
    robot = load_robot("jepa_arm")
    mpc = LatentMPC(CameraJointModel(robot.joint_names, sim, goals), PlannerConfig(), robot,
                    control_period=config.control_period)
    delay = 0.8 * config.control_period
    command_times = []
    set_target = sim.set_target
    sim.set_target = lambda target: (command_times.append(round(sim.time, 6)), set_target(target))
    episodes = run_controller(sim, goals, config, mpc, command_delay=delay)
    # every command lands `delay` after its frame, one per period
    expected = [round(delay + k * config.control_period, 6) for k in range(config.max_steps)]
    assert command_times == expected * len(goals)
    for episode in episodes:
        assert episode.errors_m[0] > 0.1 and episode.final_error_m < 0.03, episode.errors_m
        assert len(episode.errors_m) == config.max_steps + 1
    with pytest.raises(ValueError, match="command_delay=0.2 s"):
        run_controller(sim, goals, config, mpc, command_delay=0.2)


def test_torchscript_rollouts_plan_the_same_commands_as_eager_ones(model):
    commands = []
    for graph in ("eager", "torchscript"):
        mpc = LatentMPC(model, dataclasses.replace(PLANNER, rollout_graph=graph), ROBOT)
        mpc.set_goal(frame(1))
        joints = np.zeros(3)
        for step in range(3):  # the second and third plans start from an imagined, still pending command
            joints = mpc.step(frame(2 + step), joints).command * 0.3 + joints * 0.7
        commands.append(joints)
    # float rounding differs by ~1e-6 in the latents; the elite weights amplify it a little
    np.testing.assert_allclose(commands[0], commands[1], atol=1e-3)
    assert np.abs(commands[0]).max() > 0.02  # it moved
    with pytest.raises(ValueError, match="planner.rollout_graph='jit'"):
        PlannerConfig(rollout_graph="jit")


def test_auto_precision_takes_bfloat16_only_where_the_hardware_computes_it(model, monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert resolve_precision("auto", "cpu") == "float32"  # emulated bfloat16 is ~9x slower on AVX2
    mpc = LatentMPC(model, dataclasses.replace(PLANNER, precision="auto"), ROBOT)
    assert mpc.precision == "float32" and mpc.rollout_model is model
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    mpc = LatentMPC(model, dataclasses.replace(PLANNER, precision="auto"), ROBOT)
    assert mpc.precision == "bfloat16" and next(mpc.rollout_model.parameters()).dtype == torch.bfloat16
    # the chip has it, but torch dispatches as on an AVX2 CPU (ATEN_CPU_CAPABILITY=avx2): emulated there
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert resolve_precision("auto", "cpu") == "float32"
    assert resolve_precision("float32", "cpu") == "float32"  # an explicit choice is kept
    with pytest.raises(ValueError, match="planner.precision='half'"):
        PlannerConfig(precision="half")


class ExactLatentModel(ExactJointModel):
    """ExactJointModel that predicts from what the frame shows (its latent), not from the joint states."""

    def rollout_fn(self, latent: torch.Tensor, joint_positions: torch.Tensor):
        return lambda actions: (latent.view(1, 1, -1) + actions.cumsum(dim=1) * self.config.action_scale).unsqueeze(2)


def test_the_model_plans_from_the_frame_time_joints_and_the_clamp_uses_the_newest():
    # The camera lags the joint states: the frame shows 0.25 rad while the joints already read 0.28.
    # Planned from the frame, the goal 0.3 is 0.05 away, and that move starts from the frame's 0.25;
    # adding it to the newest 0.28 would overshoot to 0.33.
    model = ExactLatentModel(JOINTS)
    robot = dataclasses.replace(ROBOT, velocity_limits=(0.5, 0.5, 0.5))  # 0.1 rad per 0.2 s period
    planner = dataclasses.replace(PLANNER, num_samples=256, iterations=4, cost="l2", cost_over_horizon=True)
    mpc = LatentMPC(model, planner, robot, control_period=0.2)
    model.seen_joint_positions = np.full(3, 0.3)
    mpc.set_goal(frame(1))
    model.seen_joint_positions = np.full(3, 0.25)
    out = mpc.step(frame(0), np.full(3, 0.28), frame_joint_positions=np.full(3, 0.25))
    np.testing.assert_allclose(out.command, 0.3, atol=0.02)  # planning noise ~0.01; the old pairing gave 0.33
    mpc.reset()
    out = mpc.step(frame(0), np.full(3, 0.1), frame_joint_positions=np.full(3, 0.25))
    # the velocity clamp is measured from the newest joints: at most 0.1 rad from 0.1
    assert np.all(out.command <= 0.2 + 1e-9), out.command
    with pytest.raises(ControlError, match="non-finite"):
        mpc.step(frame(0), np.full(3, 0.28), frame_joint_positions=np.array([0.2, np.nan, 0.2]))


def test_from_checkpoint_defaults_to_the_embedded_model_and_checks_the_robot_first(tmp_path):
    from jepa_wm.config import load_robot
    from jepa_wm.models.checkpoint import CheckpointError

    mpc = LatentMPC.from_checkpoint(None, PLANNER, load_robot("jepa_arm"))
    lower, upper = mpc.explored_range
    assert np.all(lower > np.array(mpc.robot.joint_lower)) and np.all(upper < np.array(mpc.robot.joint_upper))
    assert LatentMPC.from_checkpoint(None, PLANNER, load_robot("jepa_arm"), stay_in_explored_range=False).explored_range is None
    with pytest.raises(ConfigError, match=r"checkpoint joints \['joint1'.*robot 'ur5e' joints"):
        LatentMPC.from_checkpoint(None, PLANNER, load_robot("ur5e"))
    with pytest.raises(CheckpointError, match="missing does not exist"):
        LatentMPC.from_checkpoint(tmp_path / "missing", PLANNER, load_robot("jepa_arm"))


def test_from_checkpoint_refuses_a_control_period_other_than_the_trained_step(tmp_path):
    from jepa_wm.config import load_robot
    from jepa_wm.models import save_checkpoint

    robot = load_robot("jepa_arm")
    model = WorldModel(dataclasses.replace(TINY, joint_names=robot.joint_names))
    folder = save_checkpoint(model, tmp_path / "five_hz", {"period_s": 0.2})
    assert LatentMPC.from_checkpoint(folder, PLANNER, robot, control_period=0.2).control_period == 0.2
    with pytest.raises(ConfigError, match=r"0\.100 s step \(10\.00 Hz\), but the checkpoint was trained at 0\.200 s "
                                          r".*set control_rate to 5\.00 Hz"):
        LatentMPC.from_checkpoint(folder, PLANNER, robot, control_period=0.1)


def test_at_the_goal_the_arm_is_held_until_the_frame_drifts_past_the_resume_distance(model):
    goal, far = frame(1), frame(2)
    probe = LatentMPC(model, PLANNER, ROBOT)
    probe.set_goal(goal)
    far_distance = probe.step(far, np.zeros(3)).goal_distance
    assert probe.step(goal, np.zeros(3)).goal_distance == pytest.approx(0.0, abs=1e-6)  # the goal's own frame
    mpc = LatentMPC(model, PLANNER, ROBOT, arrival=Arrival(0.25 * far_distance, 0.75 * far_distance))
    mpc.set_goal(goal)
    assert not mpc.step(far, np.zeros(3)).reached  # away: it plans
    current = np.array([0.2, -0.1, 0.3])
    held = mpc.step(goal, current)
    assert held.reached and held.command.tolist() == current.tolist() and not np.isfinite(held.plan_ms)
    assert mpc.pending is None and mpc.warm_start is None
    # between the two distances a held arm stays held (a blend of the goal and a far frame)
    between = (0.6 * goal + 0.4 * far).astype(np.uint8)
    distance = mpc.step(between, current).goal_distance
    if 0.25 * far_distance < distance <= 0.75 * far_distance:
        assert mpc.holding
    assert not mpc.step(far, current).reached  # pushed away: planning resumes
    mpc.step(goal, current)
    # a held arm at rest whose frame stays above the hold distance stopped short: it plans again
    assert mpc.holding
    blends = [((1 - w) * goal + w * far).astype(np.uint8) for w in np.linspace(0.05, 0.95, 19)]
    near = next(b for b in blends if 0.3 * far_distance < probe.step(b, np.zeros(3)).goal_distance < 0.7 * far_distance)
    assert mpc.step(near, current).reached  # one frame above the hold distance: still held
    for _ in range(SETTLE_TICKS - 2):
        assert mpc.step(near, current).reached
    assert not mpc.step(near, current).reached and not mpc.holding
    assert mpc.step(goal, current).reached  # and holds again once it looks arrived
    mpc.set_goal(far)  # a new goal always starts with a plan
    assert not mpc.holding
    with pytest.raises(ConfigError, match=r"reach distances \(0.5, 0.1\): expected 0 < hold_below <= resume_above"):
        Arrival(0.5, 0.1)


def test_from_checkpoint_takes_the_calibrated_reach_unless_told_not_to(tmp_path):
    from jepa_wm.config import load_robot
    from jepa_wm.models import save_checkpoint

    robot = load_robot("jepa_arm")
    model = WorldModel(dataclasses.replace(TINY, joint_names=robot.joint_names))
    reach = {"hold_below": 0.04, "resume_above": 0.07, "tool_hold_m": 0.015, "tool_resume_m": 0.03}
    folder = save_checkpoint(model, tmp_path / "calibrated", {"reach": reach})
    # no state readout: the latent distances
    assert LatentMPC.from_checkpoint(folder, PLANNER, robot).arrival == Arrival(0.04, 0.07)
    assert LatentMPC.from_checkpoint(folder, PLANNER, robot, hold_at_goal=False).arrival is None
    read = WorldModel(dataclasses.replace(TINY, joint_names=robot.joint_names, state_readout=True))
    folder = save_checkpoint(read, tmp_path / "with_readout", {"reach": reach})
    assert LatentMPC.from_checkpoint(folder, PLANNER, robot).arrival == Arrival(0.04, 0.07, 0.015, 0.03)
    with pytest.raises(ConfigError, match="by the tool's distance needs a checkpoint with a state readout"):
        LatentMPC(model, PLANNER, robot, arrival=Arrival(0.04, 0.07, 0.015, 0.03))
    with pytest.raises(ConfigError, match=r"reach distances \(0.03, 0.015\)"):
        Arrival(0.04, 0.07, 0.03, 0.015)
    # by the tool alone: a frame far in latent distance (a changed scene offsets it) but with its tool read at the
    # goal is held; the same frame is not held by both
    alone = LatentMPC.from_checkpoint(folder, PLANNER, robot, hold_by="tool").arrival
    assert alone == Arrival(0.04, 0.07, 0.015, 0.03, by_latent=False)
    assert alone.within(0.5, 0.01) and not Arrival(0.04, 0.07, 0.015, 0.03).within(0.5, 0.01)
    assert not alone.within(0.01, 0.02) and alone.within(0.5, 0.02, resume=True) and not alone.within(0.5, 0.04, resume=True)
    with pytest.raises(ConfigError, match="hold_by='tool' needs the tool's distance"):
        LatentMPC.from_checkpoint(tmp_path / "calibrated", PLANNER, robot, hold_by="tool")  # no readout
    with pytest.raises(ConfigError, match="hold_by='latent': expected one of latent_and_tool, tool"):
        Arrival.of_calibration(reach, True, "latent")
    with pytest.raises(ConfigError, match="needs the tool's hold and resume distances"):
        Arrival(0.04, 0.07, by_latent=False)


def test_with_a_readout_the_arm_is_held_only_where_the_tool_also_reads_at_the_goal():
    """Two frames the same latent distance from the goal, within its hold distance: the one whose tool reads at
    the goal is held, the other plans; the tool's distance is read from both latents through the robot's
    forward kinematics."""
    from jepa_wm.config import load_robot
    from jepa_wm.kinematics import ArmKinematics

    robot = load_robot("jepa_arm")
    torch.manual_seed(0)
    model = WorldModel(dataclasses.replace(TINY, joint_names=robot.joint_names, state_readout=True)).eval()
    goal, other = frame(1), frame(2)
    with torch.no_grad():
        goal_latent = model.encode(torch.from_numpy(goal)[None])[0].flatten()
    # the readout: a home pose plus the first joint turned by the latent's first feature less the goal's
    home = np.array([0.0, 0.3, 0.6, 0.0, 0.4, 0.0])
    model.readout.weights.zero_()
    model.readout.weights[-1] = torch.tensor(home) - torch.tensor([float(goal_latent[0]), 0, 0, 0, 0, 0])
    model.readout.weights[0, 0] = 1.0
    mpc = LatentMPC(model, PLANNER, robot, 0.2, arrival=Arrival(10.0, 10.0, 0.015, 0.03))  # any latent distance
    mpc.set_goal(goal)
    np.testing.assert_allclose(mpc.goal_tool, ArmKinematics.of_robot(robot).pose(home)[:3], atol=1e-6)
    at_goal = mpc.step(goal, home)
    assert at_goal.reached and at_goal.tool_distance_m == pytest.approx(0.0, abs=1e-6)
    # the other frame's first feature differs: the base reads turned, the tool far from the goal
    mpc.set_goal(goal)
    away = mpc.step(other, home)
    assert not away.reached and away.tool_distance_m > 0.03 and away.goal_distance > 0.1
    # with the first feature ignored it reads at the goal: held
    model.readout.weights[0, 0] = 0.0
    model.readout.weights[-1] = torch.tensor(home)
    mpc.set_goal(goal)
    held = mpc.step(other, home)
    assert held.reached and held.goal_distance == pytest.approx(away.goal_distance)
    # but not when its latent distance is beyond the hold distance as well
    strict = LatentMPC(model, PLANNER, robot, 0.2, arrival=Arrival(0.5 * away.goal_distance, 10.0, 0.015, 0.03))
    strict.set_goal(goal)
    assert not strict.step(other, home).reached and strict.step(goal, home).reached


def test_a_planning_budget_fits_the_candidates_to_this_machine(model):
    planner = dataclasses.replace(PLANNER, num_samples=40, num_elites=12)
    roomy = LatentMPC(model, dataclasses.replace(planner, budget_ms=1e6), ROBOT)
    assert (roomy.planner.num_samples, roomy.planner.num_elites, roomy.budget_overrun_ms) == (40, 12, 0.0)
    # no machine replans in a microsecond: the fewest candidates, at most half of them elites, and the overrun said
    tight = LatentMPC(model, dataclasses.replace(planner, budget_ms=1e-3), ROBOT)
    assert (tight.planner.num_samples, tight.planner.num_elites) == (FEWEST_SAMPLES, FEWEST_SAMPLES // 2)
    assert tight.budget_overrun_ms > 0 and tight.replan_ms(FEWEST_SAMPLES, repeats=1) > 0
    # timing used its own random numbers: the budgeted controller plans as one made with that count does
    plain = LatentMPC(model, dataclasses.replace(planner, num_samples=FEWEST_SAMPLES, num_elites=FEWEST_SAMPLES // 2),
                      ROBOT)
    commands = []
    for mpc in (tight, plain):
        mpc.set_goal(frame(1))
        commands.append(mpc.step(frame(0), np.zeros(3)).command)
    np.testing.assert_array_equal(commands[0], commands[1])


def test_planning_budget_is_checked():
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ConfigError, match=rf"planner.budget_ms={bad}: expected >= 0 ms"):
            PlannerConfig(budget_ms=bad)


def test_node_planner_is_the_packaged_node_config_with_overrides():
    node = node_planner()
    assert (node.budget_ms, node.rollout_graph, node.precision) == (80.0, "torchscript", "auto")
    assert node.num_samples == PlannerConfig().num_samples  # not set in the node's file: the library default
    assert node_planner({"budget_ms": 0, "horizon": 3}).budget_ms == 0 and node_planner({"horizon": 3}).horizon == 3
    with pytest.raises(ConfigError, match="num_candidates"):
        node_planner({"num_candidates": 8})
