"""jepa_wm: the ROS-free core of jepa_ros (models, planning, data, simulation, safety)."""
