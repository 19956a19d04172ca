"""Simulation speed and limits: ArmSim real-time factor, camera frames over DDS, `collect` frame rate.

- sim_rtf_64 / sim_rtf_128: simulated seconds per wall second of ArmSim stepping 0.1 s control
  periods with one camera frame rendered per period (targets from a random walk).
- dds_image_hz: camera frames per second that a separate subscriber process receives from
  sim_node (its own process) with camera_rate 30 Hz at 128 px, real_time_factor 1.
- collect_fps: frames per second written by `jepa-ros collect` (jepa_wm.data.collect).
- sim_free_velocity_ratio, sim_free_past_limit_rad: the worst joint velocity over its URDF limit and
  the worst position past a URDF limit while each joint alone is commanded from one limit to the
  other; sim_collision_*: the same with every joint commanded to a limit at once (collisions).

Targets on the 2-core workplace: sim_rtf_64 >= 5, dds_image_hz >= 28. Last line: one JSON object.

    python benchmarks/sim.py [--sim-seconds 10] [--dds-seconds 10] [--collect-episodes 6]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"  # DDS stays on loopback (DESIGN.md)
os.environ.setdefault("ROS_DOMAIN_ID", "42")
os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

TARGETS = {"sim_rtf_64": 5.0, "dds_image_hz": 28.0}
STARTUP_S = 60.0


def sim_rtf(image_size: int, sim_seconds: float) -> float:
    """ArmSim real-time factor with one rendered frame per 0.1 s control period."""
    from jepa_wm.config import SimConfig
    from jepa_wm.sim import ArmSim, RandomWalkExplorer

    with ArmSim(SimConfig(image_size=image_size, control_period=0.1)) as sim:
        explorer = RandomWalkExplorer(sim.explore_lower, sim.explore_upper, 0.1, 0.8, seed=0)
        sim.render()  # the first frame pays for GL context and texture uploads
        periods = round(sim_seconds / 0.1)
        started = time.perf_counter()
        for _ in tqdm(range(periods), desc=f"ArmSim {image_size} px", file=sys.stderr, leave=False):
            sim.set_target(sim.joint_positions + explorer.next_delta(sim.joint_positions))
            sim.step()
            sim.render()
        return periods * 0.1 / (time.perf_counter() - started)


def count_frames(seconds: float) -> None:
    """Subscriber process: count camera frames for ``seconds`` after the first one; print JSON."""
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image, JointState

    counts = {"camera/image_raw": 0, "joint_states": 0}
    with rclpy.init():
        node = rclpy.create_node("sim_benchmark_subscriber")
        for msg_type, topic in ((Image, "camera/image_raw"), (JointState, "joint_states")):
            node.create_subscription(msg_type, topic, lambda _, t=topic: counts.__setitem__(t, counts[t] + 1),
                                     qos_profile_sensor_data)
        deadline = time.monotonic() + STARTUP_S
        while counts["camera/image_raw"] == 0:
            if time.monotonic() > deadline:
                raise SystemExit(f"no camera frame within {STARTUP_S} s")
            rclpy.spin_once(node, timeout_sec=0.1)
        for topic in counts:
            counts[topic] = 0
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            rclpy.spin_once(node, timeout_sec=0.05)
        elapsed = time.monotonic() - started
        node.destroy_node()
    print(json.dumps({topic.replace("camera/", "").replace("_raw", ""): n / elapsed for topic, n in counts.items()}))


def dds_rates(seconds: float) -> dict[str, float]:
    """Start sim_node (128 px, 30 Hz camera) and a separate subscriber process; their received rates."""
    log = tempfile.TemporaryFile()
    sim = subprocess.Popen(
        [sys.executable, "-m", "jepa_ros.nodes.sim_node", "--ros-args", "-p", "image_size:=128",
         "-p", "camera_rate:=30.0", "-p", "real_time_factor:=1.0"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        time.sleep(3.0)  # let sim_node settle so start-up work is not counted
        result = subprocess.run([sys.executable, __file__, "--count-frames", str(seconds)],
                                capture_output=True, text=True, timeout=STARTUP_S + seconds + 30)
        if result.returncode != 0:
            log.seek(0)
            raise RuntimeError(f"subscriber failed:\n{result.stderr[-2000:]}\nsim_node:\n{log.read()[-2000:].decode()}")
        return json.loads(result.stdout.strip().splitlines()[-1])
    finally:
        log.close()
        sim.terminate()
        try:
            sim.wait(10)
        except subprocess.TimeoutExpired:
            sim.kill()
            sim.wait(5)


def collect_fps(episodes: int, steps: int) -> float:
    """Frames per second `jepa-ros collect` writes (default settings, a fresh folder)."""
    from jepa_wm.data.collect import CollectConfig, collect

    with tempfile.TemporaryDirectory() as folder:
        # workers=0: collect's own choice (one process for small jobs, where spawning a pool costs
        # more than it saves; two above 600 frames)
        config = CollectConfig(out=str(Path(folder) / "bags"), episodes=episodes, steps=steps, workers=0)
        started = time.perf_counter()
        collect(config, progress=False)
        return episodes * steps / (time.perf_counter() - started)


def limit_tracking(corners: int = 40) -> dict[str, float]:
    """How far ArmSim's joints pass their URDF limits when commanded to them.

    Free motion: each joint in turn (the others at home) commanded from its lower limit to its upper
    and back, 1.5 s each. Collisions: every joint at once to a random one of its limits (a corner of
    the joint box), which drives the arm into the table or itself. Each 2 ms physics step is checked.
    """
    from jepa_wm.config import SimConfig
    from jepa_wm.sim import ArmSim

    def worst(sim: ArmSim, target: np.ndarray, record: list[float]) -> None:
        sim.set_target(target)
        for _ in range(750):  # 1.5 s
            sim.step(sim.config.physics_timestep)
            q, qd = sim.joint_positions, sim.joint_velocities
            record[0] = max(record[0], float(np.max(np.abs(qd) / sim.velocity_limits)))
            record[1] = max(record[1], float(np.max(np.maximum(sim.joint_lower - q, q - sim.joint_upper))))

    free, collision = [0.0, 0.0], [0.0, 0.0]
    rng = np.random.default_rng(0)
    with ArmSim(SimConfig(image_size=64, control_period=0.1)) as sim:
        for joint in range(len(sim.joint_names)):
            sim.reset()
            for limit in (sim.joint_lower, sim.joint_upper, sim.joint_lower):
                target = sim.home_joint_positions.copy()
                target[joint] = limit[joint]
                worst(sim, target, free)
        sim.reset()
        for _ in range(corners):
            worst(sim, np.where(rng.random(len(sim.joint_names)) < 0.5, sim.joint_lower, sim.joint_upper), collision)
    return {"sim_free_velocity_ratio": round(free[0], 3), "sim_free_past_limit_rad": round(max(free[1], 0.0), 4),
            "sim_collision_velocity_ratio": round(collision[0], 2),
            "sim_collision_past_limit_rad": round(max(collision[1], 0.0), 4)}


def main() -> int:
    """Run every measurement; print the summary JSON as the last line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sim-seconds", type=float, default=10.0, help="simulated seconds per ArmSim measurement")
    parser.add_argument("--dds-seconds", type=float, default=10.0, help="wall seconds of counting camera frames")
    parser.add_argument("--collect-episodes", type=int, default=6)
    parser.add_argument("--collect-steps", type=int, default=60)
    parser.add_argument("--count-frames", type=float, default=None, help=argparse.SUPPRESS)  # subscriber mode
    args = parser.parse_args()
    if args.count_frames is not None:
        count_frames(args.count_frames)
        return 0

    results: dict[str, object] = {"benchmark": "sim", "cpus": os.cpu_count(), "machine": platform.processor() or platform.machine()}
    results["sim_rtf_64"] = round(sim_rtf(64, args.sim_seconds), 2)
    results["sim_rtf_128"] = round(sim_rtf(128, args.sim_seconds), 2)
    rates = dds_rates(args.dds_seconds)
    results["dds_image_hz"] = round(rates["image"], 2)
    results["dds_joint_state_hz"] = round(rates["joint_states"], 2)
    results["collect_fps"] = round(collect_fps(args.collect_episodes, args.collect_steps), 2)
    results.update(limit_tracking())
    results["targets"] = TARGETS
    results["meets_targets"] = all(results[key] >= value for key, value in TARGETS.items())
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
