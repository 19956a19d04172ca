"""Typed configuration for the world model, planner, training, simulation and robots.

Every knob lives in a frozen dataclass that validates itself in ``__post_init__`` and
names the bad value. YAML files, JSON checkpoint configs and ROS parameters only fill
these fields: :func:`from_dict` refuses unknown keys, so a typo is an error, not a
silent default.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from jepa_wm import topics

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value is missing, unknown or out of range."""


def require(condition: bool, message: str) -> None:
    """Raise ConfigError(message) unless ``condition``: the one check every config's __post_init__ uses."""
    if not condition:
        raise ConfigError(message)


@dataclass(frozen=True)
class EncoderConfig:
    """ViT encoder over image patches; parameter names follow V-JEPA 2."""

    image_size: int = 64
    patch_size: int = 8
    in_channels: int = 3
    embed_dim: int = 128
    depth: int = 4
    num_heads: int = 4
    mlp_ratio: float = 4.0
    # Rotary 2D positions in attention (V-JEPA 2 ViT-L/H/g) instead of an added pos_embed.
    use_rope: bool = False
    # "linear": one strided convolution per patch, as V-JEPA 2 (its weights need this);
    # "conv": a stem of 3x3 stride-2 convolutions (Xiao et al. 2021), which lets a small ViT
    # trained from scratch see parts a few pixels wide, such as the arm's wrist.
    patch_embed: Literal["linear", "conv"] = "linear"
    # Gaussian blur (sigma in pixels at image_size) before the patch embedding, 0 for none: an edge
    # that moves by a fraction of a pixel then changes the image by a fraction too, as a camera's
    # optics do, instead of flipping whole pixels as a rendered one does.
    input_blur: float = 0.0
    # Frames per patch (V-JEPA 2's video encoders: 2). A still image is repeated over the tubelet,
    # as V-JEPA 2-AC encodes each frame; a clip of T frames gives T / tubelet_size token grids.
    tubelet_size: int = 1

    def __post_init__(self) -> None:
        require(1 <= self.tubelet_size <= 8, f"encoder.tubelet_size={self.tubelet_size}: expected 1..8 frames")
        require(self.tubelet_size == 1 or self.patch_embed == "linear",
                f"encoder.tubelet_size={self.tubelet_size}: a video tubelet needs patch_embed 'linear'")
        require(16 <= self.image_size <= 1024, f"encoder.image_size={self.image_size}: expected 16..1024")
        require(0.0 <= self.input_blur <= 4.0, f"encoder.input_blur={self.input_blur}: expected 0..4 pixels")
        require(self.patch_embed in ("linear", "conv"),
                 f"encoder.patch_embed={self.patch_embed!r}: expected 'linear' or 'conv'")
        if self.patch_embed == "conv":
            stride_two = self.patch_size.bit_length() - 2  # 3x3 stride-2 convolutions before the last 2x2 one
            require(self.patch_size >= 4 and self.patch_size & (self.patch_size - 1) == 0,
                     f"encoder.patch_size={self.patch_size}: the conv patch_embed needs a power of two >= 4")
            require(self.embed_dim % 2**stride_two == 0,
                     f"encoder.embed_dim={self.embed_dim}: the conv patch_embed halves it {stride_two} times")
        require(
            self.image_size % self.patch_size == 0,
            f"encoder.image_size={self.image_size} is not a multiple of patch_size={self.patch_size}",
        )
        require(
            self.embed_dim % self.num_heads == 0,
            f"encoder.embed_dim={self.embed_dim} is not divisible by num_heads={self.num_heads}",
        )
        require(self.depth >= 1, f"encoder.depth={self.depth}: expected >= 1")

    @property
    def grid_size(self) -> int:
        """Patches per image side."""
        return self.image_size // self.patch_size


@dataclass(frozen=True)
class PredictorConfig:
    """Action-conditioned predictor (V-JEPA 2-AC style, block-causal over time)."""

    embed_dim: int = 128
    depth: int = 4
    num_heads: int = 4
    mlp_ratio: float = 4.0
    latent_grid: int = 4  # encoder patch grid is average-pooled to latent_grid x latent_grid tokens
    # "linear": each latent token is a learned projection of its block of patch tokens (starts as the mean)
    latent_pooling: Literal["mean", "linear"] = "mean"
    max_steps: int = 16  # longest sequence of time steps (context + rollout)
    # "jepa_ros": this package's predictor (learned time and token tables, output a residual on the
    # latent, pooled and standardised latents). "vjepa2_ac": V-JEPA 2-AC as published (RoPE over time
    # and space, output the next latent itself, every patch token layer-normalised); official
    # ``predictor`` weights load into it unchanged.
    variant: Literal["jepa_ros", "vjepa2_ac"] = "jepa_ros"

    def __post_init__(self) -> None:
        require(self.variant in ("jepa_ros", "vjepa2_ac"),
                f"predictor.variant={self.variant!r}: expected 'jepa_ros' or 'vjepa2_ac'")
        require(
            self.embed_dim % self.num_heads == 0,
            f"predictor.embed_dim={self.embed_dim} is not divisible by num_heads={self.num_heads}",
        )
        require(self.latent_grid >= 1, f"predictor.latent_grid={self.latent_grid}: expected >= 1")
        require(self.max_steps >= 2, f"predictor.max_steps={self.max_steps}: expected >= 2")
        require(
            self.latent_pooling in ("mean", "linear"),
            f"predictor.latent_pooling={self.latent_pooling!r}: expected 'mean' or 'linear'",
        )


# V-JEPA 2-AC's end-effector state: position (m), roll-pitch-yaw (rad), gripper closure (0..1)
END_EFFECTOR_POSE = ("x", "y", "z", "roll", "pitch", "yaw", "gripper")
PLANAR_TOOL = ("x", "y")  # the tool's position on a table (m), its height and orientation held


@dataclass(frozen=True)
class WorldModelConfig:
    """Everything a checkpoint needs to rebuild its model and talk to a robot."""

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    predictor: PredictorConfig = field(default_factory=PredictorConfig)
    joint_names: tuple[str, ...] = (
        "joint1",
        "joint2",
        "joint3",
        "joint4",
        "joint5",
        "joint6",
    )
    # One unit of normalised action is this many radians of commanded joint-position delta
    # (end_effector: metres and radians of pose delta).
    action_scale: float = 0.1
    # "joint": states are the joint positions, actions their deltas, one per joint. "end_effector":
    # V-JEPA 2-AC's 7-D pose [x, y, z, roll, pitch, yaw, gripper] and its delta
    # (models/end_effector.py); joint_names are the robot's joints that inverse kinematics drives.
    # "planar": the tool's x, y (m) in the robot's base frame and their change, the tool held at
    # tool_pose's height and orientation (pushing on a table); joint_names as for end_effector.
    action_space: Literal["joint", "end_effector", "planar"] = "joint"
    # planar: the tool's height (m) and roll, pitch, yaw (rad) in the base frame; from the data when trained
    tool_pose: tuple[float, ...] = ()
    # Random Fourier features of the arm-appearance model (models/arm_appearance.py), with which the
    # planner compares a goal without the arm (planner.goal: objects); 0: none. `jepa-ros train` fits one
    # for planar (push) models.
    arm_features: int = 0
    # A linear readout of the arm's state from a latent (models/state_readout.py), fitted by `jepa-ros
    # train` after its last stage: the controller reads from it how far the tool is from where a goal
    # image shows it, a push model where the arm is in a goal image. False: checkpoints made without one.
    state_readout: bool = False

    def __post_init__(self) -> None:
        require(len(self.joint_names) >= 1, "world_model.joint_names is empty")
        require(self.action_space in ("joint", "end_effector", "planar"),
                f"world_model.action_space={self.action_space!r}: expected 'joint', 'end_effector' or 'planar'")
        require(len(self.tool_pose) in (0, 4) and all(math.isfinite(v) for v in self.tool_pose),
                f"world_model.tool_pose={list(self.tool_pose)}: expected height (m), roll, pitch, yaw (rad), or none")
        require(
            len(set(self.joint_names)) == len(self.joint_names),
            f"world_model.joint_names has duplicates: {list(self.joint_names)}",
        )
        require(self.action_scale > 0, f"world_model.action_scale={self.action_scale}: expected > 0")
        require(self.arm_features >= 0, f"world_model.arm_features={self.arm_features}: expected >= 0")
        require(not self.arm_features or self.state_readout,
                f"world_model.arm_features={self.arm_features} needs state_readout: true (the arm's state in a goal "
                "image is read from its latent)")
        require(
            self.predictor.variant != "vjepa2_ac" or self.predictor.latent_grid == self.encoder.grid_size,
            f"predictor.variant=vjepa2_ac predicts every patch token: predictor.latent_grid="
            f"{self.predictor.latent_grid} must equal the encoder's patch grid {self.encoder.grid_size}",
        )
        require(
            self.encoder.grid_size % self.predictor.latent_grid == 0,
            f"predictor.latent_grid={self.predictor.latent_grid} does not divide the encoder "
            f"patch grid {self.encoder.grid_size}",
        )

    @property
    def state_names(self) -> tuple[str, ...]:
        """Names of the state's (and action's) components: the joints, or the end-effector pose's."""
        return {"end_effector": END_EFFECTOR_POSE, "planar": PLANAR_TOOL}.get(self.action_space, self.joint_names)

    @property
    def action_dim(self) -> int:
        """Components of a state and of an action: one per joint, or the 7-D end-effector pose."""
        return len(self.state_names)


@dataclass(frozen=True)
class PlannerConfig:
    """Sampling-based MPC in latent space (CEM as in V-JEPA 2-AC, MPPI as in TD-MPC2)."""

    # MPPI by default: CEM averages its elites equally, MPPI's mean follows the cheapest few, which
    # reached more goals with the same samples and iterations (docs/research_log.md).
    method: Literal["cem", "mppi"] = "mppi"
    horizon: int = 4
    # 64 candidates: replanning (encode + plan) over DDS takes ~60 ms on a 2-core AVX-512 BF16 CPU and
    # ~170 ms on a 2-core AVX2 one (float32); 96 held about as many goals, and so did 32 (docs/research_log.md).
    # A plan that overruns the control period costs more goals than fewer candidates do: budget_ms below
    # fits the count to the machine.
    num_samples: int = 64
    iterations: int = 3
    num_elites: int = 16
    init_std: float = 0.5
    min_std: float = 0.05
    max_std: float = 1.0
    momentum_mean: float = 0.0  # weight of the previous iteration's mean (CEM)
    momentum_std: float = 0.0  # weight of the previous iteration's std (CEM)
    # MPPI elite weighting, in units of the elites' cost spread: lower follows the cheapest elite more
    # closely, higher averages more of them (0.25 reached the most goals, docs/research_log.md).
    temperature: float = 0.25
    action_bound: float = 1.0  # normalised actions are clipped to [-bound, bound]
    cost: Literal["l1", "l2"] = "l1"
    cost_over_horizon: bool = False  # sum the latent distance over all steps, not only the last
    # What of the goal image counts: "scene", all of it; "objects", what the arm does not explain (the
    # arm may be anywhere in a push goal image; needs a checkpoint with an arm-appearance model, which
    # `jepa-ros train` fits for planar models); "auto", objects where the checkpoint has that model.
    goal: Literal["auto", "scene", "objects"] = "auto"
    action_penalty: float = 0.0
    seed: int = 0
    # Number format of the predictor's rollouts; costs stay float32. bfloat16 plans faster where the
    # hardware computes it natively: CPUs with AVX-512 BF16 or AMX and most GPUs (1.14x alone, 1.6x
    # under load on a 2-core AMX CPU). Elsewhere it is emulated: 9x slower on a 2-core AVX2 CPU.
    # "auto" takes bfloat16 only where it is native (runtime.resolve_precision).
    precision: Literal["float32", "bfloat16", "auto"] = "float32"
    # How rollouts run: "torchscript" traces them into one graph per shape, which runs without
    # Python's GIL (subscription callbacks in the same node no longer stall planning); "eager"
    # runs them op by op.
    rollout_graph: Literal["eager", "torchscript"] = "eager"
    # The longest one replanning (encode + plan) may take on this machine, ms; 0: no limit. LatentMPC
    # times it when it starts and, where num_samples takes longer, plans with fewer candidates (a
    # multiple of 8, at least 16; num_elites at most half of them). The CPUs the package runs on differ
    # ~3x in speed; world_model_node sets 80 ms.
    budget_ms: float = 0.0

    def __post_init__(self) -> None:
        require(self.method in ("cem", "mppi"), f"planner.method={self.method!r}: expected 'cem' or 'mppi'")
        require(
            self.rollout_graph in ("eager", "torchscript"),
            f"planner.rollout_graph={self.rollout_graph!r}: expected 'eager' or 'torchscript'",
        )
        require(
            self.precision in ("float32", "bfloat16", "auto"),
            f"planner.precision={self.precision!r}: expected 'float32', 'bfloat16' or 'auto'",
        )
        require(self.cost in ("l1", "l2"), f"planner.cost={self.cost!r}: expected 'l1' or 'l2'")
        require(self.goal in ("auto", "scene", "objects"),
                f"planner.goal={self.goal!r}: expected 'auto', 'scene' or 'objects'")
        require(self.horizon >= 1, f"planner.horizon={self.horizon}: expected >= 1")
        require(self.num_samples >= 2, f"planner.num_samples={self.num_samples}: expected >= 2")
        require(self.iterations >= 1, f"planner.iterations={self.iterations}: expected >= 1")
        require(
            1 <= self.num_elites <= self.num_samples,
            f"planner.num_elites={self.num_elites}: expected 1..num_samples={self.num_samples}",
        )
        require(
            0 < self.min_std <= self.max_std,
            f"planner.min_std={self.min_std}, max_std={self.max_std}: expected 0 < min_std <= max_std",
        )
        require(self.init_std > 0, f"planner.init_std={self.init_std}: expected > 0")
        require(0 <= self.momentum_mean < 1, f"planner.momentum_mean={self.momentum_mean}: expected [0, 1)")
        require(0 <= self.momentum_std < 1, f"planner.momentum_std={self.momentum_std}: expected [0, 1)")
        require(self.temperature > 0, f"planner.temperature={self.temperature}: expected > 0")
        require(self.action_bound > 0, f"planner.action_bound={self.action_bound}: expected > 0")
        require(self.action_penalty >= 0, f"planner.action_penalty={self.action_penalty}: expected >= 0")
        require(math.isfinite(self.budget_ms) and self.budget_ms >= 0,
                f"planner.budget_ms={self.budget_ms}: expected >= 0 ms (0: no limit)")


@dataclass(frozen=True)
class TrainConfig:
    """Training of the world model from episodes."""

    # joint: encoder and predictor; frozen_encoder: encoder, pooling and standardisation fixed, the
    # predictor alone; proprio: the encoder alone, pretrained to hold the joint positions linearly
    # (a linear readout of each frame's latent, squared error on standardised joints): a first stage,
    # cheap a step (one frame a sample, no predictor), that teaches the wrist joints and the tool roll,
    # which the joint objective reads late or never (docs/research_log.md, "Proprioception first").
    mode: Literal["joint", "frozen_encoder", "proprio"] = "joint"
    batch_size: int = 32
    steps: int = 3000
    learning_rate: float = 1e-3
    weight_decay: float = 0.05
    warmup_steps: int = 200
    context_steps: int = 1  # observed steps before the rollout starts
    rollout_steps: int = 4  # autoregressive steps in the rollout loss
    # Frames per training sample; 0: one window (context_steps + rollout_steps). A longer sequence is
    # encoded once and every window inside it is trained on (teacher forcing over the whole sequence,
    # a rollout from each window, inverse-dynamics pairs up to a window apart): the encoder, most of
    # a step's cost, then serves several windows per frame instead of one.
    sequence_steps: int = 0
    rollout_weight: float = 1.0
    sigreg_weight: float = 0.05  # anti-collapse (LeJEPA SIGReg); 0 disables it
    ema_momentum: float = 0.0  # > 0 uses an EMA target encoder instead of a shared one
    inverse_dynamics_weight: float = 0.0  # PLDM-style head reading the joint displacement between two latents; 0 disables it
    # Which frame pairs the head reads: "window" (t, t+k) inside each training window, or "batch":
    # those plus pairs across the batch (other episodes), whose displacement spans the workspace.
    inverse_dynamics_pairs: Literal["window", "batch"] = "window"
    # With "batch": how many other samples each frame is paired with (the next 1, 2, ... in the
    # batch); more pairings show more of the workspace per encoded frame, at the head's small cost.
    inverse_dynamics_batch_shifts: int = 1
    # The head itself: "mlp" (one hidden layer) reads the displacement however the latent holds it;
    # "linear" makes every joint's position a linear function of the latent, so latent distances
    # (the planner's cost) move with joint distances.
    inverse_dynamics_head: Literal["mlp", "linear"] = "mlp"
    # Per-joint weights of the head's error (checkpoint joint order); empty: every joint weighs 1.
    # Joints the latent reads poorly (the small wrist joints) can be made to count more.
    inverse_dynamics_joint_weights: tuple[float, ...] = ()
    # The head's error: "l1" (absolute), or "mse" (squared), which weighs each pair by how far off
    # it is, so a joint read badly (the tool roll: 1 rad off) pulls harder than the ones read well.
    inverse_dynamics_loss: Literal["l1", "mse"] = "l1"
    # mode proprio: per-joint weights of the readout's error (checkpoint joint order); empty: all 1.
    proprio_joint_weights: tuple[float, ...] = ()
    # The joint readout (mode proprio, or mode joint with proprio_weight > 0): "linear", a learned
    # linear map of the whole latent; "channels", the latent's first J features themselves (token 0,
    # channels 0..J-1) hold the standardised joints, meant to keep the other features free for
    # prediction; they turned out as rough (docs/research_log.md, "A smooth latent").
    proprio_readout: Literal["linear", "channels"] = "linear"
    # mode joint: weight of the readout's error on every frame of the sample; 0 disables it.
    proprio_weight: float = 0.0
    # mode joint: weight of the latent's roughness along each sample (a frame against the cubic through
    # the two frames on each side, over the step's own change): the part of a step the predictor cannot
    # fit (docs/research_log.md, "A smooth latent"); 0 disables it. Needs samples of at least 5 frames.
    smoothness_weight: float = 0.0
    # "cosine": linear warm-up, then cosine decay to a tenth of the peak; "constant": warm-up, then the peak;
    # "wsd" (warm-up, stable, decay): the peak, then a linear decay to zero over the last lr_decay_fraction
    # of the steps, so a long run at the peak still ends at a minimum rather than wherever its noise left it.
    lr_schedule: Literal["cosine", "constant", "wsd"] = "cosine"
    lr_decay_fraction: float = 0.2
    # Each training frame seen through its own camera and room changes (light, white balance, contrast,
    # a small shift and turn of the view, sensor noise, JPEG; data/augment.py), so the latent learns to
    # ignore them. Modes that encode images only: a frozen latent is encoded once, as recorded.
    augment: bool = False
    val_fraction: float = 0.1
    val_every: int = 250
    checkpoint_every: int = 500
    grad_clip: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        require(self.mode in ("joint", "frozen_encoder", "proprio"),
                 f"train.mode={self.mode!r}: expected 'joint', 'frozen_encoder' or 'proprio'")
        require(self.batch_size >= 1, f"train.batch_size={self.batch_size}: expected >= 1")
        require(self.steps >= 1, f"train.steps={self.steps}: expected >= 1")
        require(self.learning_rate > 0, f"train.learning_rate={self.learning_rate}: expected > 0")
        require(self.context_steps >= 1, f"train.context_steps={self.context_steps}: expected >= 1")
        require(self.rollout_steps >= 1, f"train.rollout_steps={self.rollout_steps}: expected >= 1")
        require(
            self.sequence_steps == 0 or self.sequence_steps >= self.window,
            f"train.sequence_steps={self.sequence_steps}: expected 0 or >= context_steps + rollout_steps = {self.window}",
        )
        require(0 < self.val_fraction < 1, f"train.val_fraction={self.val_fraction}: expected (0, 1)")
        require(0 <= self.ema_momentum < 1, f"train.ema_momentum={self.ema_momentum}: expected [0, 1)")
        require(
            self.inverse_dynamics_weight >= 0,
            f"train.inverse_dynamics_weight={self.inverse_dynamics_weight}: expected >= 0",
        )
        require(
            self.inverse_dynamics_pairs in ("window", "batch"),
            f"train.inverse_dynamics_pairs={self.inverse_dynamics_pairs!r}: expected 'window' or 'batch'",
        )
        require(
            self.inverse_dynamics_batch_shifts >= 1,
            f"train.inverse_dynamics_batch_shifts={self.inverse_dynamics_batch_shifts}: expected >= 1",
        )
        require(
            self.inverse_dynamics_head in ("mlp", "linear"),
            f"train.inverse_dynamics_head={self.inverse_dynamics_head!r}: expected 'mlp' or 'linear'",
        )
        require(
            self.inverse_dynamics_loss in ("l1", "mse"),
            f"train.inverse_dynamics_loss={self.inverse_dynamics_loss!r}: expected 'l1' or 'mse'",
        )
        require(
            all(math.isfinite(w) and w >= 0 for w in self.inverse_dynamics_joint_weights),
            f"train.inverse_dynamics_joint_weights={list(self.inverse_dynamics_joint_weights)}: expected finite values >= 0",
        )
        require(
            all(math.isfinite(w) and w >= 0 for w in self.proprio_joint_weights),
            f"train.proprio_joint_weights={list(self.proprio_joint_weights)}: expected finite values >= 0",
        )
        require(
            self.proprio_readout in ("linear", "channels"),
            f"train.proprio_readout={self.proprio_readout!r}: expected 'linear' or 'channels'",
        )
        require(
            math.isfinite(self.proprio_weight) and self.proprio_weight >= 0,
            f"train.proprio_weight={self.proprio_weight}: expected a finite value >= 0",
        )
        require(
            math.isfinite(self.smoothness_weight) and self.smoothness_weight >= 0,
            f"train.smoothness_weight={self.smoothness_weight}: expected a finite value >= 0",
        )
        require(not self.augment or self.mode != "frozen_encoder",
                "train.augment=true with train.mode='frozen_encoder': a frozen latent is encoded once, as recorded")
        for name in ("proprio_weight", "smoothness_weight"):  # terms of the joint objective only
            require(getattr(self, name) == 0 or self.mode == "joint",
                     f"train.{name}={getattr(self, name)} applies to train.mode 'joint', not {self.mode!r}")
        require(
            self.smoothness_weight == 0 or self.mode != "joint" or self.sequence >= 5,
            f"train.smoothness_weight={self.smoothness_weight} needs samples of at least 5 frames, "
            f"not {self.sequence} (context_steps + rollout_steps, or sequence_steps)",
        )
        require(
            self.lr_schedule in ("cosine", "constant", "wsd"),
            f"train.lr_schedule={self.lr_schedule!r}: expected 'cosine', 'constant' or 'wsd'",
        )
        require(0 < self.lr_decay_fraction <= 1,
                 f"train.lr_decay_fraction={self.lr_decay_fraction}: expected a fraction of the steps in (0, 1]")

    @property
    def window(self) -> int:
        """Frames per training sample: context plus rollout targets."""
        return self.context_steps + self.rollout_steps

    @property
    def sequence(self) -> int:
        """Frames per training sample: sequence_steps, or one window when it is 0; one frame in mode proprio."""
        if self.mode == "proprio":
            return 1
        return self.sequence_steps or self.window


@dataclass(frozen=True)
class SimConfig:
    """MuJoCo simulation of the project's arm."""

    image_size: int = 128  # the default checkpoint's encoder size
    control_period: float = 0.1  # seconds of simulated time per control step
    physics_timestep: float = 0.002
    seed: int = 0
    robot: str = "jepa_arm"  # preset (config/robots/<robot>.yaml, or a path): its description and exploration box
    urdf: str = ""  # empty: the robot preset's description
    camera_name: str = "workspace_camera"
    num_objects: int = 3  # static boxes beside the arm in the reach scene (the push scene has its block only)
    # The camera renders image_size * k pixels a side and averages each k x k block, as a sensor
    # integrates light over its pixel area; 1 renders image_size directly (MuJoCo's 4x multisampling
    # only). The wrist parts move a fraction of a pixel per step: averaged, their image changes smoothly.
    supersampling: int = 1
    # What a real camera and room change at run time (benchmarks/robustness.py); the defaults are the
    # scene the exploration data is collected in.
    light_scale: float = 1.0  # brightness of every light, times
    light_azimuth: float = 0.0  # deg the key light is turned about the vertical
    table_rgb: tuple[float, ...] = ()  # table colour (0..1); empty: the description's
    background_rgb: tuple[float, ...] = ()  # the plain background's colour (0..1); empty: light grey-blue
    distractors: int = 0  # boxes moving on the table in view, out of the arm's reach
    camera_shift: tuple[float, ...] = ()  # (dx, dy, dz) m and (roll, pitch, yaw) deg added to the camera pose
    image_noise: float = 0.0  # std of Gaussian sensor noise, in 8-bit levels
    # "reach": the arm and static boxes beside it; "push": also a free block on the table within the
    # arm's reach (mass, friction), which the arm pushes (sim/scene.py, PUSH_OBJECT)
    scene: Literal["reach", "push"] = "reach"

    def __post_init__(self) -> None:
        require(self.scene in ("reach", "push"), f"sim.scene={self.scene!r}: expected 'reach' or 'push'")
        require(64 <= self.image_size <= 256, f"sim.image_size={self.image_size}: expected 64..256")
        require(math.isfinite(self.light_scale) and 0 <= self.light_scale <= 3,
                f"sim.light_scale={self.light_scale}: expected 0..3")
        for key in ("table_rgb", "background_rgb"):
            value = getattr(self, key)
            require(len(value) in (0, 3) and all(0 <= v <= 1 for v in value),
                    f"sim.{key}={list(value)}: expected three values in 0..1, or none")
        require(len(self.camera_shift) in (0, 6) and all(math.isfinite(v) for v in self.camera_shift),
                f"sim.camera_shift={list(self.camera_shift)}: expected dx dy dz (m) roll pitch yaw (deg), or none")
        require(0 <= self.distractors <= 8, f"sim.distractors={self.distractors}: expected 0..8")
        require(math.isfinite(self.image_noise) and self.image_noise >= 0, f"sim.image_noise={self.image_noise}: expected >= 0")
        require(self.seed >= 0, f"sim.seed={self.seed}: expected an integer >= 0")
        require(self.num_objects >= 0, f"sim.num_objects={self.num_objects}: expected >= 0")
        require(1 <= self.supersampling <= 4, f"sim.supersampling={self.supersampling}: expected 1..4")
        require(self.control_period > 0, f"sim.control_period={self.control_period}: expected > 0")
        require(
            0 < self.physics_timestep <= self.control_period,
            f"sim.physics_timestep={self.physics_timestep}: expected (0, control_period={self.control_period}]",
        )
        require(
            math.isclose(round(self.control_period / self.physics_timestep) * self.physics_timestep, self.control_period),
            f"sim.control_period={self.control_period} is not a multiple of physics_timestep={self.physics_timestep}",
        )


@dataclass(frozen=True)
class RobotConfig:
    """A robot preset: joint names and limits, and the topics its controllers use."""

    name: str
    joint_names: tuple[str, ...]
    joint_lower: tuple[float, ...]  # rad
    joint_upper: tuple[float, ...]  # rad
    velocity_limits: tuple[float, ...]  # rad/s
    command_interface: Literal["position", "trajectory"] = "position"
    command_topic: str = topics.POSITION_COMMANDS
    camera_topic: str = topics.CAMERA
    joint_states_topic: str = topics.JOINT_STATES
    control_rate: float = 5.0  # Hz
    simulated: bool = False  # real robots start with commanding disabled
    # URDF or xacro of the robot on its table with the workspace camera, for the MuJoCo simulation
    # (relative paths are to the package share); empty for a robot that is not simulated here.
    # Also the kinematics of end-effector actions (world_model.action_space end_effector).
    description: str = ""
    # The description's link that end-effector actions move; empty: the last link fixed to the last joint.
    end_effector_link: str = ""
    # Joint box (rad) that exploration (explore_node, `jepa-ros collect`) stays in; empty: the middle
    # 60 % of each joint's range. Choose it so the tool stays over the table and in the camera's view.
    explore_lower: tuple[float, ...] = ()
    explore_upper: tuple[float, ...] = ()
    # How much each joint's readout from the image counts in training; empty: all 1. Joints that move
    # few pixels (a wrist roll seen from afar) are learnt late and may weigh more.
    readout_weights: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        n = len(self.joint_names)
        require(n >= 1, f"robot {self.name!r}: joint_names is empty")
        for key in ("joint_lower", "joint_upper", "velocity_limits"):
            values = getattr(self, key)
            require(len(values) == n, f"robot {self.name!r}: {key} has {len(values)} values, expected {n} (one per joint)")
        for joint, lo, hi, vmax in zip(self.joint_names, self.joint_lower, self.joint_upper, self.velocity_limits):
            require(
                math.isfinite(lo) and math.isfinite(hi) and lo < hi,
                f"robot {self.name!r}: joint {joint} limits [{lo}, {hi}]: expected finite values with lower < upper",
            )
            require(
                math.isfinite(vmax) and vmax > 0,
                f"robot {self.name!r}: joint {joint} velocity limit {vmax}: expected a finite value > 0 rad/s",
            )
        require(
            self.command_interface in ("position", "trajectory"),
            f"robot {self.name!r}: command_interface={self.command_interface!r}: expected 'position' or 'trajectory'",
        )
        require(
            math.isfinite(self.control_rate) and self.control_rate > 0,
            f"robot {self.name!r}: control_rate={self.control_rate}: expected a finite rate > 0 Hz",
        )
        for key in ("explore_lower", "explore_upper", "readout_weights"):
            values = getattr(self, key)
            require(len(values) in (0, n), f"robot {self.name!r}: {key} has {len(values)} values, expected {n} (one per joint) or none")
        require(len(self.explore_lower) == len(self.explore_upper),
                f"robot {self.name!r}: explore_lower and explore_upper: give both or neither")
        for joint, lo, hi, lower, upper in zip(self.joint_names, *self.explore_box(), self.joint_lower, self.joint_upper):
            require(math.isfinite(lo) and math.isfinite(hi) and lower <= lo < hi <= upper,
                    f"robot {self.name!r}: joint {joint} exploration box [{lo}, {hi}]: expected lower < upper, "
                    f"inside the joint limits [{lower}, {upper}]")
        require(all(math.isfinite(w) and w > 0 for w in self.readout_weights),
                f"robot {self.name!r}: readout_weights={list(self.readout_weights)}: expected finite values > 0")

    def explore_box(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """The exploration box (lower, upper) in rad: the preset's, or the middle 60 % of each joint's range."""
        if self.explore_lower:
            return self.explore_lower, self.explore_upper
        spans = [hi - lo for lo, hi in zip(self.joint_lower, self.joint_upper)]
        return (tuple(lo + 0.2 * s for lo, s in zip(self.joint_lower, spans)),
                tuple(hi - 0.2 * s for hi, s in zip(self.joint_upper, spans)))

    def description_path(self) -> Path:
        """The description file, resolved against the package share; refuses a preset without one."""
        require(bool(self.description), f"robot {self.name!r} names no description (URDF or xacro): it cannot be simulated")
        path = Path(self.description)
        return path if path.is_absolute() else package_share() / path


# ---------------------------------------------------------------------------------------
# dict / YAML  <->  dataclasses


def from_dict(cls: type[T], data: dict[str, Any] | None, where: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys and wrong types raise ConfigError."""
    data = {} if data is None else data
    where = where or cls.__name__
    require(isinstance(data, dict), f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - known)
    require(not unknown, f"{where}: unknown keys {unknown}; known keys are {sorted(known)}")
    kwargs = {name: _coerce(hints[name], value, f"{where}.{name}") for name, value in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as err:  # a required field is missing
        raise ConfigError(f"{where}: {err}") from err


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return value if isinstance(value, hint) else from_dict(hint, value, where)
    if origin is tuple:
        require(isinstance(value, (list, tuple)), f"{where}={value!r}: expected a list")
        (item_hint, *_) = typing.get_args(hint)
        return tuple(_coerce(item_hint, item, f"{where}[{i}]") for i, item in enumerate(value))
    if origin is Literal:
        choices = typing.get_args(hint)
        require(value in choices, f"{where}={value!r}: expected one of {list(choices)}")
        return value
    if origin in (typing.Union, types.UnionType):
        return value
    if hint is float:
        require(isinstance(value, (int, float)) and not isinstance(value, bool), f"{where}={value!r}: expected a number")
        return float(value)
    if hint is int:
        require(isinstance(value, int) and not isinstance(value, bool), f"{where}={value!r}: expected an integer")
        return value
    if hint is bool:
        require(isinstance(value, bool), f"{where}={value!r}: expected true or false")
        return value
    if hint is str:
        require(isinstance(value, str), f"{where}={value!r}: expected a string")
        return value
    return value


def to_dict(config: Any) -> dict[str, Any]:
    """Dataclass to plain dict (tuples become lists) for JSON / YAML."""

    def convert(value: Any) -> Any:
        if isinstance(value, tuple):
            return [convert(v) for v in value]
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        return value

    return convert(dataclasses.asdict(config))


def load_yaml(path: str | Path, cls: type[T], section: str | None = None) -> T:
    """Load ``cls`` from a YAML file, optionally from one top-level ``section``."""
    path = Path(path)
    require(path.is_file(), f"config file {path} does not exist")
    with path.open() as stream:
        data = yaml.safe_load(stream) or {}
    if section is not None:
        require(section in data, f"{path}: no section {section!r}; sections are {sorted(data)}")
        data = data[section]
    return from_dict(cls, data, f"{path}" + (f":{section}" if section else ""))


def load_robot(name_or_path: str) -> RobotConfig:
    """Load a robot preset by name (``config/robots/<name>.yaml``) or by file path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = package_share() / "config" / "robots" / f"{name_or_path}.yaml"
        if not path.is_file():
            presets = sorted(p.stem for p in (package_share() / "config" / "robots").glob("*.yaml"))
            raise ConfigError(f"robot preset {name_or_path!r} not found; presets are {presets}")
    return load_yaml(path, RobotConfig)



def check_joint_names(checkpoint_joints: Sequence[str], robot_joints: Sequence[str], robot_name: str = "the robot",
                      checkpoint_name: str = "checkpoint") -> None:
    """Refuse a checkpoint whose joints differ from the robot's (order may differ: joints match by name).

    The one joint-set check: the node, the controller, the checkpoint's explored range and training
    from another checkpoint all refuse with this message, naming both sets and what each lacks.
    """
    missing = [name for name in robot_joints if name not in checkpoint_joints]
    extra = [name for name in checkpoint_joints if name not in robot_joints]
    require(
        not missing and not extra and len(set(checkpoint_joints)) == len(checkpoint_joints),
        f"{checkpoint_name} joints {list(checkpoint_joints)} do not match {robot_name} joints {list(robot_joints)} "
        f"(joints the {checkpoint_name} lacks: {missing}; {checkpoint_name} joints {robot_name} lacks: {extra})",
    )


def package_share() -> Path:
    """Folder holding launch/, config/ and urdf/: the source tree, or share/jepa_ros when installed."""
    source_root = Path(__file__).resolve().parents[2]
    if (source_root / "package.xml").is_file():
        return source_root
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("jepa_ros"))
    except (ImportError, LookupError) as err:
        raise ConfigError(
            f"cannot find the jepa_ros share folder: not in a source tree ({source_root}) "
            "and ament_index does not know the package"
        ) from err


def node_planner(overrides: dict | None = None) -> PlannerConfig:
    """The planner world_model_node runs: config/nodes/world_model_node.yaml's planner.* with ``overrides`` over it."""
    params = yaml.safe_load((package_share() / "config" / "nodes" / "world_model_node.yaml").read_text())
    return from_dict(PlannerConfig, {**params["/**"]["ros__parameters"]["planner"], **(overrides or {})}, "planner")
