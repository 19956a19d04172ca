"""jepa_ros: thin ROS 2 layer over jepa_wm (nodes, message conversions, parameters)."""
