"""A real arm under ros2_control: only the jepa_ros nodes, with a robot preset.

Commanding starts disabled: call world_model_node's ~/enable (std_srvs/SetBool) when the arm is
clear. Camera, joint-state and command topics are remappable.

    ros2 launch jepa_ros robot.launch.py robot:=ur5e camera_topic:=/wrist/image_raw

The graph (nodes, parameter files, remaps, arguments with descriptions and defaults) is
jepa_ros.graphs.GRAPHS["robot"], the same one `jepa-ros up robot` starts without ros2 launch;
`ros2 launch jepa_ros robot.launch.py --show-args` lists the arguments and
`jepa-ros up robot --dry-run` prints each node's command line.
"""

from jepa_ros.launch_builder import launch_description


def generate_launch_description():
    """Launch description of the robot graph."""
    return launch_description("robot")
