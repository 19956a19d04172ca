"""`jepa-ros demo`: the MuJoCo arm reaches goal images with the world model, over DDS.

sim_node and world_model_node run as separate processes (the `sim_mujoco` graph, started
by the embedded runner). This client gives one goal image at a time, enables the
world model for a fixed number of control steps, and measures the end-effector error
from sim_node's ground truth. The same goals are then tried with no action and with
random actions in MuJoCo, and a report folder is written.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PointStamped
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import SetBool, Trigger

from jepa_ros.conversions import image_to_rgb, rgb_to_image
from jepa_ros.nodes import BackgroundSpinner
from jepa_wm import topics
from jepa_wm.config import SimConfig
from jepa_wm.models.checkpoint import default_checkpoint
from jepa_wm.pushing import PushingConfig
from jepa_wm.reaching import (
    Goal,
    ReachAttempt,
    ReachingConfig,
    make_sim,
    run_baseline,
    sample_goals,
    write_reaching_report,
)
from jepa_wm.sim import ArmSim

# Share of pixels that may differ (by more than SCENE_LEVELS in a channel) between sim_node's camera
# and the goals' renderer at the home pose; another scene seed moves the table objects: 2.5-3.2 %.
SCENE_TOLERANCE = 0.005
SCENE_LEVELS = 40


def scene_difference(frame: np.ndarray, reference: np.ndarray) -> float:
    """Share of pixels of two uint8 RGB images of one size that differ by more than SCENE_LEVELS."""
    if frame.shape != reference.shape:
        return 1.0
    return float((np.abs(frame.astype(np.int16) - reference).max(axis=-1) > SCENE_LEVELS).mean())


class ReachingClient(Node):
    """Drives sim_node and world_model_node through one goal at a time."""

    def __init__(self, sim_name: str = "sim_node", model_name: str = "world_model_node") -> None:
        super().__init__("jepa_demo")
        self._lock = threading.Lock()
        self._condition = threading.Condition(self._lock)
        self.ee_position: np.ndarray | None = None
        self.ee_stamp = 0.0
        self.frame_msg: Image | None = None  # decoded only when the video takes a frame
        self.frame_time = 0.0  # time.monotonic() of its arrival
        self.commands = 0
        self.last_plan_ms: float | None = None
        self.num_samples: int | None = None  # the candidates world_model_node plans with (within its budget)
        self.holding = False  # world_model_node says "reached" on ~/status: it holds the arm at the goal
        self.create_subscription(PointStamped, topics.END_EFFECTOR, self._on_ee, qos_profile_sensor_data)
        self.create_subscription(Image, topics.CAMERA, self._on_image, qos_profile_sensor_data)
        self.create_subscription(Float64MultiArray, topics.POSITION_COMMANDS, self._on_command, 10)
        self.create_subscription(DiagnosticArray, f"/{model_name}/status", self._on_status, 10)
        latched = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE, durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)
        self.goal_publisher = self.create_publisher(Image, f"/{model_name}/goal_image", latched)
        self.reset_client = self.create_client(Trigger, f"/{sim_name}/reset")
        self.enable_client = self.create_client(SetBool, f"/{model_name}/enable")

    def _on_ee(self, msg: PointStamped) -> None:
        with self._condition:
            self.ee_position = np.array([msg.point.x, msg.point.y, msg.point.z])
            self.ee_stamp = time.monotonic()
            self._condition.notify_all()

    def _on_image(self, msg: Image) -> None:
        with self._condition:
            self.frame_msg, self.frame_time = msg, time.monotonic()
            self._condition.notify_all()

    def _on_command(self, msg: Float64MultiArray) -> None:
        with self._condition:
            self.commands += 1
            self._condition.notify_all()

    def _on_status(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            for item in status.values:
                if item.key == "state":
                    with self._lock:
                        self.holding = item.value == "reached"
                elif item.key == "num_samples" and item.value.isdigit():
                    self.num_samples = int(item.value)
                elif item.key == "plan_ms":
                    try:
                        plan_ms = float(item.value)
                    except ValueError:
                        continue
                    if np.isfinite(plan_ms):  # ticks that did not plan report nan
                        with self._lock:
                            self.last_plan_ms = plan_ms

    def call(self, client, request, timeout: float = 10.0):
        """Call a service with a deadline; raise naming the service if it does not answer."""
        if not client.wait_for_service(timeout_sec=timeout):
            raise TimeoutError(f"service {client.srv_name} not available after {timeout} s")
        future = client.call_async(request)
        deadline = time.monotonic() + timeout
        while not future.done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"service {client.srv_name} did not answer within {timeout} s")
            time.sleep(0.01)
        return future.result()

    def wait_for(self, predicate, timeout: float, what: str) -> None:
        """Block until ``predicate()`` holds (under the lock) or raise after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
                self._condition.wait(remaining)

    def _error(self, goal: Goal) -> float:
        """End-effector distance to the goal's (m); call under the lock."""
        return float(np.linalg.norm(self.ee_position - goal.ee_position))

    def _reset_arm(self) -> float:
        """Stop the world model's commands and put sim_node's arm home; returns the time of the reset."""
        self.call(self.enable_client, SetBool.Request(data=False))
        reply = self.call(self.reset_client, Trigger.Request())
        if not reply.success:
            raise RuntimeError(f"sim_node reset failed: {reply.message}")
        return time.monotonic()

    def check_scene(self, home: np.ndarray, tolerance: float = SCENE_TOLERANCE, timeout: float = 10.0) -> None:
        """Refuse to run if sim_node's camera, with the arm reset, does not show ``home`` (the goals' scene).

        The goal images are rendered here; if sim_node's table objects sit elsewhere (another scene
        seed) every goal differs from what the camera can ever see, and the world model is blamed.
        """
        reset_time = self._reset_arm()
        self.wait_for(lambda: self.frame_time > reset_time + 0.1, timeout, "a camera frame after reset")
        with self._lock:
            frame = image_to_rgb(self.frame_msg)
        differs = scene_difference(frame, home)
        if differs > tolerance:
            raise RuntimeError(
                f"sim_node's camera differs from the goals' scene in {differs:.1%} of the pixels at the home pose "
                f"(expected <= {tolerance:.1%}): is sim_node running with another seed or image size?"
            )

    def run_goal(self, index: int, goal: Goal, config: ReachingConfig, video_every: int) -> ReachAttempt:
        """Reset the arm, give the goal image, let the world model command ``max_steps`` steps."""
        reset_time = self._reset_arm()
        self.wait_for(lambda: self.ee_stamp > reset_time + 0.05, 10.0, "end_effector_position after reset")
        episode = ReachAttempt(index, [])

        def on_frame(frame: np.ndarray) -> None:
            episode.frames.append(frame)
            episode.holding.append(self.holding)

        self.command_steps(index, goal.image, config.max_steps, config.control_period,
                           lambda: episode.errors_m.append(self._error(goal)), episode.replan_ms, video_every, on_frame)
        return episode

    def command_steps(self, index: int, goal_image: np.ndarray, max_steps: int, control_period: float,
                      record: Callable[[], None], replan_ms: list[float], video_every: int,
                      on_frame: Callable[[np.ndarray], None]) -> None:
        """Give the goal image, enable the world model for ``max_steps`` commands, then disable it.

        Under the lock: ``record()`` before the first command and once per command carried out (command
        ``step`` arrives a period after the one before, so ``step - 1`` has been carried out; the last one a
        period after it); each new plan's time goes to ``replan_ms`` (a held arm does not plan), and every
        ``video_every``-th command's camera frame to ``on_frame``.
        """
        self.goal_publisher.publish(rgb_to_image(goal_image, frame_id="camera_optical_frame"))
        time.sleep(0.3)  # the node converts and encodes the goal before it is enabled
        with self._lock:
            record()
            start_commands = self.commands
        self.call(self.enable_client, SetBool.Request(data=True))
        for step in range(1, max_steps + 1):
            self.wait_for(lambda step=step: self.commands >= start_commands + step, 10.0, f"command {step} of goal {index}")
            with self._lock:
                if step > 1:
                    record()
                if self.last_plan_ms is not None:
                    replan_ms.append(self.last_plan_ms)
                    self.last_plan_ms = None
                if self.frame_msg is not None and step % video_every == 0:
                    on_frame(image_to_rgb(self.frame_msg))
        time.sleep(control_period)  # the last command's period
        with self._lock:  # one reading per command carried out, as in the in-process loops
            record()
        self.call(self.enable_client, SetBool.Request(data=False))


@contextmanager
def spinning(client_type: type[ReachingClient]) -> Iterator[ReachingClient]:
    """rclpy up and a ``client_type()`` spun on one background thread (the client shares the CPU with the
    nodes it measures: two threads took ~90 % of a core); all of it down again after."""
    rclpy.init()
    client = client_type()
    executor = SingleThreadedExecutor()
    executor.add_node(client)
    spinner = BackgroundSpinner(executor)
    try:
        yield client
    finally:
        spinner.stop()
        client.destroy_node()
        rclpy.shutdown()


def run_closed_loop(
    config: ReachingConfig, image_size: int | None, graph_args: list[str], out: Path, checkpoint: Path | None = None,
    robot: str | None = None, sim_params: dict[str, Any] | None = None, node_params: dict[str, Any] | None = None,
    scene_tolerance: float = SCENE_TOLERANCE,
) -> dict:
    """Start the sim_mujoco graph for ``robot`` (default: the checkpoint's), reach every goal, run the
    baselines, write the report; return metrics.

    ``sim_params`` / ``node_params`` are parameters layered over sim_node's / world_model_node's packaged
    files (benchmarks/robustness.py changes the scene this way); the goal images stay those of the
    scene the model was trained in, and sim_node's camera is checked against its own scene.
    """
    from tqdm import tqdm

    from jepa_ros.runner import start_graph
    from jepa_wm.models.checkpoint import checkpoint_robot, load_checkpoint, read_checkpoint_config

    checkpoint = checkpoint or default_checkpoint()
    model_config = load_checkpoint(checkpoint).config
    robot = robot or checkpoint_robot(checkpoint)
    image_size = image_size or model_config.encoder.image_size  # the camera renders what the model sees
    scene_seeds = [arg.partition(":=")[2] for arg in graph_args if arg.startswith("seed:=")]
    if any(seed != str(config.scene_seed) for seed in scene_seeds):
        raise ValueError(
            f"graph argument seed:={scene_seeds[-1]} would give sim_node another scene than the goal images' "
            f"(scene seed {config.scene_seed}); set both with --scene-seed"
        )
    sim = make_sim(image_size, config.scene_seed, robot)
    goals = sample_goals(sim, config)  # leaves sim at home
    home = sim.render().copy()
    scene = {k: tuple(v) if isinstance(v, list) else v for k, v in (sim_params or {}).items()
             if k in {f.name for f in dataclasses.fields(SimConfig)}}
    if scene:  # the camera at home in the changed scene, for the check that sim_node shows it
        with ArmSim(dataclasses.replace(sim.config, **scene)) as changed:
            home = changed.render().copy()
    action_scale = model_config.action_scale
    started = time.monotonic()
    # sim_node renders the scene the goals were rendered in: the same seed places the table objects
    args = [f"robot:={robot}", f"image_size:={image_size}", f"checkpoint:={checkpoint}", f"seed:={config.scene_seed}",
            *graph_args]
    files = tempfile.TemporaryDirectory()
    for argument, params in (("sim_params_file", sim_params), ("params_file", node_params)):
        if params:
            path = Path(files.name) / f"{argument}.yaml"
            path.write_text(yaml.safe_dump({"/**": {"ros__parameters": params}}))
            args.append(f"{argument}:={path}")
    with files, start_graph("sim_mujoco", args), spinning(ReachingClient) as client:
        client.check_scene(home, scene_tolerance)
        episodes = [client.run_goal(i, goal, config, video_every=2) for i, goal in enumerate(tqdm(goals, desc="goals"))]
        num_samples = client.num_samples
    closed_loop_s = time.monotonic() - started
    results = {
        "world_model": episodes,
        "random": run_baseline(sim, goals, config, "random", action_scale),
        "zero": run_baseline(sim, goals, config, "zero", action_scale),
    }
    hold = read_checkpoint_config(checkpoint)[1].get("reach")
    if hold and (node_params or {}).get("hold_by"):
        hold = {**hold, "hold_by": node_params["hold_by"]}
    return write_reaching_report(out, config, results, goals,
                                 {"closed_loop_seconds": closed_loop_s, "num_samples": num_samples}, hold)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Command-line options of `jepa-ros demo`."""
    parser.add_argument("--task", choices=("reach", "push"), default="reach",
                        help="reach: the arm to where goal images show it; push: a block to where goal images show "
                        "it (the push scene and checkpoints/push)")
    parser.add_argument("--out", type=Path, default=None, help="report folder (default: reports/demo or reports/push)")
    parser.add_argument("--goals", type=int, default=ReachingConfig.num_goals, help="number of seeded goals")
    parser.add_argument("--steps", type=int, default=None,
                        help=f"control steps per goal (default: {ReachingConfig.max_steps}; push: {PushingConfig.max_steps})")
    parser.add_argument("--seed", type=int, default=ReachingConfig.seed, help="seed of the goal poses")
    parser.add_argument("--scene-seed", type=int, default=ReachingConfig.scene_seed,
                        help="object placement of the scene (sim_node's seed); the goals are rendered in it")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="checkpoint folder (default: the embedded one; push: checkpoints/push)")
    parser.add_argument("--robot", default=None, help="simulated robot preset (default: the checkpoint's)")
    parser.add_argument("--image-size", type=int, default=None,
                        help="camera image size (px); default: the checkpoint's encoder image size")
    parser.add_argument("graph_args", nargs="*", help="extra name:=value arguments for the sim_mujoco graph")


def run(args: argparse.Namespace) -> int:
    """Run the demo and print the headline figures."""
    if args.task == "push":
        return run_push(args)
    out = args.out or Path("reports/demo")
    config = ReachingConfig(num_goals=args.goals, max_steps=args.steps or ReachingConfig.max_steps, seed=args.seed,
                            scene_seed=args.scene_seed)
    metrics = run_closed_loop(config, args.image_size, args.graph_args, out, args.checkpoint, args.robot)
    summary = {
        "hold_success_rate": metrics["world_model"]["hold_success_rate"],
        "touch_success_rate": metrics["world_model"]["touch_success_rate"],
        "median_final_error_m": metrics["world_model"]["median_final_error_m"],
        "random_hold_success_rate": metrics["random"]["hold_success_rate"],
        "random_touch_success_rate": metrics["random"]["touch_success_rate"],
        "zero_hold_success_rate": metrics["zero"]["hold_success_rate"],
        "zero_touch_success_rate": metrics["zero"]["touch_success_rate"],
        "median_replan_ms": metrics["world_model"]["median_replan_ms"],
    }
    print(f"report written to {out}/report.md")
    print(json.dumps(summary))
    return 0


def run_push(args: argparse.Namespace) -> int:
    """`jepa-ros demo --task push`: push goals over DDS with the push checkpoint; print the headline figures."""
    from jepa_ros.push_demo import run_push_closed_loop
    from jepa_wm.models.checkpoint import checkpoint_robot, push_checkpoint

    out = args.out or Path("reports/push")
    config = PushingConfig(num_goals=args.goals, max_steps=args.steps or PushingConfig.max_steps, seed=args.seed)
    checkpoint = args.checkpoint or push_checkpoint()
    metrics = run_push_closed_loop(config, checkpoint, args.robot or checkpoint_robot(checkpoint), args.graph_args, out)
    summary = {"push_success_rate": metrics["world_model"]["push_success_rate"],
               "median_final_object_error_m": metrics["world_model"]["median_final_object_error_m"],
               "random_push_success_rate": metrics["random"]["push_success_rate"],
               "zero_push_success_rate": metrics["zero"]["push_success_rate"],
               "median_replan_ms": metrics["world_model"]["median_replan_ms"]}
    print(f"report written to {out}/report.md")
    print(json.dumps(summary))
    return 0
