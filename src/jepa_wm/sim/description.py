"""The arm description for simulation: xacro -> URDF string -> joint limits, home pose, camera.

The MuJoCo simulation builds from the same ``urdf/arm.urdf.xacro`` that ros2_control and Gazebo
use, so limits, link geometry and the camera pose have one source of truth.
"""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jepa_wm.config import package_share


class DescriptionError(ValueError):
    """The robot description file is missing, does not render, or lacks what the simulation needs."""


@dataclass(frozen=True)
class ArmDescription:
    """What the simulation reads from the URDF."""

    urdf_xml: str
    source: Path
    joint_names: tuple[str, ...]
    joint_lower: np.ndarray  # rad [J]
    joint_upper: np.ndarray  # rad [J]
    velocity_limits: np.ndarray  # rad/s [J]
    effort_limits: np.ndarray  # N m [J]
    home_joint_positions: np.ndarray  # rad [J]
    camera_frame: str  # link the camera image is expressed in (optical convention)
    camera_horizontal_fov: float  # rad


def default_xacro_path() -> Path:
    """The packaged arm description (source tree or share/jepa_ros)."""
    return package_share() / "urdf" / "arm.urdf.xacro"


def render_xacro(path: str | Path, mappings: dict[str, str] | None = None) -> str:
    """Run xacro on ``path`` with ``mappings`` (xacro args) and return the URDF XML string."""
    import xacro

    path = Path(path)
    if not path.is_file():
        raise DescriptionError(f"robot description {path}: no such file; expected a .urdf or .urdf.xacro file")
    mappings = dict(mappings or {})
    if "controllers_file" not in mappings:
        # $(find jepa_ros) needs an ament index; point at the controllers next to the description instead.
        controllers = path.resolve().parent.parent / "config" / "ros2_control" / "controllers.yaml"
        mappings["controllers_file"] = str(controllers)
    captured = io.StringIO()
    try:
        # xacro prints its own diagnostics; keep them for the error message instead of the console.
        with redirect_stderr(captured), redirect_stdout(captured):
            document = xacro.process_file(str(path), mappings=mappings)
    except Exception as err:  # xacro raises many types (XacroException, XML, NameError, OSError)
        raise DescriptionError(f"robot description {path} does not render with xacro: {err} {captured.getvalue().strip()}") from err
    return document.toprettyxml(indent="  ")


def load_description(path: str | Path = "", camera_name: str = "workspace_camera") -> ArmDescription:
    """Load a .urdf or .urdf.xacro (empty: the packaged arm) and read the joints and the camera."""
    path = Path(path) if str(path) else default_xacro_path()
    if not path.is_file():
        raise DescriptionError(f"robot description {path}: no such file; expected a .urdf or .urdf.xacro file")
    if path.name.endswith(".xacro"):
        urdf_xml = render_xacro(path, {"hardware": "mock"})
    else:
        urdf_xml = path.read_text()
    try:
        root = ET.fromstring(urdf_xml)
    except ET.ParseError as err:
        raise DescriptionError(f"robot description {path} is not valid XML: {err}") from err
    if root.tag != "robot":
        raise DescriptionError(f"robot description {path}: root element is <{root.tag}>, expected <robot>")

    names, lower, upper, velocity, effort = [], [], [], [], []
    for joint in root.findall("joint"):
        if joint.get("type") not in ("revolute", "prismatic"):
            continue
        name = joint.get("name", "")
        limit = joint.find("limit")
        missing = [key for key in ("lower", "upper", "velocity", "effort") if limit is None or limit.get(key) is None]
        if missing:
            raise DescriptionError(f"robot description {path}: joint {name} has no <limit> {missing}; the simulation needs all four")
        names.append(name)
        lower.append(float(limit.get("lower")))
        upper.append(float(limit.get("upper")))
        velocity.append(float(limit.get("velocity")))
        effort.append(float(limit.get("effort")))
    if not names:
        raise DescriptionError(f"robot description {path}: no revolute or prismatic joints")

    joint_lower, joint_upper = np.array(lower), np.array(upper)
    home = np.clip(np.zeros(len(names)), joint_lower, joint_upper)
    for joint in root.iter("joint"):
        # ros2_control's initial position is the home pose (the same one mock hardware starts in)
        initial = joint.find("state_interface[@name='position']/param[@name='initial_value']")
        if joint.get("type") is None and initial is not None and joint.get("name") in names:
            home[names.index(joint.get("name"))] = float(initial.text)

    sensor = root.find(f"gazebo/sensor[@name='{camera_name}']")
    if sensor is None or sensor.find("camera/horizontal_fov") is None:
        raise DescriptionError(
            f"robot description {path}: no <gazebo><sensor name='{camera_name}'> with a <camera><horizontal_fov>"
        )
    frame = sensor.findtext("camera/optical_frame_id") or sensor.findtext("gz_frame_id")
    if not frame:
        raise DescriptionError(f"robot description {path}: camera {camera_name} names no optical_frame_id")
    return ArmDescription(
        urdf_xml=urdf_xml,
        source=path,
        joint_names=tuple(names),
        joint_lower=joint_lower,
        joint_upper=joint_upper,
        velocity_limits=np.array(velocity),
        effort_limits=np.array(effort),
        home_joint_positions=home,
        camera_frame=frame,
        camera_horizontal_fov=float(sensor.findtext("camera/horizontal_fov")),
    )
