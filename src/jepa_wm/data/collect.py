"""`jepa-ros collect`: exploration episodes straight from the MuJoCo arm into rosbag2 files.

No DDS: ArmSim is stepped in-process and every message sim_node would publish is written
with BagWriter, stamped with simulated time. One bag per episode (DIR/episode_0000/ ...).
Each episode starts from a seeded random pose in the exploration box and follows a
RandomWalkExplorer; what an episode contains depends only on (seed, episode index), so
the output is the same for any number of worker processes.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from tqdm import tqdm

from jepa_wm import topics
from jepa_wm.config import ConfigError, SimConfig
from jepa_wm.data.rosbag_io import BagWriter

if TYPE_CHECKING:
    from jepa_wm.sim import ArmSim

NS = 1_000_000_000
AUTO_PARALLEL_FRAMES = 600  # below this many frames one process is faster than two (a worker takes ~2 s to start)


@dataclass(frozen=True)
class CollectConfig:
    """What `jepa-ros collect` generates."""

    out: str
    robot: str = "jepa_arm"  # simulated robot preset (config/robots/<robot>.yaml with a description)
    episodes: int = 10
    steps: int = 60
    storage: Literal["mcap", "sqlite3"] = "mcap"
    image_size: int = 128
    control_period: float = 0.2  # s of simulated time per step (one frame and one command each)
    joint_state_rate: float = 50.0  # Hz of joint_states and end_effector_position, as sim_node publishes them
    seed: int = 0  # start poses and exploration
    scene_seed: int = 0  # object placement; 0 is the scene every other sim user builds by default
    max_delta: float = 0.1  # rad per joint per step
    smoothing: float = 0.8
    # "reach": a random walk of the joints; "push": random pushes of the block with the tool held at push
    # height (sim/push_explorer.py), its pose recorded on object_pose for evaluation only
    scene: Literal["reach", "push"] = "reach"
    # share of the episodes seen in another room and camera (sim/scene.py: varied_appearance), drawn per
    # episode; 0: every episode in the scene every other sim user builds
    vary_scene: float = 0.0
    supersampling: int = SimConfig.supersampling  # camera pixels averaged from k x k rendered ones
    workers: int = 0  # 0: auto (one process for small jobs, where starting another costs more than it saves)

    def __post_init__(self) -> None:
        if self.episodes < 1 or self.steps < 1:
            raise ConfigError(f"collect episodes={self.episodes}, steps={self.steps}: expected both >= 1")
        if self.storage not in ("mcap", "sqlite3"):
            raise ConfigError(f"collect storage={self.storage!r}: expected 'mcap' or 'sqlite3'")
        if self.max_delta <= 0:
            raise ConfigError(f"collect max_delta={self.max_delta}: expected > 0 rad")
        if not 0 <= self.vary_scene <= 1:
            raise ConfigError(f"collect vary_scene={self.vary_scene}: expected a share in 0..1")
        if self.workers < 0:
            raise ConfigError(f"collect workers={self.workers}: expected >= 1, or 0 for automatic")
        ticks = self.control_period * self.joint_state_rate
        if self.joint_state_rate <= 0 or abs(ticks - round(ticks)) > 1e-6 or round(ticks) < 1:
            raise ConfigError(f"collect joint_state_rate={self.joint_state_rate} Hz: expected a whole number of "
                              f"joint states per control_period={self.control_period} s")
        physics = self.sim_config().physics_timestep  # also validates image_size and control_period
        substeps = 1.0 / (self.joint_state_rate * physics)
        if abs(substeps - round(substeps)) > 1e-6:
            raise ConfigError(f"collect joint_state_rate={self.joint_state_rate} Hz: its period is not a multiple "
                              f"of the physics timestep {physics} s")

    def sim_config(self) -> SimConfig:
        """The simulation every worker builds."""
        return SimConfig(robot=self.robot, image_size=self.image_size, control_period=self.control_period,
                         seed=self.scene_seed, supersampling=self.supersampling, scene=self.scene)

    def worker_count(self) -> int:
        """Processes to run: a worker takes about 2 s to start, so small jobs stay in one."""
        if self.workers:
            return min(self.workers, self.episodes)
        frames = self.episodes * self.steps
        return 1 if frames < AUTO_PARALLEL_FRAMES else min(os.cpu_count() or 1, 2, self.episodes)

    def episode_path(self, index: int) -> Path:
        """Bag folder of one episode."""
        return Path(self.out) / f"episode_{index:04d}"


_SIMS: dict[SimConfig, ArmSim] = {}  # the worker process's ArmSim, kept while episodes share its configuration


def _worker_sim(sim_config: SimConfig) -> ArmSim:
    from jepa_wm.sim import ArmSim  # imported here: MuJoCo is slow to load and only workers need it

    if sim_config not in _SIMS:
        for previous in _SIMS.values():  # one OpenGL context per process
            previous.close()
        _SIMS.clear()
        _SIMS[sim_config] = ArmSim(sim_config)
    return _SIMS[sim_config]


def episode_scene(config: CollectConfig, index: int) -> SimConfig:
    """The simulation of episode ``index``: the collect's scene, or (a ``vary_scene`` share of the
    episodes, drawn from (seed, index)) that scene in another room and camera."""
    sim_config = config.sim_config()
    if config.vary_scene == 0:
        return sim_config
    from jepa_wm.sim.scene import varied_appearance

    rng = np.random.default_rng([config.seed, index, 1])  # its own stream: the motion stays as without
    return varied_appearance(sim_config, rng) if rng.random() < config.vary_scene else sim_config


def collect_episode(config: CollectConfig, index: int) -> Path:
    """Simulate and write episode ``index``; returns its bag folder."""
    from jepa_wm.sim import RandomWalkExplorer

    sim = _worker_sim(episode_scene(config, index))
    rng = np.random.default_rng([config.seed, index])
    if config.scene == "push":
        from jepa_wm.sim.push_explorer import PushExplorer

        sim.reset(seed=int(rng.integers(2**31)))  # the block where this episode's seed puts it
        explorer = PushExplorer(sim, rng)
        sim.reset(joint_positions=explorer.start(), object_pose=sim.object_pose())
        next_target = explorer.next_target
    else:
        start = sim.sample_joint_positions(rng)
        sim.reset(seed=int(rng.integers(2**31)), joint_positions=start)
        walk = RandomWalkExplorer(sim.explore_lower, sim.explore_upper, config.max_delta, config.smoothing,
                                  seed=int(rng.integers(2**31)))

        def next_target(joint_positions: np.ndarray) -> np.ndarray:
            return joint_positions + explore_step(sim, walk, joint_positions)
    ticks = int(round(config.control_period * config.joint_state_rate))
    tick_ns = int(round(NS / config.joint_state_rate))
    intrinsics = sim.camera_intrinsics()
    names = list(sim.joint_names)
    path = config.episode_path(index)
    command_topic = topics.in_bag(sim.robot.command_topic)  # Float64MultiArray in the preset's joint order
    order = [sim.joint_names.index(name) for name in sim.robot.joint_names]
    with BagWriter(path, config.storage) as bag:
        for step in range(config.steps):
            stamp = step * ticks * tick_ns
            joint_positions = sim.joint_positions
            bag.write_camera_info(topics.in_bag(topics.CAMERA_INFO), stamp, intrinsics["width"], intrinsics["height"],
                                  intrinsics["fx"], intrinsics["fy"], intrinsics["cx"], intrinsics["cy"])
            bag.write_image(topics.in_bag(topics.CAMERA), stamp, sim.render())
            # the command for this step is decided from the state seen at its start, like a controller would
            target = sim.set_target(next_target(joint_positions))
            bag.write_command(command_topic, stamp, target[order])
            for tick in range(ticks):
                tick_stamp = stamp + tick * tick_ns
                bag.write_joint_state("/joint_states", tick_stamp, names, sim.joint_positions, sim.joint_velocities)
                bag.write_point("/end_effector_position", tick_stamp, sim.end_effector_position())
                if config.scene == "push":
                    bag.write_planar_pose(topics.in_bag(topics.OBJECT_POSE), tick_stamp, *sim.object_pose())
                sim.step(duration=1.0 / config.joint_state_rate)
            assert abs(sim.time - (stamp + ticks * tick_ns) / NS) < 1e-6, f"sim time {sim.time} drifted from the stamps"
    return path


def explore_step(sim: ArmSim, explorer, joint_positions: np.ndarray) -> np.ndarray:
    """The explorer's next delta, turned back where it would take the arm into the table or the tool out of
    view (the box alone does not know the scene); no move where both ways are blocked."""
    delta = explorer.next_delta(joint_positions)
    if sim.pose_is_valid(joint_positions + delta):
        return delta
    explorer.turn_back()
    delta = explorer.next_delta(joint_positions)
    return delta if sim.pose_is_valid(joint_positions + delta) else np.zeros_like(delta)


def _collect_one(args: tuple[CollectConfig, int]) -> Path:
    return collect_episode(*args)


def collect(config: CollectConfig, progress: bool = True) -> list[Path]:
    """Write ``config.episodes`` bags under ``config.out`` (workers in parallel over episodes)."""
    existing = [str(config.episode_path(i)) for i in range(config.episodes) if config.episode_path(i).exists()]
    if existing:
        raise FileExistsError(f"collect: {existing[0]} exists already ({len(existing)} of the bags); "
                              "choose a new --out folder")
    Path(config.out).mkdir(parents=True, exist_ok=True)
    jobs = [(config, i) for i in range(config.episodes)]
    bar = tqdm(total=config.episodes * config.steps, desc="collect", unit="frame", disable=not progress)
    paths = []
    workers = config.worker_count()
    if workers == 1:
        for job in jobs:
            paths.append(_collect_one(job))
            bar.update(config.steps)
    else:
        # spawn, not fork: a forked MuJoCo / EGL context is not safe to reuse
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            for path in pool.map(_collect_one, jobs):
                paths.append(path)
                bar.update(config.steps)
    bar.close()
    return paths


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of `jepa-ros collect`."""
    parser.add_argument("--robot", default="jepa_arm", help="simulated robot preset (config/robots/<robot>.yaml)")
    parser.add_argument("--episodes", type=int, default=10, help="number of episodes (one bag each)")
    parser.add_argument("--steps", type=int, default=60, help="control steps (frames) per episode")
    parser.add_argument("--out", required=True, help="output folder; bags go to OUT/episode_0000, ...")
    parser.add_argument("--storage", choices=["mcap", "sqlite3"], default="mcap", help="rosbag2 storage plugin")
    parser.add_argument("--image-size", type=int, default=64, help="camera image side in pixels (64..256)")
    parser.add_argument("--control-period", type=float, default=0.2, help="simulated seconds per step")
    parser.add_argument("--joint-state-rate", type=float, default=50.0, help="Hz of joint_states in the bags")
    parser.add_argument("--seed", type=int, default=0, help="seed of start poses and exploration")
    parser.add_argument("--scene-seed", type=int, default=0, help="seed of the object placement in the scene")
    parser.add_argument("--max-delta", type=float, default=0.1, help="largest joint move per step (rad)")
    parser.add_argument("--smoothing", type=float, default=0.8,
                        help="random-walk smoothing in [0, 1): 0 draws every step's delta afresh")
    parser.add_argument("--supersampling", type=int, default=SimConfig.supersampling,
                        help="render k x k pixels per camera pixel and average them (1..4)")
    parser.add_argument("--scene", choices=("reach", "push"), default="reach",
                        help="reach: a random walk of the joints; push: random pushes of a block on the table")
    parser.add_argument("--vary-scene", type=float, default=0.0,
                        help="share (0..1) of episodes seen in another room and camera: light, table and background "
                             "colours, camera pose, moving boxes, noise (robustness to what a real camera sees)")
    parser.add_argument("--workers", type=int, default=0,
                        help="worker processes over episodes (0: automatic, two for large jobs)")


def run(args: argparse.Namespace) -> int:
    """Entry point: build the config from flags, collect, report the frame rate."""
    config = CollectConfig(out=args.out, robot=args.robot, episodes=args.episodes, steps=args.steps, storage=args.storage,
                           image_size=args.image_size, control_period=args.control_period,
                           joint_state_rate=args.joint_state_rate, seed=args.seed, scene_seed=args.scene_seed,
                           max_delta=args.max_delta, smoothing=args.smoothing, supersampling=args.supersampling,
                           workers=args.workers, scene=args.scene, vary_scene=args.vary_scene)
    started = time.perf_counter()
    paths = collect(config)
    seconds = time.perf_counter() - started
    frames = config.episodes * config.steps
    print(f"collected {len(paths)} episodes x {config.steps} steps = {frames} frames in {seconds:.1f} s "
          f"({frames / seconds:.1f} frames/s) into {config.out}")
    return 0
