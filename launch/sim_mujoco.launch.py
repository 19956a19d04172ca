"""MuJoCo arm (sim_node) with world_model_node (and explore_node with explore:=true).

    ros2 launch jepa_ros sim_mujoco.launch.py [explore:=true] [enable:=true] [image_size:=128]

The graph (nodes, parameter files, remaps, arguments with descriptions and defaults) is
jepa_ros.graphs.GRAPHS["sim_mujoco"], the same one `jepa-ros up sim_mujoco` starts without ros2 launch;
`ros2 launch jepa_ros sim_mujoco.launch.py --show-args` lists the arguments and
`jepa-ros up sim_mujoco --dry-run` prints each node's command line.
"""

from jepa_ros.launch_builder import launch_description


def generate_launch_description():
    """Launch description of the sim_mujoco graph."""
    return launch_description("sim_mujoco")
