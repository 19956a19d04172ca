"""MuJoCo simulation of the jepa_ros arm, built from urdf/arm.urdf.xacro (ROS-free)."""

from jepa_wm.sim.arm_sim import ArmSim
from jepa_wm.sim.description import ArmDescription, DescriptionError, load_description
from jepa_wm.sim.explorer import RandomWalkExplorer

__all__ = ["ArmDescription", "ArmSim", "DescriptionError", "RandomWalkExplorer", "load_description"]
