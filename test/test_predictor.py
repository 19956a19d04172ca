"""Predictor: shapes, the block-causal mask, cached == uncached rollouts, rollout API."""

import pytest
import torch

from jepa_wm.models.predictor import block_causal_mask
from jepa_wm.models.world_model import WorldModel
from wm_fixtures import tiny_config

torch.manual_seed(0)


def _model(**predictor) -> WorldModel:
    return WorldModel(tiny_config(**predictor)).eval()


def test_block_causal_mask_layout():
    mask = block_causal_mask(num_steps=3, tokens_per_step=2, cached_tokens=1)
    assert mask.shape == (6, 7)
    assert mask[:, 0].all()  # cached steps are visible to everyone
    assert mask[0, 1:3].all() and not mask[0, 3:].any()  # step 0 sees itself only
    assert mask[5, 1:].all()  # the last step sees everything


def test_future_steps_do_not_change_past_outputs():
    model = _model()
    B, T, N, D, J = 2, 5, 4, 32, 3
    z, q, a = torch.randn(B, T, N, D), torch.randn(B, T, J), torch.randn(B, T, J)
    with torch.no_grad():
        out, _ = model.predictor(z, q, a)
        z2, q2, a2 = z.clone(), q.clone(), a.clone()
        z2[:, 3:] += 5.0
        q2[:, 3:] -= 1.0
        a2[:, 3:] = -a2[:, 3:]
        out2, _ = model.predictor(z2, q2, a2)
    assert out.shape == (B, T, N, D)
    assert torch.allclose(out[:, :3], out2[:, :3], atol=1e-5)
    assert not torch.allclose(out[:, 3:], out2[:, 3:], atol=1e-3)


def test_cached_rollout_equals_uncached_recomputation():
    model = _model()
    S, H, N, D, J = 4, 5, 4, 32, 3
    z0, q0 = torch.randn(1, N, D), torch.randn(1, J)
    actions = torch.rand(S, H, J) * 2 - 1
    with torch.no_grad():
        cached = model.imagine(z0, q0, actions, None)  # one new step per call, KV cache
        zs, qs = [z0.expand(S, N, D)], [q0.expand(S, J)]
        for h in range(H):  # recompute the whole sequence every step, no cache
            out, _ = model.predictor(torch.stack(zs, 1), torch.stack(qs, 1), actions[:, : h + 1])
            zs.append(out[:, -1])
            qs.append(qs[-1] + actions[:, h] * model.config.action_scale)
    assert cached.shape == (S, H, N, D)
    assert torch.allclose(cached, torch.stack(zs[1:], 1), atol=1e-5)


def test_rollout_fn_matches_rollout_with_longer_context():
    model = _model()
    N, D, J = 4, 32, 3
    latents, joints = torch.randn(1, 3, N, D), torch.randn(1, 3, J)
    actions = torch.rand(6, 4, J) * 2 - 1
    direct = model.rollout(latents, joints, actions)
    rollout = model.rollout_fn(latents[0], joints[0])
    assert torch.allclose(rollout(actions), direct, atol=1e-5)
    # The cached context is shared: a batch of one equals the same row of a larger batch.
    assert torch.allclose(rollout(actions[2:3]), direct[2:3], atol=1e-5)
    single = model.rollout_fn(latents[0, -1], joints[0, -1])(actions)
    assert single.shape == (6, 4, N, D)


def test_rollout_rejects_wrong_shapes_naming_them():
    model = _model()
    latent, joints = torch.randn(4, 32), torch.randn(3)
    with pytest.raises(ValueError, match=r"actions \(2, 4, 5\): expected \[S, H, 3\]"):
        model.rollout_fn(latent, joints)(torch.zeros(2, 4, 5))
    with pytest.raises(ValueError, match=r"joint_positions \(1, 1, 6\): expected \[B, T0, 3\]"):
        model.rollout_fn(latent, torch.zeros(6))
    with pytest.raises(ValueError, match=r"latents \(1, 1, 4, 16\)"):
        model.rollout_fn(torch.zeros(4, 16), joints)


def test_traced_rollouts_equal_eager_ones_per_shape_and_dtype():
    from jepa_wm.models.rollout_graph import TracedImagine

    model = _model()
    traced = TracedImagine(model)
    N, D, J = 4, 32, 3
    latent, joints = torch.randn(N, D), torch.randn(J)
    with torch.inference_mode():  # as the controller calls it: inference tensors in, traced outside
        for shape in ((8, 4), (8, 4), (1, 1), (5, 2)):  # a repeated shape reuses its graph
            actions = torch.rand(shape[0], shape[1], J) * 2 - 1
            eager = model.rollout_fn(latent, joints)(actions)
            assert torch.allclose(model.rollout_fn(latent, joints, traced)(actions), eager, atol=1e-5)
        assert len(traced._graphs) == 3
        # A different action changes the traced output: the graph is not a constant of its example.
        first, other = torch.zeros(2, 4, J), torch.ones(2, 4, J)
        rollout = model.rollout_fn(latent, joints, traced)
        assert not torch.allclose(rollout(first), rollout(other), atol=1e-3)
        assert len(traced._graphs) == 4
        # With earlier context (a cache) it runs the eager model.
        context = model.rollout_fn(torch.randn(3, N, D), torch.randn(3, J), traced)(actions)
        assert context.shape == (5, 2, N, D) and len(traced._graphs) == 4
