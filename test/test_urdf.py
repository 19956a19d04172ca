"""The arm description: xacro renders for every hardware choice, with limits, frames and controllers."""

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from jepa_wm.sim.description import DescriptionError, default_xacro_path, load_description, render_xacro

ROOT = Path(__file__).resolve().parents[1]
XACRO = ROOT / "urdf" / "arm.urdf.xacro"
CONTROLLERS = ROOT / "config" / "ros2_control" / "controllers.yaml"
JOINTS = [f"joint{i}" for i in range(1, 7)]
HARDWARE = {
    "gazebo": {"hardware": "gazebo"},
    "mock": {"hardware": "mock"},
    "real": {"hardware": "real", "hardware_plugin": "my_driver/MyArmSystem"},
}
PLUGINS = {"gazebo": "gz_ros2_control/GazeboSimSystem", "mock": "mock_components/GenericSystem", "real": "my_driver/MyArmSystem"}


def robot(mappings: dict[str, str]) -> ET.Element:
    return ET.fromstring(render_xacro(XACRO, mappings))


@pytest.mark.parametrize("hardware", sorted(HARDWARE))
def test_renders_with_the_chosen_hardware_plugin(hardware):
    root = robot(HARDWARE[hardware])
    assert root.tag == "robot"
    plugins = [element.text.strip() for element in root.findall("ros2_control/hardware/plugin")]
    assert plugins == [PLUGINS[hardware]]
    gz_plugins = root.findall("gazebo/plugin[@filename='gz_ros2_control-system']")
    assert len(gz_plugins) == (1 if hardware == "gazebo" else 0)


def test_gazebo_plugin_points_at_the_controllers_file():
    root = robot({"hardware": "gazebo", "controllers_file": "/opt/arm/controllers.yaml"})
    assert root.findtext("gazebo/plugin/parameters") == "/opt/arm/controllers.yaml"
    # without an explicit path the source-tree helper points next to the description
    default = robot({"hardware": "gazebo"}).findtext("gazebo/plugin/parameters")
    assert Path(default) == CONTROLLERS.resolve() and Path(default).is_file()


def test_find_resolves_through_the_ament_index(tmp_path, monkeypatch):
    """What colcon installs: $(find jepa_ros) resolves to share/jepa_ros through AMENT_PREFIX_PATH."""
    import xacro

    (tmp_path / "share" / "ament_index" / "resource_index" / "packages").mkdir(parents=True)
    (tmp_path / "share" / "ament_index" / "resource_index" / "packages" / "jepa_ros").write_text("")
    (tmp_path / "share" / "jepa_ros").symlink_to(ROOT)
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(tmp_path))
    document = xacro.process_file(str(XACRO), mappings={"hardware": "gazebo"})
    parameters = ET.fromstring(document.toxml()).findtext("gazebo/plugin/parameters")
    assert parameters == f"{tmp_path}/share/jepa_ros/config/ros2_control/controllers.yaml"


@pytest.mark.parametrize(
    "mappings, message",
    [({"hardware": "real"}, "hardware_plugin"), ({"hardware": "simulated"}, "expected gazebo, mock or real")],
)
def test_bad_hardware_choice_fails_with_a_clear_message(mappings, message):
    with pytest.raises(DescriptionError, match=message):
        render_xacro(XACRO, mappings)


def test_every_joint_has_position_and_velocity_limits_and_ros2_control_interfaces():
    root = robot(HARDWARE["mock"])
    joints = {joint.get("name"): joint for joint in root.findall("joint") if joint.get("type") == "revolute"}
    assert sorted(joints) == JOINTS
    for name, joint in joints.items():
        limit = joint.find("limit")
        lower, upper = float(limit.get("lower")), float(limit.get("upper"))
        assert lower < 0 < upper, name
        assert float(limit.get("velocity")) > 0 and float(limit.get("effort")) > 0, name
    control = {joint.get("name"): joint for joint in root.findall("ros2_control/joint")}
    assert sorted(control) == JOINTS
    for name, joint in control.items():
        assert [c.get("name") for c in joint.findall("command_interface")] == ["position"], name
        assert [s.get("name") for s in joint.findall("state_interface")] == ["position", "velocity"], name


def test_links_have_mass_and_the_description_has_tool_table_and_camera_frames():
    root = robot(HARDWARE["mock"])
    links = {link.get("name"): link for link in root.findall("link")}
    for name in ["table", "base_link", *[f"link{i}" for i in range(1, 7)], "tool_link", "tcp", "camera_link", "camera_optical_frame"]:
        assert name in links, name
    for name in ["base_link", *[f"link{i}" for i in range(1, 7)], "tool_link"]:
        assert float(links[name].find("inertial/mass").get("value")) > 0, name
    optical = root.find("joint[@name='camera_optical_joint']")
    assert optical.find("parent").get("link") == "camera_link"
    rpy = [float(v) for v in optical.find("origin").get("rpy").split()]
    assert rpy == pytest.approx([-1.5708, 0.0, -1.5708], abs=1e-3)  # REP-103 optical frame
    sensor = root.find("gazebo[@reference='camera_link']/sensor[@type='camera']")
    assert sensor is not None and sensor.findtext("camera/optical_frame_id") == "camera_optical_frame"


def test_reach_is_that_of_a_small_arm():
    description = load_description()
    assert description.joint_names == tuple(JOINTS)
    root = ET.fromstring(description.urdf_xml)
    origins = {j.get("name"): [float(v) for v in j.find("origin").get("xyz").split()] for j in root.findall("joint")}
    reach = sum(origins[name][2] for name in ["joint3", "joint4", "joint5", "joint6", "tool_joint", "tcp_joint"])
    assert 0.6 <= reach <= 0.75


def test_controllers_yaml_names_the_controllers_and_joints():
    config = yaml.safe_load(CONTROLLERS.read_text())
    manager = config["controller_manager"]["ros__parameters"]
    assert manager["forward_position_controller"]["type"] == "position_controllers/JointGroupPositionController"
    assert manager["joint_trajectory_controller"]["type"] == "joint_trajectory_controller/JointTrajectoryController"
    assert manager["joint_state_broadcaster"]["type"] == "joint_state_broadcaster/JointStateBroadcaster"
    for controller in ("forward_position_controller", "joint_trajectory_controller"):
        assert config[controller]["ros__parameters"]["joints"] == JOINTS


def test_default_description_is_the_packaged_xacro():
    assert default_xacro_path().resolve() == XACRO.resolve()


def test_missing_or_broken_description_fails_with_the_path(tmp_path):
    with pytest.raises(DescriptionError, match="no such file"):
        load_description(tmp_path / "nope.urdf.xacro")
    broken = tmp_path / "broken.urdf"
    broken.write_text("<robot><joint name='j' type='revolute'>")
    with pytest.raises(DescriptionError, match="broken.urdf is not valid XML"):
        load_description(broken)
    no_limits = tmp_path / "no_limits.urdf"
    no_limits.write_text("<robot name='r'><link name='a'/><link name='b'/><joint name='j' type='revolute'>"
                         "<parent link='a'/><child link='b'/></joint></robot>")
    with pytest.raises(DescriptionError, match="joint j has no <limit>"):
        load_description(no_limits)
