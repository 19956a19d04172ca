"""Default topic names, as a ros2_control arm with a camera publishes them: the one place they are spelled.

Node names are relative (a namespace or remap moves them); bags record absolute names
(:func:`in_bag`). Every one of them is a parameter, a remap or a command-line option where it is used.
"""

from __future__ import annotations

CAMERA = "camera/image_raw"  # sensor_msgs/Image; image_transport's CompressedImage is CAMERA + "/compressed"
CAMERA_INFO = "camera/camera_info"  # sensor_msgs/CameraInfo
JOINT_STATES = "joint_states"  # sensor_msgs/JointState (joint_state_broadcaster)
POSITION_COMMANDS = "forward_position_controller/commands"  # std_msgs/Float64MultiArray (ForwardCommandController)
TRAJECTORY_COMMANDS = "joint_trajectory_controller/joint_trajectory"  # trajectory_msgs/JointTrajectory (JTC)
END_EFFECTOR = "end_effector_position"  # geometry_msgs/PointStamped: sim_node's ground truth, for evaluation
OBJECT_POSE = "object_pose"  # geometry_msgs/PoseStamped: the push block's pose (yaw about z), for evaluation only
CLOCK = "/clock"  # rosgraph_msgs/Clock


def in_bag(topic: str) -> str:
    """The absolute name a topic is recorded under (a node in the root namespace)."""
    return topic if topic.startswith("/") else f"/{topic}"
