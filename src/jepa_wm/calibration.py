"""`jepa-ros calibrate`: when the arm counts as arrived at a goal, stored in the checkpoint.

The controller holds the arm still once the camera frame's latent is near the goal image's and (with a
state readout) the tool read from both is within half the success radius (controller.Arrival). The
latent distances that say "arrived" and "pushed away" depend on the checkpoint; they are set here
from frames whose tool is known to be near a goal or away from it: rendered by the simulated arm
around seeded goals, or, for an arm that is not simulated, taken from its exploration bags (the tool
of every recorded frame by forward kinematics of its measured joints, goals being recorded frames).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from jepa_wm.config import RobotConfig
from jepa_wm.data.episodes import Episode
from jepa_wm.reaching import ReachingConfig, hold_criterion, make_sim, sample_goals
from jepa_wm.sim import ArmSim

JOINT_SCALES = (0.0, 0.01, 0.02, 0.04, 0.06, 0.1, 0.15)  # rad of joint noise around a simulated goal pose
# Recorded frames compared with a goal frame: those whose joints are all within this of the goal's, as
# the simulated ones are drawn around the goal pose (a tool at the same place in another arm pose looks
# different, and the controller meets those only as it arrives).
BAG_JOINT_WINDOW = 0.3  # rad
BAG_FRAMES_PER_GOAL = 24  # at most this many near and this many away per goal frame


def calibrate_reach(model, sim: ArmSim, config: ReachingConfig, poses_per_scale: int = 4) -> dict[str, float]:
    """Distances to the goal that say "arrived" and "pushed away", from the simulated arm.

    For seeded goals, frames of poses scattered around each goal are rendered and set against the end
    effector's distance to the goal (:func:`reach_distances`).
    """
    import torch

    from jepa_wm.config import load_robot
    from jepa_wm.planning.costs import latent_distance

    tool = _tool_reader(model, load_robot(sim.config.robot)) if getattr(model, "readout", None) is not None else None
    rng = np.random.default_rng(config.seed)
    samples = Samples()
    with torch.inference_mode():
        for goal in sample_goals(sim, config):
            goal_latent = model.encode(torch.from_numpy(goal.image)[None])[0]
            goal_tool = tool(goal_latent) if tool else None
            for scale in JOINT_SCALES:
                for _ in range(poses_per_scale):
                    sim.reset(seed=config.seed, joint_positions=goal.joint_positions + rng.normal(0, scale, len(goal.joint_positions)))
                    error = float(np.linalg.norm(sim.end_effector_position() - goal.ee_position))
                    latent = model.encode(torch.from_numpy(sim.render())[None])
                    distance = float(latent_distance(latent[None], goal_latent)[0, 0])
                    read = float(np.linalg.norm(tool(latent[0]) - goal_tool)) if tool else math.nan
                    samples.add(error, distance, read, config.success_radius)
    sim.reset(seed=config.seed)
    return reach_distances(samples, config, tool is not None, {"goals": config.num_goals, "seed": config.seed})


def calibrate_reach_on_bags(model, episodes: list[Episode], robot: RobotConfig, config: ReachingConfig) -> dict[str, float]:
    """Distances to the goal that say "arrived" and "pushed away", from recorded frames (no simulation).

    Every frame's tool position is forward kinematics of its measured joints on ``robot``'s description.
    Goals are ``4 * config.num_goals`` recorded frames drawn with ``config.seed``; the frames compared with a
    goal are those with every joint within BAG_JOINT_WINDOW of the goal frame's (the goal frame itself
    left out), at most BAG_FRAMES_PER_GOAL near and as many away. Then as :func:`calibrate_reach`.
    """
    import torch

    from jepa_wm.kinematics import ArmKinematics, tool_position
    from jepa_wm.planning.costs import latent_distance

    if not robot.description:
        raise ValueError(f"robot {robot.name!r} has no description (URDF): calibrating on bags measures each frame's "
                         "tool by forward kinematics; set `description` in its preset")
    kinematics = ArmKinematics.of_robot(robot)
    names = episodes[0].joint_names
    missing = [name for name in robot.joint_names if name not in names]
    if missing:
        raise ValueError(f"the bags' joints {list(names)} lack the robot's {missing}")
    order = [names.index(name) for name in robot.joint_names]
    where = np.array([(e, t) for e, episode in enumerate(episodes) for t in range(len(episode))])  # [F, 2]
    joints = np.concatenate([episode.joint_positions for episode in episodes]).astype(np.float64)  # [F, J]
    tools = np.stack([tool_position(q[order], "joint", kinematics) for q in joints])  # [F, 3] m
    tool = _tool_reader(model, robot) if getattr(model, "readout", None) is not None else None
    rng = np.random.default_rng(config.seed)
    samples, goals = Samples(), 0
    with torch.inference_mode():
        for g in rng.choice(len(joints), size=min(4 * config.num_goals, len(joints)), replace=False):
            close = np.flatnonzero(np.abs(joints - joints[g]).max(axis=1) <= BAG_JOINT_WINDOW)
            close = close[close != g]
            errors = np.linalg.norm(tools[close] - tools[g], axis=1)
            near = rng.permutation(close[errors < config.success_radius / 2])[:BAG_FRAMES_PER_GOAL]
            away = rng.permutation(close[errors > config.success_radius])[:BAG_FRAMES_PER_GOAL]
            chosen = np.concatenate([[g], near, away])
            if len(chosen) == 1:
                continue
            frames = np.stack([episodes[e].frames[t] for e, t in where[chosen]])
            latents = model.encode(torch.from_numpy(frames))  # [1 + M, N, D]
            distances = latent_distance(latents[1:, None], latents[0])[:, 0]
            goal_tool = tool(latents[0]) if tool else None
            for index, distance, latent in zip(chosen[1:], distances.tolist(), latents[1:]):
                read = float(np.linalg.norm(tool(latent) - goal_tool)) if tool else math.nan
                samples.add(float(np.linalg.norm(tools[index] - tools[g])), distance, read, config.success_radius)
            goals += 1
    return reach_distances(samples, config, tool is not None, {"goals": goals, "seed": config.seed, "source": "bags"})


class Samples:
    """Frames near a goal (tool within half the success radius) and away (beyond it): latent and read distances."""

    def __init__(self) -> None:
        self.near: list[float] = []
        self.far: list[float] = []
        self.near_read: list[float] = []
        self.far_read: list[float] = []

    def add(self, error_m: float, distance: float, read_m: float, success_radius: float) -> None:
        """One frame with its tool ``error_m`` from the goal's, latent ``distance`` and read tool distance."""
        if error_m < success_radius / 2:
            self.near.append(distance)
            self.near_read.append(read_m)
        elif error_m > success_radius:
            self.far.append(distance)
            self.far_read.append(read_m)


def reach_distances(samples: Samples, config: ReachingConfig, tool: bool, source: dict) -> dict[str, float]:
    """The reach calibration of near and away frames: hold_below is the 90th percentile of the latent
    distances near (such a frame looks arrived), resume_above the 5th percentile away (such a frame looks
    away); a latent that cannot tell them apart is refused. With the tool read (``tool``), how often the
    reading says "arrived" near and away (tool_near_held, tool_away_held); a readout that holds a fifth
    of the frames away is refused. ``source`` is recorded with them."""
    near, far = samples.near, samples.far
    if len(near) < 10 or len(far) < 10:
        raise ValueError(f"calibration drew {len(near)} frames near the goals and {len(far)} away; expected 10 of each")
    hold_below, resume_above = float(np.percentile(near, 90)), float(np.percentile(far, 5))
    if hold_below >= resume_above:
        raise ValueError(f"the latent does not tell arrived from away: 90 % of frames within "
                         f"{config.success_radius / 2 * 100:.1f} cm lie below {hold_below:.3f}, 5 % of frames beyond "
                         f"{config.success_radius * 100:.0f} cm below {resume_above:.3f}")
    reach = {"hold_below": hold_below, "resume_above": resume_above, "success_radius_m": config.success_radius,
             "frames_near": len(near), "frames_away": len(far), **source}
    if tool:
        hold_m = config.success_radius / 2
        reach.update(tool_hold_m=hold_m, tool_resume_m=config.success_radius,
                     tool_near_held=float(np.mean(np.array(samples.near_read) <= hold_m)),
                     tool_away_held=float(np.mean(np.array(samples.far_read) <= hold_m)))
        if reach["tool_away_held"] > 0.2:
            raise ValueError(f"the state readout does not tell arrived from away: it reads {reach['tool_away_held']:.0%} "
                             f"of the frames beyond {config.success_radius * 100:.0f} cm as within {hold_m * 100:.1f} cm")
    return reach


def _tool_reader(model, robot: RobotConfig):
    """latent [N, D] -> the tool's position (m) read from it: the model's state readout, then forward kinematics
    of ``robot`` (joint models) or the pose's position (end-effector and planar models)."""
    from jepa_wm.kinematics import ArmKinematics, tool_position

    space = model.config.action_space
    kinematics = ArmKinematics.of_robot(robot) if space == "joint" else None
    order = [model.config.joint_names.index(name) for name in robot.joint_names]  # model order -> the robot's

    def read(latent):
        state = model.readout(latent).double().cpu().numpy()
        return tool_position(state[order] if space == "joint" else state, space, kinematics)

    return read


def add_arguments(parser) -> None:
    """Arguments of `jepa-ros calibrate`."""
    from jepa_wm.data.options import add_bag_arguments

    parser.add_argument("--checkpoint", default=None, help="checkpoint folder (default: the embedded one); its "
                        "config.json gets the reach distances")
    parser.add_argument("--on", choices=("auto", "sim", "bags"), default="auto",
                        help="what the frames near and away from goals come from: the simulated arm, or the recorded "
                             "frames of --bags (the tool by forward kinematics of the measured joints); auto: the "
                             "simulation for a simulated preset, else the bags")
    parser.add_argument("--goals", type=int, default=12, help="seeded goals to calibrate on (on bags: 4x as many "
                        "recorded frames)")
    parser.add_argument("--seed", type=int, default=10, help="seed of the goals (not the benchmark's 0, 1, 2)")
    parser.add_argument("--scene-seed", type=int, default=0, help="object placement of the simulated scene")
    parser.add_argument("--bags", nargs="+", default=None,
                        help="exploration bags: the state readout is fitted on them first where the checkpoint has "
                             "none (trained before readouts, or imported), and --on bags calibrates on their frames; "
                             "--robot defaults to the checkpoint's")
    add_bag_arguments(parser)  # its --robot is also the simulated arm's (default: the checkpoint's)


def run(args) -> int:
    """Calibrate the reach distances of a checkpoint and store them in it."""
    from jepa_wm.config import load_robot
    from jepa_wm.data.options import bag_reading
    from jepa_wm.models.checkpoint import checkpoint_robot, default_checkpoint, load_checkpoint, update_metadata

    folder = args.checkpoint or default_checkpoint()
    model = load_checkpoint(folder).eval()
    args.robot = args.robot or checkpoint_robot(folder)
    robot = load_robot(args.robot)
    source = args.on if args.on != "auto" else ("sim" if robot.simulated else "bags")
    if source == "bags" and not args.bags:
        raise SystemExit(f"robot {robot.name!r} is {'' if robot.simulated else 'not '}simulated here: calibrating "
                         "on recorded frames needs its exploration bags (--bags DIR...)")
    episodes = None
    if args.bags:
        from jepa_wm.data import read_episodes

        reading = bag_reading(args)
        episodes = read_episodes(args.bags, reading.topics, reading.period,
                                 reading.joint_names or model.config.joint_names, image_size=model.config.encoder.image_size)
        if model.readout is None:
            fit_readout_on_bags(model, folder, args, episodes, reading.robot)
    config = ReachingConfig(num_goals=args.goals, seed=args.seed, scene_seed=args.scene_seed)
    if source == "bags":
        reach = calibrate_reach_on_bags(model, episodes, robot, config)
    else:
        with make_sim(model.config.encoder.image_size, config.scene_seed, args.robot) as sim:
            reach = calibrate_reach(model, sim, config)
    update_metadata(folder, reach=reach)
    print(f"{folder}: {hold_criterion(reach)} ({reach['frames_near']} frames within {config.success_radius * 50:.1f} cm, "
          f"{reach['frames_away']} beyond {config.success_radius * 100:.0f} cm)")
    return 0


def fit_readout_on_bags(model, folder: Path, args, episodes: list[Episode], robot: RobotConfig | None) -> None:
    """Fit ``model``'s state readout on the exploration ``episodes`` (read from ``args.bags``) and save it into
    checkpoint ``folder`` (weights and config; the metadata gains ``readout``: the bags and the held-out read
    errors). ``robot`` converts them to a non-joint action space."""
    from jepa_wm.data import split_episodes
    from jepa_wm.data.end_effector import in_action_space
    from jepa_wm.models.checkpoint import read_checkpoint_config, save_checkpoint
    from jepa_wm.training.arm_fit import fit_state_readout

    train, val = split_episodes(in_action_space(episodes, model.config, robot), 0.1, 0)
    figures = fit_state_readout(model, train, val, appearance=model.arm is not None)
    metadata = read_checkpoint_config(folder)[1]
    save_checkpoint(model, folder, {**metadata, "readout": {"bags": [str(b) for b in args.bags], **figures}})
    print(f"{folder}: state readout fitted on {len(train)} episodes; held-out RMS error "
          + ", ".join(f"{k.removeprefix('read_rmse_')} {v:.3g}" for k, v in figures.items() if k.startswith("read_rmse_")))
