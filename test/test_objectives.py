"""Objectives: SIGReg separates Gaussian from collapsed latents; losses, EMA and frozen encoder behave."""

import dataclasses

import numpy as np
import pytest
import torch

from jepa_wm.config import TrainConfig
from jepa_wm.models.objectives import Batch, JEPAObjective, roughness, sigreg
from jepa_wm.models.world_model import WorldModel
from wm_fixtures import tiny_config


def test_sigreg_is_small_for_gaussian_and_large_for_collapse():
    g = torch.Generator().manual_seed(0)
    gaussian = torch.randn(1024, 32, generator=g)
    collapsed = torch.zeros(1024, 32) + 0.01 * torch.randn(1024, 32, generator=g)
    shrunk = 0.2 * torch.randn(1024, 32, generator=g)
    anisotropic = gaussian * torch.cat([torch.ones(1), torch.full((31,), 0.05)])
    low = sigreg(gaussian, generator=torch.Generator().manual_seed(1)).item()
    for bad in (collapsed, shrunk, anisotropic):
        assert sigreg(bad, generator=torch.Generator().manual_seed(1)).item() > 20 * low


def test_sigreg_gradient_spreads_collapsed_embeddings():
    x = (0.05 * torch.randn(512, 16)).requires_grad_()
    optimizer = torch.optim.Adam([x], lr=0.05)
    for _ in range(60):
        loss = sigreg(x, num_slices=64)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert 0.5 < x.detach().std(0).mean().item() < 1.5


def _batch(B=3, W=3, J=3) -> Batch:
    return Batch(torch.randn(B, W, 3, 32, 32), torch.randn(B, W, J), torch.rand(B, W, J) * 2 - 1)


def test_objective_losses_and_gradients():
    config = TrainConfig(context_steps=1, rollout_steps=2, sigreg_weight=0.1)
    objective = JEPAObjective(WorldModel(tiny_config()), config)
    losses = objective(_batch())
    assert set(losses) == {"teacher_forcing", "rollout", "sigreg", "loss"}
    losses["loss"].backward()
    assert objective.model.encoder.patch_embed.proj.weight.grad.abs().sum() > 0
    assert objective.model.predictor.action_encoder.weight.grad.abs().sum() > 0


def _inverse_dynamics_case(batch: int, window: int, pairs: str = "window", joint_weights: tuple = (), loss: str = "l1",
                           shifts: int = 1):
    """An objective with an inverse-dynamics head, random latents [B, W, N, D] and joints [B, W, J]."""
    torch.manual_seed(0)
    config = TrainConfig(context_steps=1, rollout_steps=window - 1, sigreg_weight=0.0, inverse_dynamics_weight=1.0,
                         inverse_dynamics_pairs=pairs, inverse_dynamics_joint_weights=joint_weights,
                         inverse_dynamics_loss=loss, inverse_dynamics_batch_shifts=shifts)
    objective = JEPAObjective(WorldModel(tiny_config()), config)
    latents, joints = torch.randn(batch, window, 4, 32), torch.randn(batch, window, 3)
    return objective, latents, joints, objective.model.config.action_scale


def test_inverse_dynamics_reads_the_joint_motion_between_every_pair_of_frames():
    objective, latents, joints, scale = _inverse_dynamics_case(batch=2, window=4)
    errors = []
    for t in range(4):
        for later in range(t + 1, 4):  # one to three steps apart: 6 pairs
            pair = torch.cat([latents[:, t].flatten(1), latents[:, later].flatten(1)], dim=-1)
            moved = (joints[:, later] - joints[:, t]) / scale
            errors.append((objective.inverse_dynamics(pair) - moved).abs())
    expected = torch.stack(errors).mean()
    torch.testing.assert_close(objective._inverse_dynamics_loss(latents, joints), expected)


@pytest.mark.parametrize(("batch", "shifts", "others"), [(3, 1, 1), (4, 2, 2), (3, 5, 2)])
def test_batch_pairs_add_each_frame_against_the_same_step_of_the_next_samples(batch, shifts, others):
    # each frame meets the same step of the next `shifts` samples, at most every other sample once
    objective, latents, joints, scale = _inverse_dynamics_case(batch=batch, window=3, pairs="batch", shifts=shifts)
    errors = []
    for b in range(batch):
        pairs = [((b, t), (b, later)) for t in range(3) for later in range(t + 1, 3)]  # 3 window pairs
        pairs += [((b, t), ((b + k) % batch, t)) for k in range(1, others + 1) for t in range(3)]
        for (b0, t0), (b1, t1) in pairs:
            pair = torch.cat([latents[b0, t0].flatten(), latents[b1, t1].flatten()])
            moved = (joints[b1, t1] - joints[b0, t0]) / scale
            errors.append((objective.inverse_dynamics(pair) - moved).abs())
    expected = torch.stack(errors).mean()
    torch.testing.assert_close(objective._inverse_dynamics_loss(latents, joints), expected)


def test_bad_inverse_dynamics_pairings_are_refused():
    with pytest.raises(ValueError, match="inverse_dynamics_pairs='episode'"):
        TrainConfig(inverse_dynamics_pairs="episode")
    with pytest.raises(ValueError, match="inverse_dynamics_batch_shifts=0: expected >= 1"):
        TrainConfig(inverse_dynamics_batch_shifts=0)


def test_joint_weights_scale_each_joints_share_of_the_inverse_dynamics_loss():
    objective, latents, joints, scale = _inverse_dynamics_case(batch=2, window=3, joint_weights=(0.0, 1.0, 3.0))
    first, second = torch.triu_indices(3, 3, offset=1)
    pairs = torch.cat([latents[:, first].flatten(2), latents[:, second].flatten(2)], dim=-1)
    error = (objective.inverse_dynamics(pairs) - (joints[:, second] - joints[:, first]) / scale).abs()  # [B, P, J]
    expected = (error[..., 1] + 3.0 * error[..., 2]).mean() / 3  # joint 0 does not count
    torch.testing.assert_close(objective._inverse_dynamics_loss(latents, joints), expected)
    with pytest.raises(ValueError, match="has 2 values; expected one per joint"):
        _inverse_dynamics_case(batch=2, window=3, joint_weights=(1.0, 1.0))
    with pytest.raises(ValueError, match="inverse_dynamics_joint_weights=\\[1.0, -1.0\\]"):
        TrainConfig(inverse_dynamics_joint_weights=(1.0, -1.0))


def test_a_squared_error_weighs_the_joints_read_worst_most():
    objective, latents, joints, scale = _inverse_dynamics_case(batch=2, window=3, joint_weights=(1.0, 1.0, 3.0), loss="mse")
    first, second = torch.triu_indices(3, 3, offset=1)
    pairs = torch.cat([latents[:, first].flatten(2), latents[:, second].flatten(2)], dim=-1)
    error = objective.inverse_dynamics(pairs) - (joints[:, second] - joints[:, first]) / scale  # [B, P, J]
    expected = (error[..., 0] ** 2 + error[..., 1] ** 2 + 3.0 * error[..., 2] ** 2).mean() / 3
    torch.testing.assert_close(objective._inverse_dynamics_loss(latents, joints), expected)
    with pytest.raises(ValueError, match="inverse_dynamics_loss='huber': expected 'l1' or 'mse'"):
        TrainConfig(inverse_dynamics_loss="huber")


def test_a_linear_head_is_exact_on_latents_that_hold_the_joints_linearly():
    torch.manual_seed(0)
    config = TrainConfig(context_steps=1, rollout_steps=2, sigreg_weight=0.0, inverse_dynamics_weight=1.0,
                         inverse_dynamics_pairs="batch", inverse_dynamics_head="linear")
    objective = JEPAObjective(WorldModel(tiny_config()), config)
    head, scale = objective.inverse_dynamics, objective.model.config.action_scale
    assert isinstance(head, torch.nn.Linear)
    joints = torch.randn(4, 3, 3)  # [B, W, J]
    mixing = torch.randn(3, 4 * 32)
    latents = (joints @ mixing).unflatten(-1, (4, 32)) + 0.5  # an affine image of the joints
    readout = torch.linalg.pinv(mixing)  # [N*D, J]: latent -> joints
    with torch.no_grad():
        head.weight.copy_(torch.cat([-readout, readout]).T / scale)  # (after - before) read out, in action units
        head.bias.zero_()
    assert objective._inverse_dynamics_loss(latents, joints).item() < 1e-3
    with pytest.raises(ValueError, match="inverse_dynamics_head='deep'"):
        TrainConfig(inverse_dynamics_head="deep")


def test_proprio_mode_reads_standardised_joints_linearly_and_trains_the_encoder_alone():
    torch.manual_seed(0)
    config = TrainConfig(mode="proprio", proprio_joint_weights=(1.0, 2.0, 0.0))
    objective = JEPAObjective(WorldModel(tiny_config()), config)
    model, head = objective.model, objective.proprio
    joints = torch.randn(64, 1, 3) * torch.tensor([0.2, 1.0, 3.0]) + 1.0  # [B, 1, J]: unlike spreads
    objective.set_joint_statistics(joints.flatten(0, 1))
    mixing = torch.randn(3, 4 * 32)
    latents = (((joints - objective.joint_mean) / objective.joint_std) @ mixing).unflatten(-1, (4, 32))
    with torch.no_grad():  # the exact readout of those latents
        head.weight.copy_(torch.linalg.pinv(mixing).T)
        head.bias.zero_()
    assert objective._proprio_losses(latents, joints)["proprio"].item() < 1e-6
    # An error of one spread costs a joint its weight: 2 for the second, nothing for the third.
    moved = joints.clone()
    moved[..., 1] += objective.joint_std[1]
    assert objective._proprio_losses(latents, moved)["proprio"].item() == pytest.approx(2.0, abs=1e-3)
    moved[..., 1], moved[..., 2] = joints[..., 1], joints[..., 2] + 5.0
    assert objective._proprio_losses(latents, moved)["proprio"].item() < 1e-6
    # On images the gradient reaches the encoder and never the predictor (a later stage trains it).
    losses = objective(_batch(B=4, W=1))
    assert set(losses) == {"proprio", "loss"}
    losses["loss"].backward()
    assert model.encoder.patch_embed.proj.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.predictor.parameters())
    with pytest.raises(ValueError, match="proprio_joint_weights has 2 values; expected one per joint"):
        JEPAObjective(WorldModel(tiny_config()), TrainConfig(mode="proprio", proprio_joint_weights=(1.0, 1.0)))
    with pytest.raises(ValueError, match="proprio_joint_weights=\\[1.0, -1.0\\]: expected finite values >= 0"):
        TrainConfig(mode="proprio", proprio_joint_weights=(1.0, -1.0))


def test_the_channels_readout_is_the_latents_first_features_and_joins_the_joint_objective():
    torch.manual_seed(0)
    config = TrainConfig(context_steps=1, rollout_steps=2, proprio_readout="channels", proprio_weight=0.5,
                         proprio_joint_weights=(1.0, 2.0, 1.0))
    objective = JEPAObjective(WorldModel(tiny_config()), config)
    assert objective.proprio is None  # no readout parameters: the features themselves
    joints = torch.randn(64, 1, 3) * torch.tensor([0.2, 1.0, 3.0]) - 0.5
    objective.set_joint_statistics(joints.flatten(0, 1))
    latents = torch.randn(64, 1, 4, 32)
    latents[..., 0, :3] = (joints - objective.joint_mean) / objective.joint_std  # token 0, channels 0..2
    assert objective._proprio_losses(latents, joints)["proprio"].item() < 1e-10
    latents[..., 1, :3] += 1.0  # other features are free
    assert objective._proprio_losses(latents, joints)["proprio"].item() < 1e-10
    latents[..., 0, 1] += 1.0  # one spread off on the second joint costs its weight
    assert objective._proprio_losses(latents, joints)["proprio"].item() == pytest.approx(2.0, abs=1e-4)
    # In mode joint it is a weighted term of the total, and its gradient reaches the encoder.
    losses = objective(_batch())
    assert set(losses) == {"teacher_forcing", "rollout", "sigreg", "proprio", "loss"}
    total = losses["teacher_forcing"] + losses["rollout"] + 0.05 * losses["sigreg"] + 0.5 * losses["proprio"]
    assert losses["loss"].item() == pytest.approx(total.item(), rel=1e-5)
    losses["proprio"].backward()
    assert objective.model.encoder.patch_embed.proj.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in objective.model.predictor.parameters())
    # Without the weight nothing reads the joints; a readout needs a feature per joint.
    assert "proprio" not in JEPAObjective(WorldModel(tiny_config()), TrainConfig(context_steps=1, rollout_steps=2))(_batch())
    few = dataclasses.replace(tiny_config(), joint_names=tuple(f"j{i}" for i in range(200)))
    with pytest.raises(ValueError, match="needs a feature per joint: 200 joints, 128 latent features"):
        JEPAObjective(WorldModel(few), TrainConfig(mode="proprio", proprio_readout="channels"))
    with pytest.raises(ValueError, match="proprio_readout='pixels': expected 'linear' or 'channels'"):
        TrainConfig(proprio_readout="pixels")
    with pytest.raises(ValueError, match="proprio_weight=nan: expected a finite value >= 0"):
        TrainConfig(proprio_weight=float("nan"))


def test_roughness_is_zero_on_cubic_paths_and_a_term_of_the_joint_objective():
    t = torch.arange(7.0)[None, :, None, None]
    smooth = torch.cat([t**3 / 50, t**2 / 10, -t], dim=-1).expand(3, 7, 4, 3)  # [B, L, N, D], cubic in time
    assert roughness(smooth).item() < 1e-6
    jittered = smooth.clone()
    jittered[:, 3] += 1.0  # one frame off the path by about a step
    assert roughness(jittered).item() > 0.2
    assert roughness(torch.randn(64, 9, 4, 8)).item() == pytest.approx(0.95, abs=0.1)  # white noise
    torch.manual_seed(0)
    config = TrainConfig(context_steps=1, rollout_steps=4, smoothness_weight=2.0)
    losses = JEPAObjective(WorldModel(tiny_config()), config)(_batch(W=5))
    total = losses["teacher_forcing"] + losses["rollout"] + 0.05 * losses["sigreg"] + 2.0 * losses["smoothness"]
    assert losses["loss"].item() == pytest.approx(total.item(), rel=1e-5)
    with pytest.raises(ValueError, match="smoothness_weight=1.0 needs samples of at least 5 frames, not 4"):
        TrainConfig(context_steps=1, rollout_steps=3, smoothness_weight=1.0)
    with pytest.raises(ValueError, match="smoothness_weight=1.0 applies to train.mode 'joint', not 'frozen_encoder'"):
        TrainConfig(mode="frozen_encoder", smoothness_weight=1.0)
    with pytest.raises(ValueError, match="proprio_weight=0.5 applies to train.mode 'joint', not 'proprio'"):
        TrainConfig(mode="proprio", proprio_weight=0.5)


def test_inverse_dynamics_head_trains_the_encoder_and_recovers_joint_motion():
    torch.manual_seed(0)
    config = TrainConfig(context_steps=1, rollout_steps=2, sigreg_weight=0.0, inverse_dynamics_weight=1.0)
    objective = JEPAObjective(WorldModel(tiny_config()), config)
    losses = objective(_batch())
    assert set(losses) == {"teacher_forcing", "rollout", "inverse_dynamics", "loss"}
    only_inverse = objective(_batch())["inverse_dynamics"]
    only_inverse.backward()
    assert objective.model.encoder.patch_embed.proj.weight.grad.abs().sum() > 0, "no gradient reached the encoder"
    # a fixed batch: the head plus encoder learn to recover its joint motion (loss falls well below its start)
    batch = _batch()
    optimizer = torch.optim.Adam(objective.parameters(), lr=3e-3)
    first = None
    for _ in range(60):
        optimizer.zero_grad()
        loss = objective(batch)["inverse_dynamics"]
        first = loss.item() if first is None else first
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.5 * first, f"inverse dynamics loss {first:.3f} -> {loss.item():.3f}"


@pytest.mark.parametrize("context", [1, 2])
def test_a_sequence_is_rolled_out_from_every_window_inside_it(context):
    """A sample of L steps gives the rollout loss of its L - W + 1 windows given as samples of their own."""
    torch.manual_seed(0)
    model = WorldModel(tiny_config())
    one_window = TrainConfig(context_steps=context, rollout_steps=2, sigreg_weight=0.0)
    sequence = JEPAObjective(model, dataclasses.replace(one_window, sequence_steps=6)).eval()  # per-frame latents
    batch = _batch(B=2, W=6)
    W = one_window.window
    starts = range(6 - W + 1)
    split = Batch(*(torch.cat([x[:, s : s + W] for s in starts]) for x in (batch.images, batch.joint_positions, batch.actions)))
    windows = JEPAObjective(model, one_window).eval()
    torch.testing.assert_close(sequence(batch)["rollout"], windows(split)["rollout"])
    # Teacher forcing covers every step of the sequence: its first window's steps see the same past.
    first = Batch(batch.images[:, :W], batch.joint_positions[:, :W], batch.actions[:, :W])
    assert not torch.allclose(sequence(batch)["teacher_forcing"], windows(first)["teacher_forcing"])
    with pytest.raises(AssertionError, match="sample of 6 steps"):
        windows(batch)
    with pytest.raises(ValueError, match=r"train.sequence_steps=4: expected 0 or >= context_steps \+ rollout_steps = 5"):
        TrainConfig(context_steps=1, rollout_steps=4, sequence_steps=4)


def test_inverse_dynamics_pairs_in_a_sequence_are_at_most_a_window_apart():
    torch.manual_seed(0)
    config = TrainConfig(context_steps=1, rollout_steps=2, sequence_steps=5, sigreg_weight=0.0,
                         inverse_dynamics_weight=1.0)
    objective = JEPAObjective(WorldModel(tiny_config()), config)
    latents, joints, scale = torch.randn(2, 5, 4, 32), torch.randn(2, 5, 3), objective.model.config.action_scale
    errors = []
    for t in range(5):
        for later in range(t + 1, min(t + 3, 5)):  # a window is 3 steps: gaps of 1 and 2
            pair = torch.cat([latents[:, t].flatten(1), latents[:, later].flatten(1)], dim=-1)
            errors.append((objective.inverse_dynamics(pair) - (joints[:, later] - joints[:, t]) / scale).abs())
    assert len(errors) == 4 + 3
    torch.testing.assert_close(objective._inverse_dynamics_loss(latents, joints), torch.stack(errors).mean())


def test_longer_context_uses_the_cache_path():
    config = TrainConfig(context_steps=2, rollout_steps=2)
    objective = JEPAObjective(WorldModel(tiny_config()), config)
    assert torch.isfinite(objective(_batch(W=4))["loss"])


def test_ema_target_moves_slowly():
    model = WorldModel(tiny_config())
    objective = JEPAObjective(model, TrainConfig(context_steps=1, rollout_steps=2, ema_momentum=0.9))
    before = objective.target_encoder.norm.bias.clone()
    with torch.no_grad():
        model.encoder.norm.bias.add_(1.0)
    objective.update_target()
    assert torch.allclose(objective.target_encoder.norm.bias, before + 0.1, atol=1e-6)


def test_frozen_encoder_fixes_the_latent_and_trains_the_predictor_alone():
    model = WorldModel(tiny_config(latent_pooling="linear"))
    with torch.no_grad():
        model.latent_norm.running_mean.normal_()  # as calibrated statistics would be
    stats = model.latent_norm.running_mean.clone()
    frozen = JEPAObjective(model, TrainConfig(mode="frozen_encoder", context_steps=1, rollout_steps=2)).train()
    assert not model.latent_norm.training  # standardised with its statistics, not the batch's
    batch = _batch()
    losses = frozen(batch)
    assert "sigreg" not in losses and "inverse_dynamics" not in losses
    losses["loss"].backward()
    assert all(p.grad is None for p in [*model.encoder.parameters(), *model.latent_pool.parameters()])
    assert model.predictor.predictor_proj.weight.grad is not None
    assert torch.equal(model.latent_norm.running_mean, stats)

    # The same windows given as latents encoded beforehand (what the trainer caches) give the same loss.
    with torch.no_grad():
        latents = model.embed(batch.images.flatten(0, 1)).unflatten(0, batch.images.shape[:2])
    cached = frozen(Batch(None, batch.joint_positions, batch.actions, latents=latents))
    assert torch.allclose(cached["loss"], losses["loss"], atol=1e-6)
    # An encoder that trains cannot take latents encoded before.
    joint = JEPAObjective(WorldModel(tiny_config()), TrainConfig(context_steps=1, rollout_steps=2))
    with pytest.raises(ValueError, match="frozen_encoder"):
        joint(Batch(None, batch.joint_positions, batch.actions, latents=latents))


def test_probe_and_collapse_metrics():
    from jepa_wm.evaluation.quality import latent_statistics, probe_scores

    g = torch.Generator().manual_seed(0)
    joints = torch.randn(400, 3, generator=g)
    mixing = torch.randn(3, 2, 8, generator=g)
    latents = torch.einsum("mj,jnd->mnd", joints, mixing)  # [M, N=2, D=8], linear in the joints
    scores = probe_scores(latents[:300], joints[:300].numpy(), latents[300:], joints[300:].numpy(), ridge=1e-6)
    assert scores.r2.shape == (3,) and scores.r2.min() > 0.99
    assert scores.mae.max() < 0.01 < 0.5 < scores.baseline_mae.min()  # R^2 and MAE come from one fit
    noise = torch.randn(400, 2, 8, generator=g)
    assert probe_scores(noise[:300], joints[:300].numpy(), noise[300:], joints[300:].numpy()).r2.mean() < 0.2
    # Many features, few frames, one target the latent does not hold: a fixed small ridge over-fits
    # it far below 0; the cross-validated ridge keeps it near 0 and still reads the held targets.
    wide = torch.cat([latents.flatten(1)[:, :8], torch.randn(400, 120, generator=g)], dim=1)
    unseen = np.random.default_rng(0).normal(size=(400, 1))
    targets = np.concatenate([joints.numpy(), unseen], axis=1)
    fixed = probe_scores(wide[:200], targets[:200], wide[200:], targets[200:], ridge=1e-4).r2
    chosen = probe_scores(wide[:200], targets[:200], wide[200:], targets[200:]).r2
    assert fixed[3] < -0.3 and -0.1 < chosen[3] < 0.1
    assert chosen[:3].min() > 0.98
    stats = latent_statistics(latents)
    assert 2.5 < stats["latent_effective_rank"] < 3.5  # three joints span the latents
    assert latent_statistics(torch.zeros(10, 2, 8))["latent_std_min"] == 0.0


def test_horizon_errors_of_a_model_against_copy_last():
    from jepa_wm.evaluation.quality import horizon_errors

    model = WorldModel(tiny_config()).eval()
    T, J = 12, 3
    latents = [torch.randn(T, 4, 32)]
    result = horizon_errors(model, latents, [torch.zeros(T, J).numpy()], [torch.zeros(T, J).numpy()], horizons=(1, 4))
    assert set(result) == {f"h{h}_{k}" for h in (1, 4) for k in ("error", "copy_error", "error_ratio")}
    assert result["h1_copy_error"] > 0 and abs(result["h4_error_ratio"] - result["h4_error"] / result["h4_copy_error"]) < 1e-9


# ---- two processes optimise the one-process objective --------------------------------------

GATHER_CONFIG = TrainConfig(context_steps=1, rollout_steps=2, sigreg_weight=0.5, inverse_dynamics_weight=1.0,
                            inverse_dynamics_pairs="batch")


def _objective_and_batch() -> tuple[JEPAObjective, Batch]:
    torch.manual_seed(0)
    return JEPAObjective(WorldModel(tiny_config()), GATHER_CONFIG), _batch(B=4)


def _half_batch_worker(rank: int, world: int, store: str, out: str) -> None:
    """One of two gloo processes: DDP over this rank's half of the batch; saves its losses and grads."""
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    objective, batch = _objective_and_batch()
    half = slice(rank * 2, rank * 2 + 2)
    wrapped = torch.nn.parallel.DistributedDataParallel(objective)
    losses = wrapped(Batch(batch.images[half], batch.joint_positions[half], batch.actions[half]))
    losses["loss"].backward()
    grads = {name: p.grad for name, p in objective.named_parameters() if p.grad is not None}
    torch.save({"losses": {k: v.detach() for k, v in losses.items()}, "grads": grads}, f"{out}.{rank}")
    dist.destroy_process_group()


def test_two_processes_optimise_the_objective_of_one_process_with_the_whole_batch(tmp_path):
    """Latent standardisation, SIGReg and the batch pairs see all processes' windows (gathered with gradients)."""
    objective, batch = _objective_and_batch()
    whole = objective(batch)
    whole["loss"].backward()
    torch.multiprocessing.spawn(_half_batch_worker, args=(2, str(tmp_path / "store"), str(tmp_path / "out")),
                                nprocs=2)
    ranks = [torch.load(tmp_path / f"out.{r}", weights_only=True) for r in range(2)]
    for key in ("sigreg", "inverse_dynamics"):  # whole-batch terms: the same in every process
        for rank in ranks:
            torch.testing.assert_close(rank["losses"][key], whole[key].detach())
    # per-window terms: the mean over processes is the whole batch's
    for key in ("teacher_forcing", "rollout", "loss"):
        torch.testing.assert_close((ranks[0]["losses"][key] + ranks[1]["losses"][key]) / 2, whole[key].detach())
    for name, p in objective.named_parameters():
        if p.grad is None:
            continue
        for rank in ranks:  # DDP leaves the same averaged gradient in both processes
            torch.testing.assert_close(rank["grads"][name], p.grad, rtol=1e-4, atol=1e-6, msg=name)
