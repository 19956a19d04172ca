"""MuJoCo simulation of a robot preset's arm: position-controlled joints and a workspace camera image."""

from __future__ import annotations

import logging

import cv2
import mujoco
import numpy as np

from jepa_wm.config import SimConfig, check_joint_names, load_robot
from jepa_wm.safety import clamp_to_limits
from jepa_wm.sim.description import DescriptionError, load_description
from jepa_wm.sim.scene import (
    PUSH_OBJECT,
    PUSH_OBJECT_HALF_SIZE,
    TABLE_LINK,
    TCP_LINK,
    build_scene,
    camera_pose,
    overhead_camera,
)

logger = logging.getLogger(__name__)

TABLE_CLEARANCE = 0.07  # m the arm keeps above the table top: clear of the objects (<= 6 cm tall) too
SETPOINT_SPEED = 0.9  # fraction of the velocity limit: the servo lags and catches up a few % faster
IMAGE_MARGIN = 0.08  # fraction of the image the tool centre point keeps away from the border
PUSH_IMAGE_MARGIN = 0.2  # fraction of the image the push block's places keep away from the border
PUSH_AREA_HALF_WIDTH = 0.12  # m: the block is placed and pushed in a square this far around the reach's middle


class ArmSim:
    """The arm on its table: joint-position targets in, joint states and camera images out."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self.robot = load_robot(self.config.robot)
        self.description = load_description(self.config.urdf or self.robot.description_path(), self.config.camera_name)
        check_joint_names(self.robot.joint_names, self.description.joint_names, f"description {self.description.source}",
                          f"robot preset {self.robot.name!r}")
        self.model = build_scene(self.description, self.config)
        self.data = mujoco.MjData(self.model)
        self._scratch = mujoco.MjData(self.model)  # forward kinematics for pose sampling, never stepped

        self.joint_names = self.description.joint_names
        self.joint_lower = self.description.joint_lower.copy()
        self.joint_upper = self.description.joint_upper.copy()
        self.velocity_limits = self.description.velocity_limits.copy()
        self.home_joint_positions = self.description.home_joint_positions.copy()
        # the preset's box, in the description's joint order, inside the description's limits
        order = [self.robot.joint_names.index(name) for name in self.joint_names]
        box_lower, box_upper = (np.asarray(values)[order] for values in self.robot.explore_box())
        self.explore_lower = np.maximum(box_lower, self.joint_lower)
        self.explore_upper = np.minimum(box_upper, self.joint_upper)

        joint_ids = [self.model.joint(name).id for name in self.joint_names]
        self._qpos_index = self.model.jnt_qposadr[joint_ids]
        self._dof_index = self.model.jnt_dofadr[joint_ids]
        self._actuator_index = np.array([self.model.actuator(f"{name}_position").id for name in self.joint_names])
        self._tcp_body = self.model.body(TCP_LINK).id
        self._camera = self.model.camera(self.config.camera_name).id
        # every body from the first joint's body down belongs to the arm
        first = min(self.model.jnt_bodyid[joint_ids])
        self._arm_bodies = np.array([b for b in range(self.model.nbody) if self._descends_from(b, first)])
        table_geom = self.model.body(TABLE_LINK).geomadr[0]
        self._table_top = float(self.model.body(TABLE_LINK).pos[2] + self.model.geom_size[table_geom, 2])
        # What the clearance check watches: the arm's bodies and geoms that are clear of the table at the
        # home pose (those near the base, such as a pan joint's housing, sit low whatever the pose).
        self._clear_bodies, self._clear_geoms = self._arm_bodies, np.isin(self.model.geom_bodyid, self._arm_bodies)
        self._clear_bodies, self._clear_geoms = self._clear_at(self.description.home_joint_positions)
        self._refuse_touching_links(self.description.home_joint_positions)

        rendered = self.config.image_size * self.config.supersampling
        self.model.vis.global_.offwidth = max(int(self.model.vis.global_.offwidth), rendered)
        self.model.vis.global_.offheight = max(int(self.model.vis.global_.offheight), rendered)
        self._renderer = mujoco.Renderer(self.model, height=rendered, width=rendered)
        self._substeps = int(round(self.config.control_period / self.config.physics_timestep))
        self.last_clamp_warnings: list[str] = []
        self._noise = np.random.default_rng(self.config.seed)
        self._distractor_centres = self._place_distractors() if self.config.distractors else np.zeros((0, 3))
        self._object_qpos = None  # push scene: the block's free joint (x, y, z, quaternion) in qpos
        if self.config.scene == "push":
            self._object_qpos = self.model.jnt_qposadr[self.model.joint(f"{PUSH_OBJECT}_joint").id]
            self._object_area = self._reachable_table_area()
        self.reset()

    # ----------------------------------------------------------------------------------- state
    def reset(self, seed: int | None = None, joint_positions: np.ndarray | None = None,
              object_pose: np.ndarray | None = None) -> None:
        """Restart at rest at ``joint_positions`` (default: home); ``seed`` reseeds ``self.rng``. The push
        scene's block rests at ``object_pose`` (x, y m, yaw rad), default: a reachable place drawn from ``self.rng``."""
        self.rng = np.random.default_rng(self.config.seed if seed is None else seed)
        start = self.home_joint_positions if joint_positions is None else joint_positions
        start = clamp_to_limits(start, self.joint_lower, self.joint_upper, self.joint_names).command
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[self._qpos_index] = start
        if self._object_qpos is not None:
            pose = self.random_object_pose(self.rng) if object_pose is None else np.asarray(object_pose, dtype=np.float64)
            self._set_object_pose(pose)
        self._target = start.copy()
        self._setpoint = start.copy()
        self.data.ctrl[self._actuator_index] = start
        self._move_distractors()
        mujoco.mj_forward(self.model, self.data)

    def set_target(self, q_target: np.ndarray) -> np.ndarray:
        """Command joint positions (rad); clamped to the position limits. Returns the applied target."""
        result = clamp_to_limits(q_target, self.joint_lower, self.joint_upper, self.joint_names)
        self.last_clamp_warnings = result.warnings
        for warning in result.warnings:
            logger.debug(warning)
        self._target = result.command
        return self._target.copy()

    def step(self, duration: float | None = None) -> None:
        """Advance ``duration`` s (default: one control period) of simulated time."""
        substeps = self._substeps if duration is None else int(round(duration / self.config.physics_timestep))
        if substeps < 1:
            raise ValueError(f"step duration={duration} s: expected at least one physics step of {self.config.physics_timestep} s")
        max_move = SETPOINT_SPEED * self.velocity_limits * self.config.physics_timestep
        for _ in range(substeps):
            # The servo setpoint walks toward the target at the velocity limits, so the joints never exceed them.
            self._setpoint += np.clip(self._target - self._setpoint, -max_move, max_move)
            self.data.ctrl[self._actuator_index] = self._setpoint
            mujoco.mj_step(self.model, self.data)
        self._move_distractors()

    @property
    def time(self) -> float:
        """Simulated seconds since reset."""
        return float(self.data.time)

    @property
    def joint_positions(self) -> np.ndarray:
        """Measured joint positions (rad) [J]."""
        return self.data.qpos[self._qpos_index].copy()

    @property
    def joint_velocities(self) -> np.ndarray:
        """Measured joint velocities (rad/s) [J]."""
        return self.data.qvel[self._dof_index].copy()

    @property
    def target(self) -> np.ndarray:
        """The joint-position target the servos are heading for (rad) [J]."""
        return self._target.copy()

    def end_effector_position(self) -> np.ndarray:
        """Tool centre point in the world frame (m) [3]."""
        return self.data.xpos[self._tcp_body].copy()

    # ------------------------------------------------------------------------- the push block
    @property
    def table_top(self) -> float:
        """Height of the table top in the world frame (m)."""
        return self._table_top

    def object_pose(self) -> np.ndarray:
        """The push block's pose on the table: x, y (m, world frame) and yaw (rad, -pi/4..pi/4: a square's
        turn is the same every quarter turn) [3]; the push scene only."""
        index = self._require_push()
        x, y = self.data.qpos[index : index + 2]
        w, qx, qy, qz = self.data.qpos[index + 3 : index + 7]
        yaw = np.arctan2(2 * (w * qz + qx * qy), 1 - 2 * (qy**2 + qz**2))
        return np.array([x, y, (yaw + np.pi / 4) % (np.pi / 2) - np.pi / 4])

    @property
    def reachable_table_area(self) -> np.ndarray:
        """Table points [K, 2] (world x, y) where the push block is placed and pushed (see _reachable_table_area)."""
        self._require_push()
        return self._object_area

    def random_object_pose(self, rng: np.random.Generator) -> np.ndarray:
        """A block pose (x, y, yaw) where the tool reaches, drawn from ``rng``."""
        self._require_push()
        x, y = self._object_area[rng.integers(len(self._object_area))]
        return np.array([x, y, rng.uniform(-np.pi / 4, np.pi / 4)])

    def place_object(self, pose: np.ndarray) -> None:
        """Put the push block at rest at ``pose`` (x, y m, yaw rad) on the table top."""
        self._set_object_pose(np.asarray(pose, dtype=np.float64))
        mujoco.mj_forward(self.model, self.data)

    def _set_object_pose(self, pose: np.ndarray) -> None:
        index = self._require_push()
        if pose.shape != (3,) or not np.isfinite(pose).all():
            raise ValueError(f"object pose {pose.tolist()}: expected x, y (m) and yaw (rad), finite")
        half_height = PUSH_OBJECT_HALF_SIZE[2]
        self.data.qpos[index : index + 3] = [pose[0], pose[1], self._table_top + half_height]
        self.data.qpos[index + 3 : index + 7] = [np.cos(pose[2] / 2), 0.0, 0.0, np.sin(pose[2] / 2)]
        self.data.qvel[self.model.jnt_dofadr[self.model.joint(f"{PUSH_OBJECT}_joint").id] :][:6] = 0.0

    def _require_push(self) -> int:
        if self._object_qpos is None:
            raise ValueError(f"the {self.config.scene!r} scene has no block to push; use scene 'push'")
        return int(self._object_qpos)

    def _reachable_table_area(self, samples: int = 400) -> np.ndarray:
        """Table points [K, 2] under the tool of valid poses in the exploration box, 20 cm or more from the
        base and well inside the camera's view: where a block can be pushed from every side, and seen.
        The push camera is aimed at them first (scene.overhead_camera)."""
        rng = np.random.default_rng(self.config.seed + 2)
        base_body = self.model.jnt_bodyid[self.model.joint(self.joint_names[0]).id]
        points = []
        for _ in range(samples):
            self._scratch.qpos[self._qpos_index] = self.sample_joint_positions(rng)
            mujoco.mj_kinematics(self.model, self._scratch)
            points.append(self._scratch.xpos[self._tcp_body][:2].copy())
        points, base = np.array(points), self._scratch.xpos[base_body][:2].copy()
        points = points[np.linalg.norm(points - base, axis=1) > 0.2]
        if len(points) >= 10:  # one bench-sized square of it, around the middle of where the tool reaches
            points = points[np.all(np.abs(points - np.median(points, axis=0)) <= PUSH_AREA_HALF_WIDTH, axis=1)]
        if len(points) >= 10:
            position, orientation = camera_pose(*overhead_camera(points, base, self._table_top), self.config.camera_shift)
            self.model.cam_pos[self._camera], self.model.cam_quat[self._camera] = position, orientation
            mujoco.mj_camlight(self.model, self._scratch)
            size, margin = self.config.image_size, PUSH_IMAGE_MARGIN * self.config.image_size
            u, v = self._project(self._scratch, np.column_stack([points, np.full(len(points), self._table_top)])).T
            points = points[(margin <= u) & (u <= size - margin) & (margin <= v) & (v <= size - margin)]  # seen
        if len(points) < 10:
            raise RuntimeError(f"only {len(points)} of {samples} tool positions leave room for the push block")
        return points

    # ---------------------------------------------------------------------------------- camera
    def render(self) -> np.ndarray:
        """RGB image from the workspace camera, uint8 [H, W, 3] (H = W = image_size)."""
        self._renderer.update_scene(self.data, camera=self._camera)
        image = self._renderer.render()
        if self.config.supersampling > 1:
            size = self.config.image_size
            image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)  # mean of each k x k block
        if self.config.image_noise > 0:
            noisy = image + self._noise.normal(0.0, self.config.image_noise, image.shape)
            image = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
        return image

    def camera_intrinsics(self) -> dict[str, float]:
        """Pinhole intrinsics of the rendered image: width, height, fx, fy, cx, cy (pixels)."""
        size = self.config.image_size
        focal = (size / 2) / np.tan(np.radians(self.model.cam_fovy[self._camera]) / 2)
        return {"width": size, "height": size, "fx": float(focal), "fy": float(focal), "cx": size / 2, "cy": size / 2}

    def project(self, points: np.ndarray) -> np.ndarray:
        """Pixel coordinates (u right, v down) [N, 2] of world points [N, 3] in the current camera image."""
        return self._project(self.data, points)

    def _project(self, data: mujoco.MjData, points: np.ndarray) -> np.ndarray:
        rotation = data.cam_xmat[self._camera].reshape(3, 3)  # camera axes in world: x right, y up, -z forward
        local = (np.atleast_2d(points) - data.cam_xpos[self._camera]) @ rotation
        intrinsics = self.camera_intrinsics()
        u = intrinsics["cx"] + intrinsics["fx"] * local[:, 0] / -local[:, 2]
        v = intrinsics["cy"] - intrinsics["fy"] * local[:, 1] / -local[:, 2]
        return np.stack([u, v], axis=1)

    # ---------------------------------------------------------------------------- exploration
    def sample_joint_positions(self, rng: np.random.Generator, max_tries: int = 1000) -> np.ndarray:
        """A random pose in the exploration box with the arm above the table and the tool in view [J]."""
        for _ in range(max_tries):
            candidate = rng.uniform(self.explore_lower, self.explore_upper)
            if self.pose_is_valid(candidate):
                return candidate
        raise RuntimeError(f"no valid pose in {max_tries} samples of the exploration box; is the description changed?")

    def pose_is_valid(self, joint_positions: np.ndarray) -> bool:
        """True if at ``joint_positions`` the arm stays above the table and the tool is inside the image."""
        bodies, geoms = self._clear_at(joint_positions)
        if len(bodies) < len(self._clear_bodies) or geoms.sum() < self._clear_geoms.sum():
            return False
        mujoco.mj_camlight(self.model, self._scratch)
        u, v = self._project(self._scratch, self._scratch.xpos[self._tcp_body])[0]
        margin, size = IMAGE_MARGIN * self.config.image_size, self.config.image_size
        return bool(margin <= u <= size - margin and margin <= v <= size - margin)

    def _clear_at(self, joint_positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The watched arm bodies, and a mask of the watched geoms, that clear the table at ``joint_positions``."""
        self._scratch.qpos[self._qpos_index] = joint_positions
        mujoco.mj_kinematics(self.model, self._scratch)
        floor = self._table_top + TABLE_CLEARANCE
        bodies = self._clear_bodies[self._scratch.xpos[self._clear_bodies, 2] >= floor]
        lowest = self._scratch.geom_xpos[:, 2] - self.model.geom_rbound
        return bodies, self._clear_geoms & (lowest >= floor)

    def table_gap(self, joint_positions: np.ndarray, within: float = 0.1) -> float:
        """How far (m) the arm at ``joint_positions`` stays above the table: the smallest distance of any arm
        geom to the table top, negative where it would sink into it; ``within`` where it is farther."""
        self._scratch.qpos[self._qpos_index] = joint_positions
        mujoco.mj_kinematics(self.model, self._scratch)
        table = self.model.body(TABLE_LINK).geomadr[0]
        arm = np.flatnonzero(np.isin(self.model.geom_bodyid, self._arm_bodies))
        return min(mujoco.mj_geomDistance(self.model, self._scratch, int(g), int(table), within, None) for g in arm)

    def _refuse_touching_links(self, joint_positions: np.ndarray) -> None:
        """DescriptionError naming the first two links of the arm (or its base) in contact at ``joint_positions``:
        touching links drag on each other in every move, which no real arm does."""
        self._scratch.qpos[self._qpos_index] = joint_positions
        mujoco.mj_forward(self.model, self._scratch)
        base = self.model.body_parentid[self._arm_bodies.min()]
        robot = set(self._arm_bodies.tolist()) | {int(base)}
        for contact in self._scratch.contact[: self._scratch.ncon]:
            first, second = (int(self.model.geom_bodyid[g]) for g in (contact.geom1, contact.geom2))
            if first in robot and second in robot:
                names = sorted(self.model.body(b).name for b in (first, second))
                raise DescriptionError(
                    f"robot description {self.description.source}: links {names[0]} and {names[1]} touch at the "
                    f"home pose {np.round(joint_positions, 3).tolist()} (by {-contact.dist * 1000:.1f} mm); they "
                    f"would drag on each other in every move: give them room"
                )

    def close(self) -> None:
        """Free the renderer's OpenGL context."""
        self._renderer.close()

    def __enter__(self) -> ArmSim:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _place_distractors(self, tries: int = 4000) -> np.ndarray:
        """Centres [K, 3] on the table top for the moving distractors: in view at the home pose, clear of
        the arm's base and of each other. They touch nothing: the arm may pass through them, as through a
        shadow, but the camera sees them."""
        rng = np.random.default_rng(self.config.seed + 1)
        base = self.data.xpos[self.model.jnt_bodyid[self.model.joint(self.joint_names[0]).id]]
        self._scratch.qpos[self._qpos_index] = self.description.home_joint_positions
        mujoco.mj_kinematics(self.model, self._scratch)
        mujoco.mj_camlight(self.model, self._scratch)
        table = self.model.body(TABLE_LINK)
        half = self.model.geom_size[table.geomadr[0], :2]
        centres: list[np.ndarray] = []
        size, margin = self.config.image_size, IMAGE_MARGIN * self.config.image_size
        for _ in range(tries):
            xy = table.pos[:2] + rng.uniform(-half + 0.05, half - 0.05)
            point = np.array([*xy, self._table_top + 0.03])
            u, v = self._project(self._scratch, point)[0]
            clear = np.linalg.norm(xy - base[:2]) > 0.25 and all(np.linalg.norm(xy - c[:2]) > 0.15 for c in centres)
            if clear and margin <= u <= size - margin and margin <= v <= size - margin:
                centres.append(point)
                if len(centres) == self.config.distractors:
                    return np.array(centres)
        raise RuntimeError(f"no room for {self.config.distractors} distractors on the table in view")

    def _move_distractors(self) -> None:
        """Each distractor circles its centre (5 cm radius, one turn in 4 s of simulated time)."""
        for index, centre in enumerate(self._distractor_centres):
            phase = 2 * np.pi * (self.data.time / 4.0 + index / max(1, len(self._distractor_centres)))
            self.data.mocap_pos[index] = centre + 0.05 * np.array([np.cos(phase), np.sin(phase), 0.0])

    def _descends_from(self, body: int, ancestor: int) -> bool:
        while body > 0:
            if body == ancestor:
                return True
            body = self.model.body_parentid[body]
        return False
