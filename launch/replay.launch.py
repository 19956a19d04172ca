"""Offline evaluation: `ros2 bag play --clock` of a recorded bag with world_model_node planning.

The model's commands go to evaluation/commands (recorded with record:=true), never to a robot.

    ros2 launch jepa_ros replay.launch.py bag:=data/episode_000 [record:=true output:=eval_bag]

The graph (nodes, parameter files, remaps, arguments with descriptions and defaults) is
jepa_ros.graphs.GRAPHS["replay"], the same one `jepa-ros up replay` starts without ros2 launch;
`ros2 launch jepa_ros replay.launch.py --show-args` lists the arguments and
`jepa-ros up replay --dry-run` prints each node's command line.
"""

from jepa_ros.launch_builder import launch_description


def generate_launch_description():
    """Launch description of the replay graph."""
    return launch_description("replay")
