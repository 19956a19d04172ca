"""explore_node: safe random exploration for data collection.

Subscribes ``joint_states`` and, while enabled (``~/enable``, std_srvs/SetBool), publishes
``joint_positions + delta`` on ``forward_position_controller/commands`` every control
period, where ``delta`` is a smooth random walk (jepa_wm.sim.RandomWalkExplorer) that
stays inside a configurable joint box. It starts disabled unless ``start_enabled:=true``
and stops commanding as soon as joint states go stale.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import SetBool

from jepa_ros import conversions as conv
from jepa_ros.nodes import guarded, spin_node
from jepa_ros.params import load_config
from jepa_wm import topics
from jepa_wm.config import ConfigError, load_robot, require
from jepa_wm.sim import RandomWalkExplorer


@dataclass(frozen=True)
class ExploreConfig:
    """Joint box, step size and timing of the random exploration."""

    robot: str = "jepa_arm"  # preset: joint names and, unless given below, the exploration box
    joint_names: tuple[str, ...] = ()  # empty: the preset's
    # Joint box (rad) the walk stays in; empty: the preset's exploration box.
    box_lower: tuple[float, ...] = ()
    box_upper: tuple[float, ...] = ()
    max_delta: float = 0.1  # largest commanded joint-position delta per step (rad)
    smoothing: float = 0.8  # weight of the previous delta in the random walk (0 = white noise)
    rate: float = 5.0  # commands per second (node clock: honours use_sim_time)
    stale_after: float = 0.5  # seconds without joint_states before commanding stops
    start_enabled: bool = False  # commanding starts disabled unless this is true
    seed: int = 0

    def __post_init__(self) -> None:
        if not (self.joint_names and self.box_lower and self.box_upper):
            preset = load_robot(self.robot)
            lower, upper = preset.explore_box()
            require(not self.joint_names or tuple(self.joint_names) == preset.joint_names or (self.box_lower and self.box_upper),
                    f"explore_node.joint_names={list(self.joint_names)} differ from robot {preset.name!r}'s "
                    f"{list(preset.joint_names)}: give box_lower and box_upper for them")
            object.__setattr__(self, "joint_names", tuple(self.joint_names) or preset.joint_names)
            object.__setattr__(self, "box_lower", tuple(self.box_lower) or lower)
            object.__setattr__(self, "box_upper", tuple(self.box_upper) or upper)
        n = len(self.joint_names)
        require(n >= 1, "explore_node.joint_names is empty")
        for key in ("box_lower", "box_upper"):
            require(len(getattr(self, key)) == n, f"explore_node.{key} has {len(getattr(self, key))} values; expected {n}")
        for name, lo, hi in zip(self.joint_names, self.box_lower, self.box_upper):
            require(math.isfinite(lo) and math.isfinite(hi) and lo < hi,
                     f"explore_node: joint {name} box_lower={lo}, box_upper={hi}: expected finite values, lower < upper")
        require(self.max_delta > 0, f"explore_node.max_delta={self.max_delta}: expected > 0")
        require(0 <= self.smoothing < 1, f"explore_node.smoothing={self.smoothing}: expected [0, 1)")
        require(self.rate > 0, f"explore_node.rate={self.rate}: expected > 0 Hz")
        require(self.stale_after > 0, f"explore_node.stale_after={self.stale_after}: expected > 0 s")
        require(self.seed >= 0, f"explore_node.seed={self.seed}: expected an integer >= 0")


class ExploreNode(Node):
    """Publishes smooth random joint-position commands while enabled and joint states are fresh."""

    def __init__(self) -> None:
        super().__init__("explore_node")
        self.config = load_config(self, ExploreConfig)
        self.explorer = RandomWalkExplorer(
            np.array(self.config.box_lower),
            np.array(self.config.box_upper),
            self.config.max_delta,
            self.config.smoothing,
            self.config.seed,
        )
        self.enabled = self.config.start_enabled
        self._lock = threading.Lock()
        self._positions: np.ndarray | None = None
        self._received_at = -float("inf")  # monotonic wall time of the last joint_states
        self.commands_sent = 0
        self.command_pub = self.create_publisher(Float64MultiArray, topics.POSITION_COMMANDS, 10)
        self.create_subscription(JointState, topics.JOINT_STATES, guarded(self, self._on_joint_state), qos_profile_sensor_data)
        self.create_service(SetBool, "~/enable", guarded(self, self._on_enable))
        self.create_timer(1.0 / self.config.rate, guarded(self, self._tick))
        self.get_logger().info(
            f"exploring {list(self.config.joint_names)} inside [{list(self.config.box_lower)}, "
            f"{list(self.config.box_upper)}] at {self.config.rate} Hz; "
            f"{'enabled' if self.enabled else 'disabled until ~/enable is called'}"
        )

    def _on_joint_state(self, msg: JointState) -> None:
        try:
            positions = conv.joint_state_positions(msg, self.config.joint_names)
        except conv.ConversionError as err:
            self.get_logger().warning(f"joint_states ignored: {err}", throttle_duration_sec=2.0)
            return
        with self._lock:
            self._positions, self._received_at = positions, time.monotonic()

    def _on_enable(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        self.enabled = bool(request.data)
        response.success, response.message = True, f"exploration {'enabled' if self.enabled else 'disabled'}"
        self.get_logger().info(response.message)
        return response

    def _tick(self) -> None:
        if not self.enabled:
            return
        with self._lock:
            positions, age = self._positions, time.monotonic() - self._received_at
        if positions is None or age > self.config.stale_after:
            self.get_logger().warning(
                f"joint_states are stale ({age:.2f} s old, limit {self.config.stale_after} s): not commanding",
                throttle_duration_sec=2.0,
            )
            return
        delta = self.explorer.next_delta(positions)
        # The explorer keeps the walk in the box; the clips guard an arm that is outside it
        # (e.g. at home): it is brought back at most max_delta per step, never in one jump.
        command = np.clip(positions + delta, self.config.box_lower, self.config.box_upper)
        command = np.clip(command, positions - self.config.max_delta, positions + self.config.max_delta)
        self.command_pub.publish(conv.numpy_to_multiarray(command))
        self.commands_sent += 1


def main(args: list[str] | None = None) -> int:
    """Run explore_node until SIGINT / SIGTERM."""
    return spin_node(ExploreNode, "explore_node", (ConfigError,), num_threads=1, args=args)


if __name__ == "__main__":
    sys.exit(main())
