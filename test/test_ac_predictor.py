"""V-JEPA 2-AC's predictor (predictor.variant vjepa2_ac): positions, mask, outputs and cache as published."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from jepa_wm.config import ConfigError, EncoderConfig, PredictorConfig, WorldModelConfig
from jepa_wm.models.ac_predictor import VJEPA2ACPredictor, step_positions
from jepa_wm.models.world_model import WorldModel


def predictor(rows: int = 2, cols: int = 3, head_dim: int = 14, **config) -> VJEPA2ACPredictor:
    torch.manual_seed(0)
    settings = {"embed_dim": 2 * head_dim, "depth": 2, "num_heads": 2, "latent_grid": rows, "variant": "vjepa2_ac",
                **config}
    return VJEPA2ACPredictor(PredictorConfig(**settings), latent_dim=10, action_dim=7, grid=(rows, cols)).eval()


def test_positions_put_conditions_at_the_step_and_frame_tokens_on_the_grid():
    positions = step_positions(first_step=2, steps=2, rows=2, cols=3)
    assert positions.shape == (3, 2 * (2 + 6))
    step = [2] * 8 + [3] * 8
    rows = ([0, 0] + [0, 0, 0, 1, 1, 1]) * 2
    columns = ([0, 0] + [c * 2 / 3 for c in (0, 1, 2, 0, 1, 2)]) * 2  # columns scaled by grid_height / W
    assert positions[0].tolist() == step
    assert positions[1].tolist() == rows
    assert torch.allclose(positions[2], torch.tensor(columns))


def rotate(x: torch.Tensor, position: float) -> torch.Tensor:
    """The published rotation of one segment [..., n]: frequencies repeated as [f, f], pairs (2i, 2i+1)."""
    n = x.shape[-1]
    omega = 1.0 / 10000 ** (torch.arange(n // 2, dtype=x.dtype) / (n / 2))
    sin, cos = (position * omega).sin().repeat(2), (position * omega).cos().repeat(2)
    pairs = x.unflatten(-1, (-1, 2))
    partner = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
    return x * cos + partner * sin


def published_forward(model: VJEPA2ACPredictor, z, states, actions) -> torch.Tensor:
    """V-JEPA 2-AC's predictor written out token by token from the published definition."""
    B, T, N, D = z.shape
    rows, cols = model.rows, model.cols
    x = torch.cat([model.action_encoder(actions)[:, :, None], model.state_encoder(states)[:, :, None],
                   model.predictor_embed(z)], dim=2).flatten(1, 2)  # [B, T*(2+N), E]
    K = 2 + N
    where = [(t, k) for t in range(T) for k in range(K)]
    allowed = torch.tensor([[t2 <= t1 for (t2, _) in where] for (t1, _) in where])  # block-causal over steps
    for block in model.predictor_blocks:
        attn = block.attn
        heads, hd, s = attn.num_heads, attn.head_dim, attn.rope_segment
        q, k, v = block.attn.qkv(block.norm1(x)).unflatten(-1, (3, heads, hd)).permute(2, 0, 3, 1, 4)
        turned = []
        for tensor in (q, k):
            out = tensor.clone()
            for i, (t, token) in enumerate(where):
                out[..., i, 0:s] = rotate(tensor[..., i, 0:s], t)  # every token turns with its step
                if token >= 2:  # frame tokens also turn with their row and (scaled) column
                    row, col = divmod(token - 2, cols)
                    out[..., i, s:2 * s] = rotate(tensor[..., i, s:2 * s], row * rows / rows)
                    out[..., i, 2 * s:3 * s] = rotate(tensor[..., i, 2 * s:3 * s], col * rows / cols)
            turned.append(out)
        scores = (turned[0] @ turned[1].transpose(-1, -2)) / hd**0.5
        weights = scores.masked_fill(~allowed, float("-inf")).softmax(-1)
        x = x + attn.proj((weights @ v).transpose(1, 2).flatten(2))
        x = x + block.mlp(block.norm2(x))
    frames = x.view(B, T, K, -1)[:, :, 2:]
    return F.layer_norm(model.predictor_proj(model.predictor_norm(frames)), (D,))


def test_outputs_are_the_published_definitions():
    model = predictor()
    z, states, actions = torch.randn(2, 3, 6, 10), torch.randn(2, 3, 7), torch.randn(2, 3, 7)
    with torch.no_grad():
        ours, _ = model(z, states, actions)
        published = published_forward(model, z, states, actions)
    assert ours.shape == (2, 3, 6, 10)
    assert (ours - published).abs().max() < 1e-5
    # not a residual on z, and normalised per token as V-JEPA 2-AC's targets are
    assert torch.allclose(ours.mean(-1), torch.zeros(2, 3, 6), atol=1e-5)
    assert torch.allclose(ours.var(-1, unbiased=False), torch.ones(2, 3, 6), atol=1e-2)  # eps 1e-5


def test_channels_past_the_three_rotary_segments_do_not_turn():
    model = predictor(head_dim=16)  # segments of 4 channels: 12 turn, 4 stay
    assert model.predictor_blocks[0].attn.rope_segment == 4
    z, states, actions = torch.randn(1, 2, 6, 10), torch.randn(1, 2, 7), torch.randn(1, 2, 7)
    with torch.no_grad():
        ours, _ = model(z, states, actions)
        published = published_forward(model, z, states, actions)
    assert (ours - published).abs().max() < 1e-5


def test_a_step_depends_on_its_own_action_and_never_on_later_steps():
    model = predictor()
    z, states, actions = torch.randn(1, 3, 6, 10), torch.randn(1, 3, 7), torch.randn(1, 3, 7)
    with torch.no_grad():
        base, _ = model(z, states, actions)
        later = actions.clone()
        later[:, 2] += 1.0
        changed, _ = model(z, states, later)
    assert torch.equal(base[:, :2], changed[:, :2])
    assert not torch.allclose(base[:, 2], changed[:, 2])


def test_cached_steps_equal_the_whole_sequence_at_once():
    model = predictor()
    z, states, actions = torch.randn(2, 4, 6, 10), torch.randn(2, 4, 7), torch.randn(2, 4, 7)
    with torch.no_grad():
        whole, _ = model(z, states, actions)
        _, cache = model(z[:, :2], states[:, :2], actions[:, :2])
        step2, cache = model(z[:, 2:3], states[:, 2:3], actions[:, 2:3], cache)
        step3, _ = model(z[:, 3:4], states[:, 3:4], actions[:, 3:4], cache)
    assert torch.allclose(torch.cat([step2, step3], dim=1), whole[:, 2:], atol=1e-5)


def ac_world_model(**encoder) -> WorldModel:
    config = WorldModelConfig(
        encoder=EncoderConfig(**{"image_size": 32, "patch_size": 8, "embed_dim": 24, "depth": 1, "num_heads": 2,
                                 "use_rope": True, "tubelet_size": 2, **encoder}),
        predictor=PredictorConfig(embed_dim=24, depth=1, num_heads=2, latent_grid=4, variant="vjepa2_ac"),
        joint_names=("a", "b", "c"),
    )
    torch.manual_seed(0)
    return WorldModel(config).eval()


def test_the_world_model_layer_normalises_every_patch_token_and_plans_through_the_cache():
    model = ac_world_model()
    frames = torch.randint(0, 256, (2, 32, 32, 3), dtype=torch.uint8)
    latents = model.encode(frames)
    assert latents.shape == (2, 16, 24) and model.latent_norm is None
    tokens = model.encoder(model.encoder.preprocess(frames))
    assert torch.allclose(latents, F.layer_norm(tokens, (24,)))
    joints = torch.zeros(2, 3)
    actions = torch.randn(5, 3, 3)
    imagined = model.rollout(latents[None], joints[None], actions)  # two context steps, then three imagined
    assert imagined.shape == (5, 3, 16, 24)
    fn = model.rollout_fn(latents, joints)
    assert torch.allclose(fn(actions), imagined, atol=1e-5)


def test_a_clip_of_distinct_frames_is_encoded_frame_by_tubelet_with_time_positions():
    model = ac_world_model()
    clip = torch.randint(0, 256, (1, 4, 32, 32, 3), dtype=torch.uint8)
    tokens = model.encoder(model.encoder.preprocess(clip))
    assert tokens.shape == (1, 2 * 16, 24)  # two tubelets of two frames
    still = clip[:, :1].expand(-1, 2, -1, -1, -1)  # one frame repeated over the tubelet = that image
    assert torch.allclose(model.encoder(model.encoder.preprocess(still)),
                          model.encoder(model.encoder.preprocess(clip[:, 0])), atol=1e-5)
    with torch.no_grad():  # sharp attention, so that relative time positions show
        model.encoder.blocks[0].attn.qkv.weight.mul_(20)
    tokens = model.encoder(model.encoder.preprocess(clip))
    swapped = torch.cat([clip[:, 2:], clip[:, :2]], dim=1)  # time positions: order matters
    assert not torch.allclose(model.encoder(model.encoder.preprocess(swapped))[:, :16], tokens[:, 16:], atol=1e-3)
    with pytest.raises(ValueError, match="a clip of 3 frames: expected a multiple of the tubelet"):
        model.encoder(model.encoder.preprocess(clip[:, :3]))


def test_an_absolute_position_encoder_refuses_clips_by_name():
    model = ac_world_model(use_rope=False, tubelet_size=1)
    clip = torch.randint(0, 256, (1, 2, 32, 32, 3), dtype=torch.uint8)
    with pytest.raises(ValueError, match="holds one frame's positions"):
        model.encoder(model.encoder.preprocess(clip))


def test_the_published_predictor_needs_every_patch_token():
    config = ac_world_model().config
    with pytest.raises(ConfigError, match="latent_grid=2 must equal the encoder's patch grid 4"):
        dataclasses.replace(config, predictor=dataclasses.replace(config.predictor, latent_grid=2))
