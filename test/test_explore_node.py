"""explore_node over real DDS: commands only while enabled and fed fresh joint states, inside its box."""

import numpy as np
import pytest
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import SetBool

from jepa_ros import conversions as conv
from ros_processes import NodeProcess, ProbeGraph

JOINTS = ("joint1", "joint2", "joint3", "joint4", "joint5", "joint6")
LOWER = np.array([-0.5, -0.3, 0.4, -0.5, 0.0, -0.5])
UPPER = np.array([0.5, 0.9, 1.9, 0.5, 1.7, 0.5])
MAX_DELTA = 0.05
STARTUP_S = 40.0


@pytest.fixture(scope="module")
def explore():
    process = NodeProcess.node(
        "jepa_ros.nodes.explore_node",
        box_lower=f"[{','.join(map(str, LOWER))}]",
        box_upper=f"[{','.join(map(str, UPPER))}]",
        max_delta=MAX_DELTA,
        rate=20.0,
        stale_after=0.3,
    )
    graph = ProbeGraph()
    try:
        yield graph, process
        assert process.stop() == 0, process.output()[-3000:]
    finally:
        graph.close()
        process.close()


def test_enable_gates_commands_and_stale_states_stop_them(explore):
    graph, process = explore
    commands: list[np.ndarray] = []
    graph.node.create_subscription(
        Float64MultiArray, "forward_position_controller/commands", lambda m: commands.append(conv.multiarray_to_numpy(m)), 10
    )
    joint_pub = graph.node.create_publisher(JointState, "joint_states", 10)
    # the arm starts outside the box on joint1 (0.8 > 0.5): exploration brings it in max_delta at a time
    positions = np.array([0.8, 0.3, 1.3, 0.0, 1.0, 0.0])
    feed = graph.node.create_timer(0.02, lambda: joint_pub.publish(conv.positions_to_joint_state(positions, JOINTS)))
    enable = graph.node.create_client(SetBool, "explore_node/enable")

    # disabled at start: fresh joint states, but no command
    graph.wait_for(lambda: joint_pub.get_subscription_count() > 0, STARTUP_S, "explore_node's joint_states subscription", process)
    graph.spin_for(1.0)
    assert commands == [], "explore_node commanded before it was enabled"

    response = graph.call(enable, SetBool.Request(data=True), 10, process)
    assert response.success and "enabled" in response.message
    graph.wait_for(lambda: len(commands) >= 10, 10, "10 exploration commands", process)
    steps = np.stack(commands) - positions
    assert np.all(np.abs(steps) <= MAX_DELTA + 1e-9), f"a command moved more than max_delta: {np.abs(steps).max()}"
    assert np.all(steps[:, 0] < 0), "joint1 outside the box was not brought back toward it"
    inner = np.stack(commands)[:, 1:]
    assert np.all((inner >= LOWER[1:] - 1e-9) & (inner <= UPPER[1:] + 1e-9)), "a command left the joint box"
    assert len({tuple(c.round(6)) for c in commands}) > 1, "the walk did not move"

    response = graph.call(enable, SetBool.Request(data=False), 10, process)
    assert response.success and "disabled" in response.message
    graph.spin_for(0.3)
    count = len(commands)
    graph.spin_for(1.0)
    assert len(commands) == count, "explore_node kept commanding after it was disabled"

    # enabled again, then the joint_states feed stops: commanding stops and says why
    graph.call(enable, SetBool.Request(data=True), 10, process)
    graph.wait_for(lambda: len(commands) > count + 3, 10, "commands after re-enabling", process)
    feed.cancel()
    graph.spin_for(0.6)
    count = len(commands)
    graph.spin_for(1.0)
    assert len(commands) == count, "explore_node kept commanding on stale joint states"
    graph.wait_for(lambda: "stale" in process.output(), 5, "a stale joint_states warning", process)


def test_a_box_of_the_wrong_length_fails_at_startup():
    process = NodeProcess.node("jepa_ros.nodes.explore_node", box_lower="[0.0, 0.0]")
    try:
        assert process.wait(STARTUP_S) == 2
        assert "box_lower has 2 values; expected 6" in process.output()
    finally:
        process.close()
