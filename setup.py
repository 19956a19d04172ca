"""ament_python package jepa_ros: builds with colcon on ROS 2 and with pip in a venv."""

from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "jepa_ros"
HERE = Path(__file__).parent


def share_files(*folders: str) -> list[tuple[str, list[str]]]:
    """Every file under the given folders, installed to share/jepa_ros keeping subfolders."""
    entries: dict[str, list[str]] = {}
    for folder in folders:
        for path in sorted((HERE / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                relative = path.relative_to(HERE)
                entries.setdefault(f"share/{PACKAGE}/{relative.parent}", []).append(str(relative))
    return sorted(entries.items())


NODES = ["sim_node", "explore_node", "world_model_node"]

setup(
    name=PACKAGE,
    version="0.1.0",
    description="JEPA world models in control of robot arms on ROS 2",
    license="Apache-2.0",
    python_requires=">=3.10",
    package_dir={"": "src"},
    packages=find_packages("src"),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        *share_files("launch", "config", "urdf", "checkpoints"),
    ],
    install_requires=[
        "torch>=2.2",
        "numpy",
        "pyyaml",
        "opencv-python-headless",
        "safetensors",
        "rosbags>=0.10",
        "mujoco>=3.1",
        "xacro",
        "pin>=3.0",  # pinocchio: forward and inverse kinematics for end-effector actions
        "matplotlib",
        "imageio",
        "pillow",
        "tqdm",
    ],
    extras_require={"test": ["pytest", "pytest-timeout", "ruff"]},
    zip_safe=True,
    entry_points={
        "console_scripts": [
            "jepa-ros = jepa_ros.cli:console_main",
            *[f"{node} = jepa_ros.nodes.{node}:main" for node in NODES],
        ],
    },
)
