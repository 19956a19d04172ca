"""The core package jepa_wm never imports ROS: every module loads in a process without rclpy or *_msgs."""

import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import jepa_wm

CHECK = """
import importlib, json, sys
failed = {}
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except Exception as err:  # reported by the test, naming the module
        failed[name] = f"{type(err).__name__}: {err}"
ros = sorted(m for m in sys.modules
             if m.split('.')[0] in ('rclpy', 'rosidl_runtime_py', 'builtin_interfaces')
             or m.split('.')[0].endswith(('_msgs', '_srvs', '_interfaces')))
print(json.dumps({'ros': ros, 'failed': failed}))
"""


def core_modules() -> list[str]:
    """Every module and subpackage under jepa_wm."""
    root = Path(jepa_wm.__file__).parent
    return ["jepa_wm"] + [info.name for info in pkgutil.walk_packages([str(root)], prefix="jepa_wm.")]


def test_every_core_module_imports_without_ros():
    modules = core_modules()
    assert "jepa_wm.config" in modules
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    result = subprocess.run(
        [sys.executable, "-c", CHECK, *modules], capture_output=True, text=True, timeout=120, env=env
    )
    assert result.returncode == 0, f"the import check crashed:\n{result.stderr[-3000:]}"
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["ros"] == [], f"jepa_wm pulled in ROS modules {report['ros']} (modules checked: {modules})"
    assert report["failed"] == {}, f"jepa_wm modules failed to import: {report['failed']}"
