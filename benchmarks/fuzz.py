"""Fuzz world_model_node over real DDS, as an attacker or a careless integrator would.

Starts sim_node (in namespace /sim) and world_model_node (default checkpoint) as processes. This
process stands between them: it relays the simulated camera and joint states to the node and the
node's commands to the arm, so it knows when good input stopped, and it mixes malformed and
adversarial messages into every stream: images (encodings, inconsistent sizes, huge declared sizes,
truncated or garbage compressed data, decompression bombs), joint states (NaN/inf, missing, extra,
duplicated and very many names, length mismatches, positions past the limits), goals of the wrong
size or encoding, ~/set_goal_from_current on malformed frames, inputs that stop while a plan runs
(with the CPU loaded), and arm poses outside the checkpoint's explored joint range. Every command is
recorded and checked. The node runs twice: raw images, then image_transport:=compressed.

Last line: one JSON object with messages, crashes, limit_violations, stale_commands, max_stall_s
and recovered (targets: 0, 0, 0, <= 1.0, true).

    python benchmarks/fuzz.py [--seconds-per-phase 12] [--out reports/fuzz]
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import multiprocessing
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid()).randint(101, 200)))
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image, JointState  # noqa: E402
from std_msgs.msg import Float64MultiArray  # noqa: E402
from std_srvs.srv import SetBool, Trigger  # noqa: E402
from trajectory_msgs.msg import JointTrajectory  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from adversarial import declare_size, encoded, png_bomb  # noqa: E402
from jepa_ros import conversions as conv  # noqa: E402
from jepa_ros.nodes import BackgroundSpinner  # noqa: E402
from jepa_wm.config import load_robot, package_share  # noqa: E402
from jepa_wm.models.checkpoint import default_checkpoint, explored_joint_range  # noqa: E402

MAX_STALENESS = 0.5  # s, world_model_node's default
DELIVERY_SLACK = 0.05  # s a command may take over loopback DDS on a loaded 2-core machine
ROBOT = load_robot("jepa_arm")
PERIOD = 1.0 / ROBOT.control_rate
LOWER, UPPER = np.array(ROBOT.joint_lower), np.array(ROBOT.joint_upper)
MAX_STEP = np.array(ROBOT.velocity_limits) * PERIOD


def burn_cpu(seconds: float) -> None:
    """Keep one core busy: planning then overruns and inputs age while a plan runs."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


class Fuzzer(Node):
    """The man in the middle: relays good input, injects bad input, records every command and status."""

    def __init__(self, transport: str) -> None:
        super().__init__("fuzzer")
        self.transport = transport
        self.relay_camera = self.relay_joints = True
        self.lock = threading.Lock()
        self.last_frame_sent = self.last_joints_sent = -math.inf  # monotonic time of the last good input
        self.true_states: collections.deque[tuple[float, np.ndarray]] = collections.deque(maxlen=400)
        self.latest_state: JointState | None = None
        self.latest_frame: np.ndarray | None = None
        self.commands: list[tuple[float, np.ndarray]] = []
        self.statuses: list[tuple[float, dict[str, str]]] = []
        self.sent = 0  # malformed / adversarial messages
        qos = qos_profile_sensor_data
        self.image_pub = self.create_publisher(Image, "/camera/image_raw", qos)
        self.compressed_pub = self.create_publisher(CompressedImage, "/camera/image_raw/compressed", qos)
        self.joints_pub = self.create_publisher(JointState, "/joint_states", qos)
        self.goal_pub = self.create_publisher(Image, "/world_model_node/goal_image", 1)
        self.sim_command_pub = self.create_publisher(Float64MultiArray, "/sim/forward_position_controller/commands", 10)
        self.sim_trajectory_pub = self.create_publisher(JointTrajectory, "/sim/joint_trajectory_controller/joint_trajectory", 10)
        self.create_subscription(Image, "/sim/camera/image_raw", self._on_sim_frame, qos)
        self.create_subscription(JointState, "/sim/joint_states", self._on_sim_joints, qos)
        self.create_subscription(Float64MultiArray, "/forward_position_controller/commands", self._on_command, 10)
        self.create_subscription(DiagnosticArray, "/world_model_node/status", self._on_status, 10)
        self.enable_client = self.create_client(SetBool, "/world_model_node/enable")
        self.goal_client = self.create_client(Trigger, "/world_model_node/set_goal_from_current")

    # -- relays --------------------------------------------------------------------------------
    def _on_sim_frame(self, msg: Image) -> None:
        self.latest_frame = conv.image_to_rgb(msg)
        if not self.relay_camera:
            return
        if self.transport == "compressed":
            out = conv.rgb_to_compressed(self.latest_frame, "jpeg", conv.stamp_to_ns(msg.header.stamp))
            self.compressed_pub.publish(out)
        else:
            self.image_pub.publish(msg)
        self.last_frame_sent = time.monotonic()

    def _on_sim_joints(self, msg: JointState) -> None:
        positions = conv.joint_state_positions(msg, ROBOT.joint_names)
        with self.lock:
            self.latest_state = msg
            self.true_states.append((time.monotonic(), positions))
        if self.relay_joints:
            self.joints_pub.publish(msg)
            self.last_joints_sent = time.monotonic()

    def _on_command(self, msg: Float64MultiArray) -> None:
        self.commands.append((time.monotonic(), conv.multiarray_to_numpy(msg)))
        self.sim_command_pub.publish(msg)

    def _on_status(self, msg: DiagnosticArray) -> None:
        self.statuses.append((time.monotonic(), {kv.key: kv.value for kv in msg.status[0].values}))

    # -- helpers ---------------------------------------------------------------------------------
    def state(self) -> str:
        return self.statuses[-1][1]["state"] if self.statuses else ""

    def true_positions(self) -> np.ndarray:
        with self.lock:
            return self.true_states[-1][1].copy()

    def call(self, client, request, timeout: float = 10.0):
        """Call a service; the answer, or None if none came within ``timeout``."""
        if not client.wait_for_service(timeout_sec=timeout):
            return None
        future = client.call_async(request)
        deadline = time.monotonic() + timeout
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.01)
        return future.result() if future.done() else None

    def wait_for(self, condition, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def good_goal(self, goal: np.ndarray) -> None:
        self.goal_pub.publish(conv.rgb_to_image(goal))


# ---------------------------------------------------------------------------------------------
# malformed messages, by category


def bad_images(rng: np.random.Generator) -> list[Image]:
    """Raw images no camera should send: unknown encodings, inconsistent fields, huge declared sizes."""
    def image(encoding: str, width: int, height: int, step: int, data: bytes) -> Image:
        msg = Image(encoding=encoding, width=width, height=height, step=step)
        msg.data = data
        return msg

    pixels = rng.integers(0, 256, 128 * 128 * 3, dtype=np.uint8).tobytes()
    return [
        image("yuv422", 128, 128, 256, pixels[: 128 * 256]),
        image("16UC1", 128, 128, 256, pixels[: 128 * 256]),
        image("", 128, 128, 384, pixels),
        image("rgb8", 128, 128, 383, pixels),  # step too small
        image("rgb8", 128, 128, 384, pixels[:-1]),  # one byte short
        image("rgb8", 128, 129, 384, pixels),  # height does not match the data
        image("rgb8", 0, 0, 0, b""),
        image("rgb8", 65500, 65500, 196500, pixels[:1000]),  # declares 4.3 G pixels
        image("rgb8", 4000, 4000, 12000, pixels[:12000]),
        image("mono8", 2**31 - 1, 2, 2**31 - 1, b"\0" * 16),
        image("rgb8", 1, 1, 3, b"\1\2\3"),  # valid, but 1x1
        image("rgb8", 91, 37, 273, pixels[: 273 * 37]),  # valid, another size and aspect
        image("bgra8", 128, 128, 512, (pixels * 2)[: 512 * 128]),  # valid, four channels
    ]


def bad_compressed(rng: np.random.Generator) -> list[CompressedImage]:
    """Compressed images: truncated, garbage, declaring huge sizes, bombs, unknown formats."""
    frame = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
    jpeg, png = encoded(frame, "jpeg"), encoded(frame, "png")
    payloads = [
        ("jpeg", jpeg[: len(jpeg) // 2]),
        ("png", png[: len(png) // 3]),
        ("jpeg", rng.integers(0, 256, 4000, dtype=np.uint8).tobytes()),
        ("png", b"\x89PNG\r\n\x1a\n" + bytes(64)),
        ("jpeg", b""),
        ("jpeg", declare_size(encoded(frame[:16, :16], "jpeg"), 65500, 65500)),
        ("png", declare_size(encoded(frame[:16, :16], "png"), 65500, 65500)),
        ("png", declare_size(png, 30000, 20000)),
        ("png", png_bomb(8000, 8000)),  # 62 KB decoding to 192 MB
        ("tiff", png),
        ("rgb8; jpeg compressed bgr8", png),  # the format lies: PNG data
        ("jpeg", encoded(np.zeros((1500, 2000, 3), np.uint8), "jpeg")),  # valid, large, another aspect
        ("jpeg", encoded(frame[:37, :91], "jpeg")),  # valid, another size and aspect
    ]
    messages = []
    for fmt, data in payloads:
        msg = CompressedImage(format=fmt)
        msg.data = data
        messages.append(msg)
    return messages


def bad_joint_states(true: JointState, rng: np.random.Generator) -> list[JointState]:
    """Joint states: NaN/inf, missing, extra, duplicated and very many names, mismatched lengths, past the limits."""
    names, positions = list(true.name), list(true.position)
    stamp = true.header.stamp

    def state(name: list[str], position: list[float]) -> JointState:
        msg = JointState(name=name, position=position)
        msg.header.stamp = stamp
        return msg

    index = int(rng.integers(len(names)))
    nan, inf = list(positions), list(positions)
    nan[index], inf[index] = math.nan, -math.inf
    past = list(positions)
    past[index] = (UPPER[index] + 2.0) * (1 if rng.random() < 0.5 else -1)  # far past a position limit
    order = rng.permutation(len(names))
    return [
        state(names, nan),
        state(names, inf),
        state(names[:-1], positions[:-1]),  # a joint missing
        state([], []),
        state(names + ["gripper"], positions + [math.nan]),  # an extra joint (NaN: not the robot's)
        state([names[i] for i in order], [positions[i] for i in order]),  # valid, another order
        state(names + [names[0]], positions + [positions[0]]),  # duplicated
        state(names, positions[:-2]),  # fewer positions than names
        state(names, positions + [0.0, 0.0]),  # more positions than names
        state(names, past),
    ]


def many_names(count: int) -> JointState:
    """One joint state naming ``count`` joints (duplicated): the per-message cost must stay bounded."""
    return JointState(name=["joint1"] * count, position=[0.0] * count)


def bad_goals(rng: np.random.Generator) -> list[Image]:
    goals = bad_images(rng)
    return goals + [conv.rgb_to_image(rng.integers(0, 256, (200, 100, 3), dtype=np.uint8))]  # another aspect


# ---------------------------------------------------------------------------------------------
# one run of the node


class Run:
    """sim_node + world_model_node (``transport``) + the fuzzer; phases and their records."""

    def __init__(self, transport: str, out: Path, goals: list[np.ndarray], seconds: float, seed: int) -> None:
        self.transport, self.out, self.goals, self.seconds = transport, out, goals, seconds
        self.rng = np.random.default_rng(seed)
        self.good_input_spans: list[tuple[float, float]] = []  # enabled, good input flowing: status must keep coming
        self.stalls_done: list[tuple[float, float]] = []  # (last good input sent before a stall, relay resumed)
        self.log_paths: list[Path] = []
        self.processes: list[subprocess.Popen] = []

    def start(self, module: str, name: str, *ros_args: str) -> subprocess.Popen:
        log = self.out / f"{name}_{self.transport}.log"
        self.log_paths.append(log)
        process = subprocess.Popen([sys.executable, "-m", module, "--ros-args", *ros_args],
                                   stdout=log.open("wb"), stderr=subprocess.STDOUT, env=os.environ.copy())
        self.processes.append(process)
        return process

    def __call__(self) -> dict:
        params = package_share() / "config" / "nodes"
        self.sim = self.start("jepa_ros.nodes.sim_node", "sim_node", "-r", "__ns:=/sim",
                              "--params-file", str(params / "sim_node.yaml"))
        self.node = self.start("jepa_ros.nodes.world_model_node", "world_model_node",
                               "--params-file", str(params / "world_model_node.yaml"),
                               "-p", f"image_transport:={self.transport}", "-p", f"max_staleness:={MAX_STALENESS}")
        rclpy.init()
        fuzzer = Fuzzer(self.transport)
        executor = rclpy.executors.SingleThreadedExecutor()
        executor.add_node(fuzzer)
        spinner = BackgroundSpinner(executor)
        try:
            return self.phases(fuzzer)
        finally:
            spinner.stop()
            fuzzer.destroy_node()
            rclpy.shutdown()
            for process in self.processes:
                if process.poll() is None:
                    process.send_signal(2)
            for process in self.processes:
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()

    def alive(self) -> bool:
        return self.sim.poll() is None and self.node.poll() is None

    def phases(self, fuzzer: Fuzzer) -> dict:
        if not fuzzer.wait_for(lambda: fuzzer.state() == "no_goal" and fuzzer.latest_state is not None, 120):
            raise RuntimeError(f"the nodes did not come up; see {self.out}")
        fuzzer.good_goal(self.goals[0])
        if not fuzzer.wait_for(lambda: fuzzer.state() == "commanding", 30):
            raise RuntimeError(f"world_model_node did not start commanding; last status {fuzzer.statuses[-1:]}")
        started = time.monotonic()
        if self.transport == "compressed":
            compressed = bad_compressed(self.rng)  # made once: a bomb takes a quarter second to compress
            self.flood(fuzzer, "compressed images", lambda: list(compressed), fuzzer.compressed_pub, 150.0,
                       seconds=2 * self.seconds)
        else:
            images = bad_images(self.rng)
            self.flood(fuzzer, "raw images", lambda: list(images), fuzzer.image_pub, 150.0)
            self.flood(fuzzer, "joint states", lambda: bad_joint_states(fuzzer.latest_state, self.rng),
                       fuzzer.joints_pub, 200.0, extra=lambda: many_names(int(self.rng.choice([30_000, 60_000]))))
            self.flood(fuzzer, "goals", lambda: bad_goals(self.rng), fuzzer.goal_pub, 40.0)
            fuzzer.good_goal(self.goals[1])
            self.stalls(fuzzer)
            self.poses(fuzzer)
        recovered = self.recover(fuzzer)
        return self.summary(fuzzer, recovered, time.monotonic() - started)

    def flood(self, fuzzer: Fuzzer, what: str, make, publisher, rate: float, extra=None,
              seconds: float | None = None) -> None:
        """Malformed messages at ``rate`` Hz between the relayed good ones; ~/set_goal_from_current now and then."""
        seconds = seconds or self.seconds
        print(f"[{self.transport}] {what} for {seconds:.0f} s", flush=True)
        span_start = time.monotonic()
        end = span_start + seconds
        batch, sent_in_phase, last_goal_call, pending = [], 0, 0.0, None
        while time.monotonic() < end and self.alive():
            if not batch:
                batch = make()
                self.rng.shuffle(batch)
            publisher.publish(batch.pop())
            fuzzer.sent += 1
            sent_in_phase += 1
            if extra is not None and sent_in_phase % 200 == 0:
                # the relay pauses so that a control tick finds this message the newest of its stream
                fuzzer.relay_joints = False
                publisher.publish(extra())
                fuzzer.sent += 1
                time.sleep(0.3)
                fuzzer.relay_joints = True
            if time.monotonic() - last_goal_call > 0.5 and (pending is None or pending.done()):
                pending = fuzzer.goal_client.call_async(Trigger.Request())  # the newest frame may be malformed
                fuzzer.sent += 1
                last_goal_call = time.monotonic()
            time.sleep(1.0 / rate)
        self.good_input_spans.append((span_start, time.monotonic()))
        fuzzer.good_goal(self.goals[0])  # a goal from a malformed frame may have replaced it

    def stalls(self, fuzzer: Fuzzer) -> None:
        """Camera or joint states stop for 0.3-1.2 s at random moments, half of them with both cores loaded."""
        print(f"[{self.transport}] input stalls for {self.seconds:.0f} s", flush=True)
        end = time.monotonic() + self.seconds
        loaded = False
        while time.monotonic() < end and self.alive():
            time.sleep(float(self.rng.uniform(0.3, 1.0)))
            burners = []
            if loaded:
                burners = [multiprocessing.Process(target=burn_cpu, args=(2.0,)) for _ in range(2)]
                for burner in burners:
                    burner.start()
            if self.rng.random() < 0.6:
                fuzzer.relay_camera = False
                last_sent = fuzzer.last_frame_sent
            else:
                fuzzer.relay_joints = False
                last_sent = fuzzer.last_joints_sent
            time.sleep(float(self.rng.uniform(0.3, 1.2)))
            fuzzer.relay_camera = fuzzer.relay_joints = True
            self.stalls_done.append((last_sent, time.monotonic()))
            for burner in burners:
                burner.join()
            loaded = not loaded

    def poses(self, fuzzer: Fuzzer) -> None:
        """Legal poses outside the explored range: the node must bring the arm back at the velocity limit."""
        explored = explored_joint_range(default_checkpoint(), ROBOT.joint_names)
        home = fuzzer.true_positions()
        for joint, side in (("joint1", 1), ("joint1", -1), ("joint4", 1), ("joint6", -1)):
            i = ROBOT.joint_names.index(joint)
            edge = explored[1][i] if side > 0 else explored[0][i]
            limit = UPPER[i] if side > 0 else LOWER[i]
            pose = home.copy()
            pose[i] = edge + 0.6 * (limit - edge)
            print(f"[{self.transport}] {joint} at {pose[i]:.2f} rad (explored to {edge:.2f})", flush=True)
            fuzzer.call(fuzzer.enable_client, SetBool.Request(data=False))
            fuzzer.sim_trajectory_pub.publish(conv.positions_to_trajectory(pose, ROBOT.joint_names, 2.5))
            fuzzer.sent += 1
            fuzzer.wait_for(lambda pose=pose: np.abs(fuzzer.true_positions() - pose).max() < 0.02, 10)
            enabled_at = time.monotonic()
            fuzzer.call(fuzzer.enable_client, SetBool.Request(data=True))
            time.sleep(3.0)
            self.good_input_spans.append((enabled_at + 0.5, time.monotonic()))

    def recover(self, fuzzer: Fuzzer) -> bool:
        """Good input only and a valid goal: commanding must resume."""
        fuzzer.relay_camera = fuzzer.relay_joints = True
        fuzzer.call(fuzzer.enable_client, SetBool.Request(data=True))
        fuzzer.good_goal(self.goals[2])
        count = len(fuzzer.commands)
        return self.alive() and fuzzer.wait_for(lambda: len(fuzzer.commands) >= count + 5, 15)

    def summary(self, fuzzer: Fuzzer, recovered: bool, seconds: float) -> dict:
        violations = [self.violation(fuzzer, t, command) for t, command in fuzzer.commands]
        violations = [v for v in violations if v]
        stale = [t for t, _ in fuzzer.commands if self.stale(t)]
        stall = self.max_status_gap(fuzzer)
        errors = sum(path.read_text(errors="replace").count("failed, input dropped") for path in self.log_paths)
        return {
            "transport": self.transport,
            "messages": fuzzer.sent,
            "crashes": sum(process.poll() not in (None, 0) for process in self.processes) + (not self.alive()),
            "limit_violations": len(violations),
            "violation_examples": violations[:5],
            "stale_commands": len(stale),
            "max_stall_s": stall,
            "recovered": recovered,
            "commands": len(fuzzer.commands),
            "callback_errors_logged": errors,
            "seconds": round(seconds, 1),
        }

    @staticmethod
    def violation(fuzzer: Fuzzer, t: float, command: np.ndarray) -> str:
        """'' when ``command`` is inside the position limits and within one step of a state measured before it."""
        if command.shape != LOWER.shape or not np.all(np.isfinite(command)):
            return f"malformed command {command.tolist()}"
        if np.any(command < LOWER) or np.any(command > UPPER):
            return f"position: {command.round(4).tolist()} outside [{LOWER.tolist()}, {UPPER.tolist()}]"
        with fuzzer.lock:
            recent = [q for s, q in fuzzer.true_states if t - 1.0 <= s <= t]
        ratios = [float(np.max(np.abs(command - q) / MAX_STEP)) for q in recent]
        if ratios and min(ratios) > 1.0 + 1e-9:
            return f"velocity: {min(ratios):.2f}x the limit from every state of the last second"
        return ""

    def stale(self, t: float) -> bool:
        """A command that arrived while the newest good frame or joint state was older than max_staleness."""
        return any(last_sent + MAX_STALENESS + DELIVERY_SLACK < t < resumed for last_sent, resumed in self.stalls_done)

    def max_status_gap(self, fuzzer: Fuzzer) -> float:
        """Longest gap between statuses inside the spans with commanding enabled and good input available."""
        times = np.array([t for t, _ in fuzzer.statuses])
        gap = 0.0
        for begin, end in self.good_input_spans:
            inside = times[(times >= begin) & (times <= end)]
            edges = np.concatenate([[begin], inside, [end]])
            gap = max(gap, float(np.diff(edges).max()))
        return round(gap, 3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds-per-phase", type=float, default=25.0, help="length of each fuzzing phase (s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("reports/fuzz"), help="node logs and results.json")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    from jepa_wm.reaching import ReachingConfig, make_sim, sample_goals

    goals = [goal.image for goal in sample_goals(make_sim(128, 0), ReachingConfig(num_goals=3, seed=args.seed))]
    runs = [Run(transport, args.out, goals, args.seconds_per_phase, args.seed)() for transport in ("raw", "compressed")]
    for run in runs:
        print(json.dumps(run))
    summary = {
        "messages": sum(run["messages"] for run in runs),
        "crashes": sum(run["crashes"] for run in runs),
        "limit_violations": sum(run["limit_violations"] for run in runs),
        "stale_commands": sum(run["stale_commands"] for run in runs),
        "max_stall_s": max(run["max_stall_s"] for run in runs),
        "recovered": all(run["recovered"] for run in runs),
        "commands": sum(run["commands"] for run in runs),
        "callback_errors_logged": sum(run["callback_errors_logged"] for run in runs),
        "cpu": _cpu(),
    }
    (args.out / "results.json").write_text(json.dumps({"runs": runs, "summary": summary}, indent=2) + "\n")
    print(json.dumps(summary))
    return 0


def _cpu() -> str:
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    simd = "AVX-512 BF16" if "avx512_bf16" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return f"{os.cpu_count()} cores, {simd}"


if __name__ == "__main__":
    sys.exit(main())
