"""Gazebo Sim (Harmonic / Ionic) arm under gz_ros2_control with world_model_node.

ros_gz_sim's gz_sim.launch.py runs config/gazebo/workspace.sdf (server only with headless:=true);
robot_state_publisher publishes the xacro robot_description (hardware:=gazebo), `ros_gz_sim create`
spawns it, ros_gz_bridge bridges /clock and the camera from config/gazebo/gz_bridge.yaml; once the arm is
spawned the joint_state_broadcaster spawner runs, and after it the arm controller's
(config/ros2_control/controllers.yaml). Every node uses the simulation clock.

    ros2 launch jepa_ros sim_gazebo.launch.py [headless:=true] [explore:=true] [controller:=...]

The graph (nodes, parameter files, remaps, arguments with descriptions and defaults) is
jepa_ros.graphs.GRAPHS["sim_gazebo"], the same one `jepa-ros up sim_gazebo` starts without ros2 launch;
`ros2 launch jepa_ros sim_gazebo.launch.py --show-args` lists the arguments and
`jepa-ros up sim_gazebo --dry-run` prints each node's command line.
"""

from jepa_ros.launch_builder import launch_description


def generate_launch_description():
    """Launch description of the sim_gazebo graph."""
    return launch_description("sim_gazebo")
