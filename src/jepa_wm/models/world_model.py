"""WorldModel: encoder + action-conditioned predictor, with the API the planner and nodes use.

Shapes: ``S`` candidate action sequences, ``H`` horizon, ``T0`` observed context steps,
``N`` latent tokens per frame (predictor.latent_grid^2), ``D`` latent width, ``J`` joints.
Two predictors (``predictor.variant``): this package's (pooled latents standardised per feature,
see :mod:`~jepa_wm.models.predictor`) and V-JEPA 2-AC's (every patch token, layer-normalised as
that model's targets are, see :mod:`~jepa_wm.models.ac_predictor`).
A normalised action ``a`` commands ``q + a * action_scale`` rad; imagined joint states are
integrated the same way, ``q_{t+1} = q_t + a_t * action_scale``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from jepa_wm.config import WorldModelConfig
from jepa_wm.models.ac_predictor import VJEPA2ACPredictor
from jepa_wm.models.arm_appearance import ArmAppearance
from jepa_wm.models.encoder import LinearPool, VisionEncoder, pool_tokens
from jepa_wm.models.end_effector import compose_pose, pose_difference
from jepa_wm.models.layers import KVCache
from jepa_wm.models.predictor import ActionConditionedPredictor
from jepa_wm.models.state_readout import StateReadout

RolloutFn = Callable[[torch.Tensor], torch.Tensor]
# (latent [B, N, D], joint_positions [B, J], actions [S, H, J], cache) -> latents [S, H, N, D]
ImagineFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, "list[KVCache] | None"], torch.Tensor]


class WorldModel(nn.Module):
    """JEPA world model: frames -> latents, (latents, joints, actions) -> future latents."""

    def __init__(self, config: WorldModelConfig) -> None:
        super().__init__()
        self.config = config
        self.num_tokens = config.predictor.latent_grid**2
        self.latent_dim = config.encoder.embed_dim
        self.encoder = VisionEncoder(config.encoder)
        self.latent_pool: LinearPool | None = None
        self.latent_norm: nn.BatchNorm1d | None = None
        self.readout: StateReadout | None = None  # the arm's state read from a latent
        if config.state_readout:
            self.readout = StateReadout(config.action_dim, self.num_tokens, self.latent_dim)
        self.arm: ArmAppearance | None = None  # what the arm alone contributes to a latent (planner.goal: objects)
        if config.arm_features:
            self.arm = ArmAppearance(config.action_dim, self.num_tokens, self.latent_dim, config.arm_features)
        if config.predictor.variant == "vjepa2_ac":
            grid = config.encoder.grid_size
            self.predictor = VJEPA2ACPredictor(config.predictor, self.latent_dim, config.action_dim, (grid, grid))
            return
        self.predictor = ActionConditionedPredictor(
            config.predictor, self.latent_dim, config.action_dim, self.num_tokens
        )
        if config.predictor.latent_pooling == "linear":
            self.latent_pool = LinearPool(self.latent_dim, config.encoder.grid_size, config.predictor.latent_grid)
        # Standardises every (token, channel) feature with running statistics. The arm fills a
        # small part of the view, so pooled encoder features barely vary between frames; without
        # this the optimiser needs thousands of steps to scale them up to what SIGReg asks for.
        self.latent_norm = nn.BatchNorm1d(self.num_tokens * self.latent_dim, affine=False)

    # ---- differentiable pieces (training) -------------------------------------------

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised images [B, 3, S, S] -> latents [B, N, D] (pooled, standardised encoder tokens)."""
        return self.standardise(self.pool(self.encoder(images)))

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """Patch tokens [B, g*g, D] -> latent tokens [B, N, D] (mean or learned linear block pooling)."""
        if self.latent_pool is not None:
            return self.latent_pool(tokens)
        return pool_tokens(tokens, self.config.predictor.latent_grid)

    def standardise(self, latents: torch.Tensor) -> torch.Tensor:
        """Per-feature standardisation of latents [..., N, D] (batch statistics while training);
        V-JEPA 2-AC: each token layer-normalised without affine parameters (``normalize_reps``)."""
        if self.latent_norm is None:
            return F.layer_norm(latents, (latents.shape[-1],))
        return self.latent_norm(latents.flatten(0, -3).flatten(1)).view_as(latents)

    @torch.no_grad()
    def calibrate(self, images: torch.Tensor, batch_size: int = 256) -> None:
        """Set the latent standardisation to the exact statistics of normalised images [M, 3, S, S].

        A layer-normalised (V-JEPA 2-AC) model has no statistics to set."""
        if self.latent_norm is None:
            return
        was_training = self.training
        self.eval()
        pooled = torch.cat([
            self.pool(self.encoder(images[i : i + batch_size]))
            for i in range(0, len(images), batch_size)
        ]).flatten(1)  # [M, N*D]
        self.latent_norm.running_mean.copy_(pooled.mean(0))
        self.latent_norm.running_var.copy_(pooled.var(0))
        self.train(was_training)

    def integrate(self, joint_positions: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """The state after a normalised action: q + a * action_scale (rad; the planar tool: m), or the
        end-effector pose composed with the pose delta a * action_scale (action_space end_effector)."""
        if self.config.action_space == "end_effector":
            return compose_pose(joint_positions, actions * self.config.action_scale)
        return joint_positions + actions * self.config.action_scale

    def actions_between(self, states: torch.Tensor) -> torch.Tensor:
        """Normalised actions [..., T-1, A] that took each state of [..., T, A] to the next."""
        if self.config.action_space == "end_effector":
            return pose_difference(states[..., :-1, :], states[..., 1:, :]) / self.config.action_scale
        return (states[..., 1:, :] - states[..., :-1, :]) / self.config.action_scale

    def context_cache(
        self, latents: torch.Tensor, joint_positions: torch.Tensor
    ) -> list[KVCache] | None:
        """Keys/values of the context steps before the last one; their actions come from joint differences."""
        if latents.shape[1] < 2:
            return None
        past_actions = self.actions_between(joint_positions)
        _, cache = self.predictor(latents[:, :-1], joint_positions[:, :-1], past_actions)
        return cache

    def imagine(
        self,
        latent: torch.Tensor,
        joint_positions: torch.Tensor,
        actions: torch.Tensor,
        cache: list[KVCache] | None,
    ) -> torch.Tensor:
        """Autoregressive rollout from the last observed step.

        latent [B, N, D] and joint_positions [B, J] of the last context step (B = 1 or S),
        actions [S, H, J] normalised, cache of earlier context steps (batch 1 or S).
        Returns predicted latents [S, H, N, D]. Each step feeds only its own tokens.
        """
        S, H, _ = actions.shape
        z = latent.expand(S, -1, -1)  # [S, N, D]
        q = joint_positions.expand(S, -1)  # [S, J]
        predictions = []
        for h in range(H):
            a = actions[:, h]  # [S, J]
            z_next, cache = self.predictor(z[:, None], q[:, None], a[:, None], cache)
            z = z_next[:, 0]  # [S, N, D]
            q = self.integrate(q, a)
            predictions.append(z)
        return torch.stack(predictions, dim=1)  # [S, H, N, D]

    # ---- inference API (docs/interfaces.md) ----------------------------------------

    @torch.inference_mode()
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 RGB frames [B, H, W, 3] -> latents [B, N, D]."""
        return self.embed(self.encoder.preprocess(frames))

    @torch.inference_mode()
    def rollout(self, latents: torch.Tensor, joint_positions: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """latents [B, T0, N, D], joint_positions [B, T0, J] rad, actions [S, H, J] -> [S, H, N, D] (B = 1 or S)."""
        self._check_context(latents, joint_positions)
        self._check_actions(actions)
        if latents.shape[0] not in (1, actions.shape[0]):
            raise ValueError(f"context batch {latents.shape[0]}: expected 1 or S={actions.shape[0]}")
        cache = self.context_cache(latents, joint_positions)
        return self.imagine(latents[:, -1], joint_positions[:, -1], actions, cache)

    @torch.inference_mode()
    def rollout_fn(
        self, latent: torch.Tensor, joint_positions: torch.Tensor, imagine: ImagineFn | None = None
    ) -> RolloutFn:
        """Cache the observed context once; return actions [S, H, J] -> predicted latents [S, H, N, D].

        latent: [N, D] (one frame), [T0, N, D] or [1, T0, N, D]; joint_positions: [J], [T0, J] or [1, T0, J].
        imagine: what runs the rollout, with the signature of :meth:`imagine` (default: that method;
        ``rollout_graph.TracedImagine`` runs it as a TorchScript graph).
        """
        imagine = self.imagine if imagine is None else imagine
        if latent.ndim == 2:
            latent = latent[None]
        if latent.ndim == 3:
            latent = latent[None]
        while joint_positions.ndim < 3:
            joint_positions = joint_positions[None]
        self._check_context(latent, joint_positions)
        if latent.shape[0] != 1:
            raise ValueError(f"rollout_fn context: expected one observation history, got batch {latent.shape[0]}")
        joint_positions = joint_positions.to(latent.dtype)
        cache = self.context_cache(latent, joint_positions)
        last_latent, last_joints = latent[:, -1], joint_positions[:, -1]

        @torch.inference_mode()
        def rollout(actions: torch.Tensor) -> torch.Tensor:
            self._check_actions(actions)
            return imagine(last_latent, last_joints, actions.to(last_latent.dtype), cache)

        return rollout

    # ---- input checks ----------------------------------------------------------------

    def _check_context(self, latents: torch.Tensor, joint_positions: torch.Tensor) -> None:
        N, D, J = self.num_tokens, self.latent_dim, self.config.action_dim
        if latents.ndim != 4 or latents.shape[2:] != (N, D):
            raise ValueError(f"latents {tuple(latents.shape)}: expected [B, T0, {N}, {D}]")
        if joint_positions.shape != (*latents.shape[:2], J):
            raise ValueError(
                f"joint_positions {tuple(joint_positions.shape)}: expected [B, T0, {J}] matching latents "
                f"{tuple(latents.shape)} ({self._state_names()})"
            )
        if latents.shape[1] > self.config.predictor.max_steps:
            raise ValueError(
                f"context of {latents.shape[1]} steps exceeds predictor.max_steps={self.config.predictor.max_steps}"
            )

    def _check_actions(self, actions: torch.Tensor) -> None:
        J = self.config.action_dim
        if actions.ndim != 3 or actions.shape[2] != J:
            raise ValueError(f"actions {tuple(actions.shape)}: expected [S, H, {J}] ({self._state_names()})")

    def _state_names(self) -> str:
        if self.config.action_space == "joint":
            return f"joints {list(self.config.joint_names)}"
        return f"{self.config.action_space} tool " + ", ".join(self.config.state_names)
