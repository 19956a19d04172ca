"""Build the MuJoCo model of the arm scene from the URDF: actuators, camera, lights, objects."""

from __future__ import annotations

import colorsys
import dataclasses

import mujoco
import numpy as np

from jepa_wm.config import SimConfig
from jepa_wm.sim.description import ArmDescription, DescriptionError

TABLE_LINK = "table"
TCP_LINK = "tcp"
# Colours for the objects on the table: saturated, but none of the arm's link colours.
OBJECT_COLOURS = np.array(
    [
        [0.45, 0.15, 0.75, 1.0],  # purple
        [0.55, 0.30, 0.10, 1.0],  # brown
        [0.00, 0.45, 0.35, 1.0],  # teal
        [1.00, 0.55, 0.70, 1.0],  # pink
        [0.10, 0.10, 0.40, 1.0],  # navy
        [0.60, 0.75, 0.10, 1.0],  # olive
    ]
)
ARM_COLLISION = 2  # arm geoms collide with the table and objects, never with each other
# The push scene's block: a 6 cm square, 4 cm tall wooden block (half-sizes, m), 100 g, sliding on the table
# with wood-on-laminate friction (sliding 0.4; torsional and rolling resistance small).
PUSH_OBJECT = "push_object"
PUSH_OBJECT_HALF_SIZE = (0.03, 0.03, 0.02)
PUSH_OBJECT_MASS = 0.1
PUSH_OBJECT_FRICTION = (0.4, 0.005, 0.0001)
PUSH_OBJECT_RGBA = (0.85, 0.55, 0.15, 1.0)  # orange: none of the arm's or the table's colours
# The push scene's camera looks straight down on the table where the block is pushed, seeing that area
# with this much room (m) on every side, through this vertical field of view (deg).
PUSH_CAMERA_MARGIN = 0.08
PUSH_CAMERA_FOVY = 45.0
PUSH_TABLE_RGB = (0.45, 0.45, 0.43)  # a grey bench top: seen from above in full light, a light one turns white
SERVO_DAMPING_RATIO = 1.2  # over-damped: the joint follows its setpoint without overshooting it


def varied_appearance(config: SimConfig, rng: np.random.Generator) -> SimConfig:
    """``config`` as another room and camera would show it: light strength and direction, table and
    background colours, the camera moved by up to 2.5 cm and turned by up to 2.5 degrees, up to two
    boxes moving in view, sensor noise. The robot, its objects and its physics stay the same."""
    def plain_colour() -> tuple[float, ...]:  # the greys, woods and muted paints of a lab, not neon
        hue, saturation, value = rng.uniform(0, 1), rng.uniform(0, 0.5), rng.uniform(0.35, 0.9)
        return tuple(float(v) for v in colorsys.hsv_to_rgb(hue, saturation, value))

    return dataclasses.replace(
        config,
        light_scale=float(np.exp(rng.uniform(np.log(0.5), np.log(1.7)))),
        light_azimuth=float(rng.uniform(0.0, 360.0)),
        table_rgb=plain_colour(),
        background_rgb=plain_colour(),
        camera_shift=(*(float(v) for v in rng.uniform(-0.025, 0.025, 3)), *(float(v) for v in rng.uniform(-2.5, 2.5, 3))),
        distractors=int(rng.integers(0, 3)),
        image_noise=float(rng.uniform(0.0, 5.0)),
    )


def build_scene(description: ArmDescription, config: SimConfig) -> mujoco.MjModel:
    """Compile the scene: the URDF arm plus position servos, the workspace camera, lights and objects
    (and, where ``config`` asks, changed lights, colours, camera pose and moving distractors)."""
    camera_name, timestep = config.camera_name, config.physics_timestep
    # Keep fixed links (tcp, camera frames) as bodies instead of fusing them into their parents.
    urdf = description.urdf_xml.replace(
        "</robot>", '<mujoco><compiler fusestatic="false" discardvisual="true" balanceinertia="true"/></mujoco></robot>'
    )
    try:
        spec = mujoco.MjSpec.from_string(urdf)
    except ValueError as err:
        raise DescriptionError(f"robot description {description.source} does not load into MuJoCo: {err}") from err
    spec.modelname = "jepa_arm_scene"
    spec.compiler.discardvisual = False  # visual geoms are already gone; this keeps the skybox texture
    spec.option.timestep = timestep
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    spec.visual.global_.offwidth = 512
    spec.visual.global_.offheight = 512
    spec.visual.headlight.ambient = [0.35 * config.light_scale] * 3
    spec.visual.headlight.diffuse = [0.45 * config.light_scale] * 3

    bodies = {body.name: body for body in spec.bodies}
    for name in (TABLE_LINK, TCP_LINK, description.camera_frame):
        if name not in bodies:
            raise DescriptionError(f"robot description {description.source}: no link {name!r}; the simulation needs it")
    moving = _moving_bodies(spec, description.joint_names)
    for body in spec.bodies:
        for geom in body.geoms:
            if body.name in moving:
                geom.contype, geom.conaffinity = ARM_COLLISION, 0
            else:
                geom.contype, geom.conaffinity = 0, ARM_COLLISION
        if body.name in moving:
            body.gravcomp = 1.0  # the joint controllers of real arms compensate gravity too
            if body.parent.name not in moving:
                # The first link turns on the base it rests on: MuJoCo filters parent-child contacts except
                # with bodies welded to the world, and the touching faces would brake the joint by friction.
                spec.add_exclude(bodyname1=body.parent.name, bodyname2=body.name)

    for i, name in enumerate(description.joint_names):
        joint = spec.joint(name)
        joint.armature = 0.2 if description.effort_limits[i] > 30 else 0.02  # reflected motor inertia
        actuator = spec.add_actuator(name=f"{name}_position", target=name, trntype=mujoco.mjtTrn.mjTRN_JOINT)
        kp = 25.0 * description.effort_limits[i]  # stiff enough to hold a pose within mrad
        actuator.set_to_position(kp=kp, kv=0.0)  # kv is set from the joint inertia after compiling
        actuator.forcelimited = True
        actuator.forcerange = [-description.effort_limits[i], description.effort_limits[i]]

    if config.scene == "push":  # looks down on where the block is pushed; ArmSim aims it (overhead_camera)
        spec.worldbody.add_camera(name=camera_name, fovy=PUSH_CAMERA_FOVY)
    else:
        position, orientation = camera_pose(np.zeros(3), np.array([1.0, 0.0, 0.0, 0.0]), config.camera_shift)
        bodies[description.camera_frame].add_camera(
            name=camera_name, pos=position, quat=orientation, fovy=float(np.degrees(description.camera_horizontal_fov))
        )
    # A plain, light background: no horizon line or texture for the world model to waste capacity on.
    sky = list(config.background_rgb or (0.78, 0.82, 0.88))
    spec.add_texture(name="sky", type=mujoco.mjtTexture.mjTEXTURE_SKYBOX, builtin=mujoco.mjtBuiltin.mjBUILTIN_FLAT,
                     rgb1=sky, rgb2=sky, width=16, height=16)
    world = spec.worldbody
    azimuth = np.radians(config.light_azimuth)
    direction = np.array([-0.2, -0.35]) @ np.array([[np.cos(azimuth), np.sin(azimuth)], [-np.sin(azimuth), np.cos(azimuth)]])
    world.add_light(name="key_light", pos=[0.6, 0.8, 2.2], dir=[*direction, -1.0], diffuse=[0.6 * config.light_scale] * 3,
                    castshadow=False)
    table_rgb = config.table_rgb or (PUSH_TABLE_RGB if config.scene == "push" else None)
    if table_rgb:
        bodies[TABLE_LINK].first_geom().rgba = [*table_rgb, 1.0]
    _add_objects(spec, bodies[TABLE_LINK], config.num_objects if config.scene == "reach" else 0, config.seed)
    if config.scene == "push":
        _add_push_object(world)
    for index in range(config.distractors):  # moved by ArmSim; seen by the camera, touching nothing
        body = world.add_body(name=f"distractor{index}", mocap=True, pos=[0.0, 0.0, -1.0])
        body.add_geom(type=mujoco.mjtGeom.mjGEOM_BOX, size=[0.025, 0.025, 0.025], contype=0, conaffinity=0,
                      rgba=OBJECT_COLOURS[(index + 3) % len(OBJECT_COLOURS)])
    model = spec.compile()
    _set_servo_damping(model, description)
    # Joint limits as stiff as MuJoCo integrates stably (time constant: two physics steps): an arm driven
    # into the table or itself passed its URDF limits by 0.076 rad with the default 0.02 s, 0.012 rad here.
    joint_ids = [model.joint(name).id for name in description.joint_names]
    model.jnt_solref[joint_ids, 0] = 2 * timestep
    return model


def camera_pose(position: np.ndarray, orientation: np.ndarray, shift: tuple[float, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
    """MuJoCo camera position [3] and quaternion [4] for an optical frame at ``position`` / ``orientation``
    (w, x, y, z; x right, y down, z forward, as ROS camera frames), moved by ``shift``: (dx, dy, dz) m and
    (roll, pitch, yaw) deg in that frame. MuJoCo cameras look along -z with y up."""
    position, orientation = np.asarray(position, dtype=np.float64), np.asarray(orientation, dtype=np.float64)
    if shift:
        rotation = np.zeros(9)
        mujoco.mju_quat2Mat(rotation, orientation)
        position = position + rotation.reshape(3, 3) @ np.asarray(shift[:3], dtype=np.float64)
        turn = np.zeros(4)
        mujoco.mju_euler2Quat(turn, np.radians(shift[3:]), "XYZ")
        turned = np.zeros(4)
        mujoco.mju_mulQuat(turned, orientation, turn)
        orientation = turned
    flipped = np.zeros(4)
    mujoco.mju_mulQuat(flipped, orientation, np.array([0.0, 1.0, 0.0, 0.0]))  # half a turn about x
    return position, flipped


def overhead_camera(area: np.ndarray, base: np.ndarray, table_top: float) -> tuple[np.ndarray, np.ndarray]:
    """Optical frame (position [3], quaternion [4]) of a camera looking straight down on table ``area``
    [K, 2] (world x, y) from high enough to see all of it with PUSH_CAMERA_MARGIN around, the image's
    top away from the robot's ``base`` [2]: the arm reaches in from the bottom edge, as over a real bench."""
    centre = (area.min(axis=0) + area.max(axis=0)) / 2
    away = centre - base
    away = away / max(float(np.linalg.norm(away)), 1e-9)  # up in the image
    # optical axes in world: x right, y down (toward the base), z forward (down)
    axes = np.stack([np.array([away[1], -away[0], 0.0]), np.array([-away[0], -away[1], 0.0]), np.array([0.0, 0.0, -1.0])],
                    axis=1)
    quaternion = np.zeros(4)
    mujoco.mju_mat2Quat(quaternion, axes.flatten())
    reach = float(np.max(np.abs((area - centre) @ axes[:2, :2]))) + PUSH_CAMERA_MARGIN  # half the width seen
    height = reach / np.tan(np.radians(PUSH_CAMERA_FOVY) / 2)
    return np.array([*centre, table_top + height]), quaternion


def _moving_bodies(spec: mujoco.MjSpec, joint_names: tuple[str, ...]) -> set[str]:
    """Names of bodies downstream of a joint (the arm), as opposed to the static scene."""
    moving: set[str] = set()
    for body in spec.bodies:
        walker = body
        while walker is not None and walker.name != "world":
            if any(joint.name in joint_names for joint in walker.joints):
                moving.add(body.name)
                break
            walker = walker.parent
    return moving


def _add_objects(spec: mujoco.MjSpec, table: mujoco.MjsBody, num_objects: int, seed: int) -> None:
    """Static coloured boxes on the table top beside the arm, placed by ``seed``."""
    table_geom = table.first_geom()
    half = np.asarray(table_geom.size[:3])  # box half-sizes
    top = float(table.pos[2] + table_geom.pos[2] + half[2])
    rng = np.random.default_rng(seed)
    placed: list[np.ndarray] = []
    for index in range(num_objects):
        for _ in range(100):
            # beside the arm base, alternating sides: in view, and out of the way of the arm's reach
            side = 1.0 if index % 2 == 0 else -1.0
            xy = np.array([rng.uniform(-0.15, 0.15), side * rng.uniform(0.25, 0.45)])
            # clear of the arm base and of each other
            if np.linalg.norm(xy) > 0.22 and all(np.linalg.norm(xy - other) > 0.12 for other in placed):
                break
        placed.append(xy)
        size = np.array([*rng.uniform(0.025, 0.045, size=2), rng.uniform(0.02, 0.03)])  # half-sizes, at most 6 cm tall
        spec.worldbody.add_geom(
            name=f"object{index}", type=mujoco.mjtGeom.mjGEOM_BOX, size=size,
            pos=[xy[0], xy[1], top + size[2]], euler=[0.0, 0.0, rng.uniform(0, np.pi)],
            rgba=OBJECT_COLOURS[index % len(OBJECT_COLOURS)], contype=0, conaffinity=ARM_COLLISION,
        )


def _add_push_object(world: mujoco.MjsBody) -> None:
    """The free block of the push scene (placed on the table by ArmSim.reset): it touches the table and the arm."""
    body = world.add_body(name=PUSH_OBJECT, pos=[0.0, 0.0, 1.0])
    body.add_freejoint(name=f"{PUSH_OBJECT}_joint")
    body.add_geom(type=mujoco.mjtGeom.mjGEOM_BOX, size=list(PUSH_OBJECT_HALF_SIZE), mass=PUSH_OBJECT_MASS,
                  friction=list(PUSH_OBJECT_FRICTION), rgba=list(PUSH_OBJECT_RGBA),
                  contype=ARM_COLLISION, conaffinity=ARM_COLLISION)


def _set_servo_damping(model: mujoco.MjModel, description: ArmDescription) -> None:
    """Damp each position servo for its joint's inertia at the home pose (kv = 2 zeta sqrt(kp M))."""
    data = mujoco.MjData(model)
    qpos_index = [model.jnt_qposadr[model.joint(name).id] for name in description.joint_names]
    dof_index = [model.jnt_dofadr[model.joint(name).id] for name in description.joint_names]
    data.qpos[qpos_index] = description.home_joint_positions
    mujoco.mj_forward(model, data)
    mass_matrix = np.zeros((model.nv, model.nv))
    mujoco.mj_fullM(model, data, mass_matrix)
    for i, dof in enumerate(dof_index):
        kp = model.actuator_gainprm[i, 0]
        kv = 2.0 * SERVO_DAMPING_RATIO * np.sqrt(kp * mass_matrix[dof, dof])
        model.actuator_biasprm[i, 2] = -kv
