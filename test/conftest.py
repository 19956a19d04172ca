"""Test-wide environment: DDS on loopback, a private ROS domain, offscreen MuJoCo."""

import os
import random

# Must be set before rclpy (and Fast DDS) is imported anywhere in the test session.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid()).randint(1, 100)))
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
