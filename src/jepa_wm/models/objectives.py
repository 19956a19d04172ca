"""JEPA training objectives: latent prediction losses and anti-collapse regularisers.

* teacher forcing: every step predicts z_{t+1} from the true z_{<=t} (one block-causal pass);
* rollout: from the context, feed the model's own predictions back for ``rollout_steps``
  with imagined joint states q_{t+1} = q_t + a_t * action_scale, exactly as the planner does;
  a sample longer than one window (``sequence_steps``) is rolled out from every window inside it;
* SIGReg (LeJEPA): random 1D projections of the latents are pushed towards N(0, 1) by an
  Epps-Pulley test on their empirical characteristic function, so the embedding cannot
  collapse, with no EMA teacher and no stop-gradient;
* optionally an EMA target encoder (V-JEPA) instead, or a frozen latent (``frozen_encoder``: encoder,
  pooling and standardisation fixed, the predictor trained alone, as V-JEPA 2-AC does);
* or, before all that, ``proprio``: the encoder alone learns a linear readout of the joint positions
  from each frame's latent (proprioception read from the image), with no predictor; the same readout
  can also be a term of the joint objective (``proprio_weight``), and can be the latent's first J
  features themselves (``proprio_readout: channels``).

Under ``torchrun`` the batch-wide parts (the latent standardisation's batch statistics, SIGReg and
the inverse-dynamics pairs across the batch) see the windows of every process, gathered with
gradients, so N processes optimise the same objective as one process with the whole batch.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from jepa_wm.config import TrainConfig
from jepa_wm.models.world_model import WorldModel


def sigreg(embeddings: torch.Tensor, num_slices: int = 256, num_knots: int = 17,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """Sketched isotropic Gaussian regulariser of embeddings [M, D] (0 for perfect N(0, I) samples).

    Each of ``num_slices`` random unit directions gives M scalar projections; their empirical
    characteristic function is compared with exp(-t^2/2) on t in [-5, 5], weighted by the
    Gaussian window, integrated with the trapezoid rule and scaled by M (Epps-Pulley).
    """
    M, D = embeddings.shape
    directions = torch.randn(D, num_slices, generator=generator, device="cpu").to(embeddings)
    directions = directions / directions.norm(dim=0, keepdim=True)
    projections = embeddings @ directions  # [M, slices]
    t = torch.linspace(-5.0, 5.0, num_knots, device=embeddings.device, dtype=embeddings.dtype)
    gaussian_cf = torch.exp(-0.5 * t**2)  # [knots]
    angles = projections.unsqueeze(-1) * t  # [M, slices, knots]
    real = angles.cos().mean(0)  # [slices, knots]
    imag = angles.sin().mean(0)
    distance = ((real - gaussian_cf) ** 2 + imag**2) * gaussian_cf
    return torch.trapezoid(distance, t, dim=-1).mean() * M


CUBIC_MIDPOINT = (-1 / 6, 2 / 3, 2 / 3, -1 / 6)  # Lagrange weights at t = 0 of the cubic through t = -2, -1, 1, 2


def roughness(latents: torch.Tensor) -> torch.Tensor:
    """How far each frame of latents [B, L, ...] (L >= 5) lies from the cubic through two frames on each side.

    Mean L1 over the interior frames, divided by the mean L1 change of a step (not differentiated):
    the share of a step's change that no function smooth over a few steps predicts.
    """
    L = latents.shape[1]
    around = [latents[:, 2 + k : L - 2 + k] for k in (-2, -1, 1, 2)]
    interpolated = sum(w * z for w, z in zip(CUBIC_MIDPOINT, around))
    step = (latents[:, 1:] - latents[:, :-1]).abs().mean().detach()
    return (latents[:, 2 : L - 2] - interpolated).abs().mean() / step.clamp_min(1e-8)


def windows(sequence: torch.Tensor, size: int) -> torch.Tensor:
    """Every window of ``size`` consecutive steps: [B, L, ...] -> [B * (L - size + 1), size, ...]."""
    unfolded = sequence.unfold(1, size, 1)  # [B, L-size+1, ..., size]
    return unfolded.movedim(-1, 2).flatten(0, 1)  # [B*(L-size+1), size, ...]


class _GatherBatch(torch.autograd.Function):
    """All processes' tensors [B, ...] concatenated [world * B, ...]; backward sums their gradients."""

    @staticmethod
    def forward(ctx, local: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        world, rank = dist.get_world_size(), dist.get_rank()
        gathered = local.new_empty((world * local.shape[0], *local.shape[1:]))
        dist.all_gather_into_tensor(gathered, local.contiguous())
        ctx.rows = slice(rank * local.shape[0], (rank + 1) * local.shape[0])
        return gathered

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        # Every process computed its loss from the whole gathered tensor: its rows' gradient is
        # the sum over processes. (torch.distributed.nn's all_gather does this but is deprecated.)
        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad[ctx.rows]


def gather_batch(local: torch.Tensor) -> torch.Tensor:
    """[B, ...] of this process -> [world * B, ...] of all processes in rank order (itself when alone)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return local
    return _GatherBatch.apply(local)


@dataclass
class Batch:
    """One training batch as float tensors on the training device."""

    images: torch.Tensor | None  # [B, L, 3, S, S] normalised; None when ``latents`` are given
    joint_positions: torch.Tensor  # [B, L, J] rad
    actions: torch.Tensor  # [B, L, J] normalised (rad / action_scale)
    latents: torch.Tensor | None = None  # [B, L, N, D] of a frozen latent, encoded once (frozen_encoder)


class JEPAObjective(nn.Module):
    """World model plus its loss: forward(batch) -> dict of scalar losses ('loss' is the total)."""

    def __init__(self, model: WorldModel, config: TrainConfig) -> None:
        super().__init__()
        self.model = model
        self.config = config
        self.target_encoder: nn.Module | None = None
        self.frozen = config.mode == "frozen_encoder"
        # The joint readout (proprioception read from the image): all of mode proprio, or a term of mode joint.
        self.reads_joints = config.mode == "proprio" or (config.mode == "joint" and config.proprio_weight > 0)
        self.proprio: nn.Linear | None = None  # the learned readout ("linear"); "channels" has none
        if self.reads_joints:
            features, joints = model.num_tokens * model.latent_dim, model.config.action_dim
            if config.proprio_readout == "linear":
                self.proprio = nn.Linear(features, joints)
            elif joints > features:
                raise ValueError(f"train.proprio_readout='channels' needs a feature per joint: {joints} joints, "
                                 f"{features} latent features")
            self.register_buffer("proprio_weights", self._joint_weights(config.proprio_joint_weights, "proprio"),
                                 persistent=False)
            # Joint statistics of the training frames (set_joint_statistics): the readout's targets
            # are standardised, so each joint counts by its weight, not by its range.
            self.register_buffer("joint_mean", torch.zeros(joints))
            self.register_buffer("joint_std", torch.ones(joints))
        if self.frozen:  # the latent is fixed: encoder, pooling and (in train()) standardisation
            model.encoder.requires_grad_(False)
            if model.latent_pool is not None:
                model.latent_pool.requires_grad_(False)
        elif config.mode == "proprio":  # the encoder alone; the predictor waits for a later stage
            model.predictor.requires_grad_(False)
        elif config.ema_momentum > 0:
            self.target_encoder = copy.deepcopy(model.encoder).requires_grad_(False)
        self.slice_generator = torch.Generator().manual_seed(config.seed)
        # Inverse dynamics (as in PLDM): recovering the joint motion between two latents makes the
        # latent sensitive to every joint's motion, so latent distances track the arm's pose.
        self.inverse_dynamics: nn.Module | None = None
        if config.inverse_dynamics_weight > 0 and config.mode == "joint":
            mc = model.config
            width = 2 * mc.predictor.latent_grid**2 * mc.encoder.embed_dim
            if config.inverse_dynamics_head == "linear":
                self.inverse_dynamics = nn.Linear(width, mc.action_dim)
            else:
                self.inverse_dynamics = nn.Sequential(nn.Linear(width, 256), nn.GELU(), nn.Linear(256, mc.action_dim))
            self.register_buffer("joint_weights", self._joint_weights(config.inverse_dynamics_joint_weights,
                                                                      "inverse_dynamics"), persistent=False)

    def _joint_weights(self, weights: tuple[float, ...], name: str) -> torch.Tensor:
        """train.<name>_joint_weights as a tensor [J]; empty: every joint weighs 1."""
        joint_names = self.model.config.state_names  # the joints, or the tool pose's components
        weights = weights or (1.0,) * len(joint_names)
        if len(weights) != len(joint_names):
            raise ValueError(f"train.{name}_joint_weights has {len(weights)} values; expected one per joint "
                             f"of {list(joint_names)}")
        return torch.tensor(weights, dtype=torch.float32)

    @torch.no_grad()
    def set_joint_statistics(self, joint_positions: torch.Tensor) -> None:
        """The joint readout's targets are standardised with these training frames' joints [M, J]."""
        if self.reads_joints:
            self.joint_mean.copy_(joint_positions.mean(0))
            self.joint_std.copy_(joint_positions.std(0).clamp_min(1e-3))

    def train(self, mode: bool = True) -> JEPAObjective:
        """As nn.Module.train; a frozen latent keeps its standardisation statistics (never the batch's)."""
        super().train(mode)
        if self.frozen and self.model.latent_norm is not None:
            self.model.latent_norm.eval()
        return self

    def _latents(self, encoder: nn.Module, images: torch.Tensor, gather: bool) -> torch.Tensor:
        """Latents [B', L, N, D] of the images [B, L, 3, S, S], standardised with batch statistics.

        ``gather``: B' spans every process's batch (rank order), so the statistics are the whole
        batch's; otherwise B' = B.
        """
        W = images.shape[1]
        pooled = self.model.pool(encoder(images.flatten(0, 1)))  # [B*W, N, D]
        if gather:
            pooled = gather_batch(pooled)
        return self.model.standardise(pooled).unflatten(0, (-1, W))

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Teacher-forcing + rollout L1 in latent space, plus SIGReg on the online latents (mode proprio:
        the joint readout's error alone)."""
        cfg, model = self.config, self.model
        C, R = cfg.context_steps, cfg.rollout_steps
        L = batch.joint_positions.shape[1]
        assert L == cfg.sequence, f"sample of {L} steps != train.sequence_steps {cfg.sequence} (window {C} + {R})"
        frozen = self.frozen
        # Validation runs in one process (eval mode): nothing to gather there.
        gather = self.training and dist.is_available() and dist.is_initialized()
        if batch.latents is not None:
            if not frozen:
                raise ValueError(f"a batch of latents trains only train.mode=frozen_encoder, not {cfg.mode!r}")
            everyone, gather = batch.latents, False  # a fixed latent: nothing batch-wide to gather
        else:
            with torch.set_grad_enabled(not frozen and torch.is_grad_enabled()):
                everyone = self._latents(model.encoder, batch.images, gather)  # [B', L, N, D]
        everyone_q = gather_batch(batch.joint_positions) if gather else batch.joint_positions  # [B', L, J]
        B, rank = batch.joint_positions.shape[0], dist.get_rank() if gather else 0
        mine = slice(rank * B, (rank + 1) * B)
        latents = everyone[mine]  # [B, L, N, D]: this process's samples
        if self.target_encoder is not None:
            with torch.no_grad():
                targets = self._latents(self.target_encoder, batch.images, gather)[mine]
        else:
            targets = latents
        q, a = batch.joint_positions, batch.actions
        if cfg.mode == "proprio":
            return self._proprio_losses(latents, q)

        # Teacher forcing: steps 0..L-2 predict 1..L-1 in one block-causal pass.
        predicted, _ = model.predictor(latents[:, :-1], q[:, :-1], a[:, :-1])
        teacher_forcing = (predicted - targets[:, 1:]).abs().mean()

        # Rollout from every window of the sample: context steps observed, then the model's own
        # predictions and integrated joints.
        latents_w, targets_w, q_w, a_w = (windows(x, C + R) for x in (latents, targets, q, a))  # [B*(L-W+1), W, ...]
        cache = model.context_cache(latents_w[:, :C], q_w[:, :C]) if C > 1 else None
        # (context_cache derives past actions from joint differences, as at inference)
        imagined = model.imagine(latents_w[:, C - 1], q_w[:, C - 1], a_w[:, C - 1 : C - 1 + R], cache)
        rollout = (imagined - targets_w[:, C:]).abs().mean()

        losses = {"teacher_forcing": teacher_forcing, "rollout": rollout}
        total = teacher_forcing + cfg.rollout_weight * rollout
        if cfg.sigreg_weight > 0 and not frozen:
            regulariser = sigreg(everyone.flatten(0, 2), generator=self.slice_generator)
            losses["sigreg"] = regulariser
            total = total + cfg.sigreg_weight * regulariser
        if self.inverse_dynamics is not None:
            inverse = self._inverse_dynamics_loss(everyone, everyone_q)
            losses["inverse_dynamics"] = inverse
            total = total + cfg.inverse_dynamics_weight * inverse
        if cfg.smoothness_weight > 0:
            losses["smoothness"] = roughness(latents)
            total = total + cfg.smoothness_weight * losses["smoothness"]
        if self.reads_joints:
            proprio = self._proprio_losses(latents, q)["proprio"]
            losses["proprio"] = proprio
            total = total + cfg.proprio_weight * proprio
        losses["loss"] = total
        return losses

    def _proprio_losses(self, latents: torch.Tensor, joint_positions: torch.Tensor) -> dict[str, torch.Tensor]:
        """Squared error of the joint positions [B, L, J] read from latents [B, L, N, D].

        Read linearly (train.proprio_readout "linear") or as the first J latent features ("channels").
        Per joint the mean over frames, in units of the joint's spread, weighted, summed over joints.
        """
        features = latents.flatten(2)  # [B, L, N*D]
        read = features[..., : len(self.joint_std)] if self.proprio is None else self.proprio(features)  # [B, L, J]
        error = (read - (joint_positions - self.joint_mean) / self.joint_std).square().mean(dim=(0, 1))  # [J]
        proprio = (error * self.proprio_weights).sum()
        return {"proprio": proprio, "loss": proprio}

    def _inverse_dynamics_loss(self, latents: torch.Tensor, joint_positions: torch.Tensor) -> torch.Tensor:
        """Error (L1 or squared: train.inverse_dynamics_loss) of the joint displacement read from pairs of frames.

        latents [B, L, N, D], joint_positions [B, L, J]. "window" pairs are every (t, t+k) of the
        sample with 1 <= k <= W-1 (a window's span): pairs several steps apart see moves several
        times larger than one step's, and the small wrist joints, a few pixels per step, first become
        visible there. "batch" adds each frame paired with the same step of the next
        ``inverse_dynamics_batch_shifts`` samples in the batch (other episodes): their displacement
        spans the workspace, so the latent must show where every joint is, not only how it moved.
        The target is the measured displacement (rad / action_scale), which is what the two images show.
        """
        L, W = latents.shape[1], self.config.window
        first, second = torch.triu_indices(L, L, offset=1, device=latents.device)  # all t < t+k
        within = second - first < W  # at most a window apart (every pair when L == W)
        first, second = first[within], second[within]
        before, after = latents[:, first], latents[:, second]  # [B, P, N, D]
        moved = joint_positions[:, second] - joint_positions[:, first]  # [B, P, J]
        if self.config.inverse_dynamics_pairs == "batch" and latents.shape[0] > 1:
            shifts = range(1, min(self.config.inverse_dynamics_batch_shifts, latents.shape[0] - 1) + 1)
            before = torch.cat([before, *(latents for _ in shifts)], dim=1)
            after = torch.cat([after, *(latents.roll(-s, dims=0) for s in shifts)], dim=1)
            moved = torch.cat([moved, *(joint_positions.roll(-s, dims=0) - joint_positions for s in shifts)], dim=1)
        pairs = torch.cat([before.flatten(2), after.flatten(2)], dim=-1)  # [B, P, 2*N*D]
        error = self.inverse_dynamics(pairs) - moved / self.model.config.action_scale  # [B, P, J]
        error = error.abs() if self.config.inverse_dynamics_loss == "l1" else error.square()
        return (error * self.joint_weights).mean()

    @torch.no_grad()
    def update_target(self) -> None:
        """EMA step of the target encoder towards the online encoder (no-op without EMA)."""
        if self.target_encoder is None:
            return
        m = self.config.ema_momentum
        for target, online in zip(self.target_encoder.parameters(), self.model.encoder.parameters()):
            target.lerp_(online, 1.0 - m)
