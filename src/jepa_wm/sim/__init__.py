"""MuJoCo simulation of the jepa_ros arm, built from urdf/arm.urdf.xacro (ROS-free)."""

import os

# Offscreen rendering on a headless machine; MuJoCo picks its GL backend when first imported.
os.environ.setdefault("MUJOCO_GL", "egl")

from jepa_wm.sim.arm_sim import ArmSim  # noqa: E402
from jepa_wm.sim.description import ArmDescription, DescriptionError, load_description
from jepa_wm.sim.explorer import RandomWalkExplorer

__all__ = ["ArmDescription", "ArmSim", "DescriptionError", "RandomWalkExplorer", "load_description"]
