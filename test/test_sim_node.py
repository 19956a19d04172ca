"""sim_node over real DDS: started as its own process, commanded like a ros2_control arm."""

import os
import signal
import time

import numpy as np
import pytest
from geometry_msgs.msg import PointStamped
from rclpy.qos import qos_profile_sensor_data
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from jepa_ros import conversions as conv
from ros_processes import NodeProcess, ProbeGraph

JOINTS = ("joint1", "joint2", "joint3", "joint4", "joint5", "joint6")
HOME = np.array([0.0, 0.3, 1.3, 0.0, 1.0, 0.0])  # urdf/arm.xacro home pose
STARTUP_S = 40.0  # a cold start (imports, xacro, MuJoCo, EGL) on a busy 2-core machine
MOVE_S = 20.0


class SimProbe:
    """Test-side view of a running sim_node: latest messages and publishers for its commands."""

    def __init__(self, graph: ProbeGraph, process: NodeProcess) -> None:
        self.graph, self.process = graph, process
        self.latest: dict[str, object] = {}
        self.stamps: dict[str, list[int]] = {"joint_states": [], "camera/image_raw": []}
        node = graph.node
        for msg_type, topic in [
            (JointState, "joint_states"),
            (Image, "camera/image_raw"),
            (CameraInfo, "camera/camera_info"),
            (PointStamped, "end_effector_position"),
            (Clock, "/clock"),
        ]:
            node.create_subscription(msg_type, topic, lambda msg, t=topic: self._store(t, msg), qos_profile_sensor_data)
        self.command_pub = node.create_publisher(Float64MultiArray, "forward_position_controller/commands", 10)
        self.trajectory_pub = node.create_publisher(JointTrajectory, "joint_trajectory_controller/joint_trajectory", 10)
        self.reset = node.create_client(Trigger, "sim_node/reset")

    def _store(self, topic: str, msg: object) -> None:
        self.latest[topic] = msg
        if topic in self.stamps:
            self.stamps[topic].append(conv.stamp_to_ns(msg.header.stamp))

    def positions(self) -> np.ndarray:
        return conv.joint_state_positions(self.latest["joint_states"], JOINTS)

    def frame(self) -> np.ndarray:
        return conv.image_to_rgb(self.latest["camera/image_raw"])

    def wait_until_near(self, target: np.ndarray, tolerance: float = 0.02, publish=None) -> None:
        """Spin (re-publishing the command, which a late-matched subscription may miss) until the arm is at target."""
        def arrived() -> bool:
            if publish is not None:
                publish()
            return "joint_states" in self.latest and np.abs(self.positions() - target).max() < tolerance

        self.graph.wait_for(arrived, MOVE_S, f"the arm to reach {target.round(3).tolist()}", self.process)


@pytest.fixture(scope="module")
def sim():
    process = NodeProcess.node("jepa_ros.nodes.sim_node", image_size=64, camera_rate=15.0, seed=0)
    graph = ProbeGraph()
    try:
        probe = SimProbe(graph, process)
        wanted = ("joint_states", "camera/image_raw", "camera/camera_info", "end_effector_position", "/clock")
        graph.wait_for(lambda: all(t in probe.latest for t in wanted), STARTUP_S, f"first messages on {wanted}", process)
        yield probe
        # SIGTERM is a clean shutdown: exit code 0, no traceback
        assert process.stop(signal.SIGTERM) == 0, process.output()[-3000:]
        assert "Traceback" not in process.output(), process.output()[-3000:]
    finally:
        graph.close()
        process.close()


def test_publishes_sensors_on_simulated_time(sim):
    sim.graph.spin_for(1.0)
    info, image = sim.latest["camera/camera_info"], sim.latest["camera/image_raw"]
    assert (image.width, image.height, image.encoding) == (64, 64, "rgb8")
    assert (info.width, info.height) == (64, 64) and info.k[0] > 0
    assert image.header.frame_id == info.header.frame_id == "camera_optical_frame"
    assert list(sim.latest["joint_states"].name) == list(JOINTS)
    # rates are measured on the stamps (simulated time), so a busy machine does not make this flaky
    joint_dt = np.diff(sim.stamps["joint_states"][-50:]) / 1e9
    assert np.median(joint_dt) == pytest.approx(0.01, abs=1e-6), "joint_states expected at 100 Hz"
    frame_dt = np.diff(sim.stamps["camera/image_raw"][-8:]) / 1e9
    assert np.median(frame_dt) == pytest.approx(1 / 15, abs=0.01), "camera expected at 15 Hz"
    assert conv.stamp_to_ns(sim.latest["/clock"].clock) >= sim.stamps["joint_states"][0]


def test_moves_to_commanded_target_and_image_changes(sim):
    sim.wait_until_near(HOME, 0.05)
    before_frame, before_tcp = sim.frame(), conv.point_to_numpy(sim.latest["end_effector_position"])
    target = HOME + np.array([0.5, 0.2, -0.3, 0.4, 0.3, 0.6])
    sim.wait_until_near(target, publish=lambda: sim.command_pub.publish(conv.numpy_to_multiarray(target)))
    sim.graph.spin_for(0.5)  # a frame rendered after the arrival
    after_frame, after_tcp = sim.frame(), conv.point_to_numpy(sim.latest["end_effector_position"])
    changed = np.abs(after_frame.astype(int) - before_frame.astype(int)).max(axis=2) > 30
    assert changed.mean() > 0.01, f"only {changed.mean():.2%} of the pixels changed after moving the arm"
    assert np.linalg.norm(after_tcp - before_tcp) > 0.05


def test_trajectory_moves_through_to_its_last_point(sim):
    start = sim.positions()
    waypoints = np.stack([start + 0.1, HOME + np.array([-0.3, 0.1, 0.2, -0.2, 0.1, -0.4])])
    msg = conv.positions_to_trajectory(waypoints, JOINTS, time_from_start=0.5)
    # published once (a re-sent trajectory restarts), after sim_node's subscription has matched
    sim.graph.wait_for(lambda: sim.trajectory_pub.get_subscription_count() > 0, 10, "sim_node's trajectory subscription")
    sim.trajectory_pub.publish(msg)
    sim.wait_until_near(waypoints[-1])


def test_trajectory_starts_at_its_header_stamp(sim):
    sim.wait_until_near(HOME, 0.05, publish=lambda: sim.command_pub.publish(conv.numpy_to_multiarray(HOME)))
    target = HOME + np.array([0.3, -0.1, 0.2, 0.3, -0.2, 0.4])
    sim.graph.wait_for(lambda: sim.trajectory_pub.get_subscription_count() > 0, 10, "sim_node's trajectory subscription")

    def clock_ns() -> int:
        return conv.stamp_to_ns(sim.latest["/clock"].clock)

    # stamped at the clock's first nanosecond with 0.5 s to run: over before it arrives, refused, the arm stays
    sim.graph.wait_for(lambda: clock_ns() > 2_000_000_000, MOVE_S, "2 s of simulated time", sim.process)
    sim.trajectory_pub.publish(conv.positions_to_trajectory(target, JOINTS, 0.5, stamp_ns=1))
    sim.graph.wait_for(lambda: "trajectory refused: stamped" in sim.process.output(), 10, "a past-trajectory error", sim.process)
    np.testing.assert_allclose(sim.positions(), HOME, atol=0.05, err_msg="an ended trajectory moved the arm")
    # stamped 2 s ahead (simulated time): the arm holds until then, then moves
    start_ns = clock_ns() + 2_000_000_000
    sim.trajectory_pub.publish(conv.positions_to_trajectory(target, JOINTS, 0.5, stamp_ns=start_ns))
    sim.graph.wait_for(lambda: clock_ns() > start_ns - 500_000_000, MOVE_S, "the clock to near the start", sim.process)
    np.testing.assert_allclose(sim.positions(), HOME, atol=0.05, err_msg="the arm moved before its trajectory's start")
    sim.wait_until_near(target)


def test_bad_commands_are_refused_or_clamped(sim):
    held = sim.positions()
    sim.command_pub.publish(conv.numpy_to_multiarray(np.zeros(3)))
    sim.graph.wait_for(lambda: "shape [3], expected [6]" in sim.process.output(), 10, "a wrong-length warning", sim.process)
    sim.graph.spin_for(1.1)  # the warning is throttled to one a second
    nan = HOME.copy()
    nan[4] = float("nan")
    sim.command_pub.publish(conv.numpy_to_multiarray(nan))
    sim.graph.wait_for(lambda: "joint5=nan" in sim.process.output(), 10, "a NaN-command warning", sim.process)
    sim.graph.spin_for(1.0)
    np.testing.assert_allclose(sim.positions(), held, atol=0.02, err_msg="a rejected command moved the arm")
    # a trajectory naming an unknown joint is refused with the known ones listed
    unknown = conv.positions_to_trajectory(np.zeros(2), ("joint1", "elbow"))
    sim.trajectory_pub.publish(unknown)
    sim.graph.wait_for(lambda: "trajectory refused" in sim.process.output(), 10, "a refused-trajectory error", sim.process)
    # an out-of-limits target is clamped to the limit (joint1 limit is pi), with a warning naming joint and value
    beyond = HOME.copy()
    beyond[0] = 4.0
    sim.wait_until_near(np.r_[np.pi, HOME[1:]], 0.03, publish=lambda: sim.command_pub.publish(conv.numpy_to_multiarray(beyond)))
    log = sim.process.output()
    assert "unknown joints ['elbow']; known joints are ['joint1', 'joint2'" in log
    assert "joint1: target 4.0000 rad is above upper limit 3.1416" in log


def test_reset_returns_home(sim):
    # let simulated time run well past the camera wait below, so a stale camera schedule would show
    sim.graph.wait_for(lambda: conv.stamp_to_ns(sim.latest["/clock"].clock) > 4e9, 20, "4 s of simulated time", sim.process)
    response = sim.graph.call(sim.reset, Trigger.Request(), 10, sim.process)
    assert response.success, response.message
    clock_before = conv.stamp_to_ns(sim.latest["/clock"].clock)
    sim.wait_until_near(HOME, 0.01)
    assert conv.stamp_to_ns(sim.latest["/clock"].clock) >= clock_before, "/clock ran backwards after reset"
    # the camera keeps its rate after a reset (it once waited for the old simulated time to come back)
    clock_now = conv.stamp_to_ns(sim.latest["/clock"].clock)
    sim.graph.wait_for(
        lambda: conv.stamp_to_ns(sim.latest["camera/image_raw"].header.stamp) >= clock_now, 2, "a camera frame after reset", sim.process
    )


def test_runs_faster_than_real_time_on_clock():
    # light settings: the point is the pacing, and the test must hold on a busy 2-core machine
    # a domain of its own: the module's sim_node publishes /clock too
    domain = int(os.environ["ROS_DOMAIN_ID"]) % 100 + 1
    process = NodeProcess.node("jepa_ros.nodes.sim_node", env={"ROS_DOMAIN_ID": str(domain)},
                               real_time_factor=3.0, joint_state_rate=50.0, camera_rate=2.0)
    graph = ProbeGraph(domain_id=domain)
    try:
        clock: list[int] = []
        graph.node.create_subscription(Clock, "/clock", lambda m: clock.append(conv.stamp_to_ns(m.clock)), 10)
        graph.wait_for(lambda: len(clock) > 0, STARTUP_S, "/clock", process)
        graph.spin_for(0.5)
        start_sim, start_wall = clock[-1], time.monotonic()
        graph.spin_for(3.0)
        ratio = (clock[-1] - start_sim) / 1e9 / (time.monotonic() - start_wall)
        # paced at 3x: faster than real time, never free-running (a busy machine may lag behind 3x)
        assert ratio > 1.3 and ratio < 3.3, f"simulated / wall time = {ratio:.2f}, expected about 3"
        assert process.stop(signal.SIGINT) == 0, process.output()[-3000:]
    finally:
        graph.close()
        process.close()


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"image_size": 10}, "image_size=10: expected 64..256"),
        ({"camera_rate": -1.0}, "camera_rate=-1.0"),
        ({"urdf": "/nonexistent/arm.urdf"}, "/nonexistent/arm.urdf"),
        ({"joint_state_rate": 60.0}, "joint_state_rate=60.0 Hz: expected a whole number of physics steps"),
    ],
)
def test_bad_parameters_fail_at_startup(parameters, message):
    process = NodeProcess.node("jepa_ros.nodes.sim_node", **parameters)
    try:
        assert process.wait(STARTUP_S) == 2
        assert message in process.output()
    finally:
        process.close()


def test_the_push_scene_publishes_the_block_and_places_it_on_request():
    from geometry_msgs.msg import PoseStamped

    domain = int(os.environ["ROS_DOMAIN_ID"]) % 100 + 2  # its own domain: the module's sim_node publishes too
    process = NodeProcess.node("jepa_ros.nodes.sim_node", env={"ROS_DOMAIN_ID": str(domain)}, scene="push",
                               image_size=64, camera_rate=5.0, joint_state_rate=50.0)
    graph = ProbeGraph(domain_id=domain)
    try:
        poses: list[np.ndarray] = []
        graph.node.create_subscription(PoseStamped, "object_pose", lambda m: poses.append(conv.pose_to_planar(m)),
                                       qos_profile_sensor_data)
        place = graph.node.create_publisher(PoseStamped, "sim_node/place_object", 10)
        graph.wait_for(lambda: len(poses) > 0, STARTUP_S, "object_pose", process)
        target = np.array([poses[-1][0] + 0.05, poses[-1][1] - 0.03, 0.3])

        def placed() -> bool:
            place.publish(conv.planar_pose_stamped(target))
            return np.abs(poses[-1] - target).max() < 1e-3

        graph.wait_for(placed, MOVE_S, f"the block at {target.round(3).tolist()}", process)
        graph.spin_for(1.0)
        np.testing.assert_allclose(poses[-1], target, atol=1e-3)  # at rest where it was put
        assert process.stop(signal.SIGINT) == 0, process.output()[-3000:]
    finally:
        graph.close()
        process.close()
