"""Encoder: tiny-shape tests, preprocessing errors, RoPE, V-JEPA 2 naming."""

import cv2
import numpy as np
import pytest
import torch

from jepa_wm.config import ConfigError, EncoderConfig
from jepa_wm.models.encoder import IMAGE_MEAN, IMAGE_STD, ConvPatchEmbed, VisionEncoder, pool_tokens
from jepa_wm.models.layers import Attention
from jepa_wm.models.world_model import WorldModel
from wm_fixtures import tiny_config


def test_encoder_tokens_and_latent_shapes():
    model = WorldModel(tiny_config()).eval()
    frames = torch.randint(0, 256, (3, 32, 32, 3), dtype=torch.uint8)
    tokens = model.encoder(model.encoder.preprocess(frames))
    assert tokens.shape == (3, 16, 32)  # 4x4 patches of width 32
    latents = model.encode(frames)
    assert latents.shape == (3, 4, 32)  # pooled to 2x2
    assert torch.allclose(latents, model.standardise(pool_tokens(tokens, 2)), atol=1e-5)


def test_conv_patch_embed_gives_the_same_token_grid():
    linear = VisionEncoder(EncoderConfig(image_size=64, patch_size=16, embed_dim=32, depth=1, num_heads=2))
    conv = VisionEncoder(EncoderConfig(image_size=64, patch_size=16, embed_dim=32, depth=1, num_heads=2,
                                       patch_embed="conv"))
    images = torch.randn(2, 3, 64, 64)
    assert conv(images).shape == linear(images).shape == (2, 16, 32)
    widths = [m.out_channels for m in conv.patch_embed.modules() if isinstance(m, torch.nn.Conv2d)]
    assert widths == [4, 8, 16, 32]  # three 3x3 stride-2 convolutions, then the 2x2 proj to embed_dim
    assert conv.state_dict()["patch_embed.proj.weight"].shape == (32, 16, 2, 2)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"patch_size": 12, "image_size": 48}, "patch_size=12: the conv patch_embed needs a power of two"),
        ({"embed_dim": 36, "num_heads": 2}, "embed_dim=36: the conv patch_embed halves it 3 times"),
        ({"patch_embed": "cnn"}, "patch_embed='cnn': expected 'linear' or 'conv'"),
    ],
)
def test_conv_patch_embed_settings_are_checked(overrides, message):
    settings = {"image_size": 64, "patch_size": 16, "embed_dim": 32, "num_heads": 2, "patch_embed": "conv"}
    with pytest.raises(ConfigError, match=message):
        EncoderConfig(**{**settings, **overrides})


def test_preprocess_resizes_and_rejects_bad_frames():
    encoder = VisionEncoder(EncoderConfig(image_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2))
    assert encoder.preprocess(torch.zeros(2, 48, 64, 3, dtype=torch.uint8)).shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match=r"expected uint8 \[B, H, W, 3\].*float32"):
        encoder.preprocess(torch.zeros(2, 32, 32, 3))
    with pytest.raises(ValueError, match=r"\(32, 32, 4\)"):
        encoder.preprocess(torch.zeros(32, 32, 4, dtype=torch.uint8))


def test_input_blur_is_opencvs_gaussian_blur_and_zero_leaves_frames_alone():
    frames = torch.randint(0, 256, (2, 32, 32, 3), dtype=torch.uint8)
    settings = {"image_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 1, "num_heads": 2}
    sharp = VisionEncoder(EncoderConfig(**settings)).preprocess(frames)
    blurred = VisionEncoder(EncoderConfig(**settings, input_blur=1.0)).preprocess(frames)
    std = torch.tensor(IMAGE_STD).view(1, 3, 1, 1)
    mean = torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1)
    assert torch.allclose(sharp, (frames.permute(0, 3, 1, 2) / 255.0 - mean) / std, atol=1e-6)
    for image, out in zip(frames.numpy(), blurred):
        expected = cv2.GaussianBlur(image.astype(np.float32) / 255.0, (7, 7), 1.0, borderType=cv2.BORDER_REFLECT_101)
        got = (out * std[0] + mean[0]).permute(1, 2, 0).numpy()
        assert np.abs(got - expected).max() < 1e-5
    with pytest.raises(ConfigError, match="encoder.input_blur=-0.5: expected 0..4 pixels"):
        EncoderConfig(**settings, input_blur=-0.5)


def test_parameter_names_follow_vjepa2():
    encoder = VisionEncoder(EncoderConfig(image_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3))
    shapes = {k: tuple(v.shape) for k, v in encoder.state_dict().items()}
    assert shapes["patch_embed.proj.weight"] == (48, 3, 8, 8)
    assert shapes["pos_embed"] == (1, 16, 48)
    assert shapes["blocks.1.attn.qkv.weight"] == (144, 48)
    assert shapes["blocks.1.attn.proj.weight"] == (48, 48)
    assert shapes["blocks.0.mlp.fc1.weight"] == (192, 48)
    assert shapes["blocks.0.mlp.fc2.bias"] == (48,)
    assert {"blocks.0.norm1.weight", "blocks.0.norm2.bias", "norm.weight", "norm.bias"} <= set(shapes)


def test_rope_encoder_has_no_position_table_and_sees_positions():
    config = EncoderConfig(image_size=32, patch_size=8, embed_dim=48, depth=1, num_heads=2, use_rope=True)
    assert "pos_embed" not in VisionEncoder(config).state_dict()
    torch.manual_seed(0)
    attention = Attention(48, 2, use_rope=True, grid_size=4)
    plain = Attention(48, 2)
    plain.load_state_dict(attention.state_dict())
    x = torch.randn(1, 16, 48)
    order = torch.randperm(16)
    with torch.no_grad():
        # Without positions attention is permutation-equivariant; rotary positions break that.
        assert torch.allclose(plain(x[:, order])[0], plain(x)[0][:, order], atol=1e-5)
        assert not torch.allclose(attention(x[:, order])[0], attention(x)[0][:, order], atol=1e-3)


def test_linear_pooling_starts_as_mean_pooling():
    model = WorldModel(tiny_config(latent_pooling="linear")).eval()
    tokens = torch.randn(2, 16, 32)
    assert torch.allclose(model.pool(tokens), pool_tokens(tokens, 2), atol=1e-5)
    assert model.state_dict()["latent_pool.proj.weight"].shape == (32, 4 * 32)


def test_calibrate_standardises_every_latent_feature():
    model = WorldModel(tiny_config()).eval()
    frames = torch.randint(0, 256, (64, 32, 32, 3), dtype=torch.uint8)
    model.calibrate(model.encoder.preprocess(frames))
    latents = model.encode(frames).flatten(1)  # [64, N*D]
    assert torch.allclose(latents.mean(0), torch.zeros(latents.shape[1]), atol=1e-3)
    assert torch.allclose(latents.std(0), torch.ones(latents.shape[1]), atol=1e-2)


def test_the_conv_stem_stays_channels_last_and_computes_what_channels_first_does():
    torch.manual_seed(0)
    stem = ConvPatchEmbed(patch_size=16, in_channels=3, embed_dim=32)
    contiguous = {k: v.contiguous() for k, v in stem.state_dict().items()}  # as a safetensors file holds them
    stem.load_state_dict(contiguous)
    kernels = [p for p in stem.parameters() if p.ndim == 4]
    assert kernels and all(p.is_contiguous(memory_format=torch.channels_last) for p in kernels)
    images = torch.randn(2, 3, 64, 64)
    tokens = stem(images)
    assert tokens.shape == (2, 16, 32) and tokens.is_contiguous()
    reference = ConvPatchEmbed(patch_size=16, in_channels=3, embed_dim=32).to(memory_format=torch.contiguous_format)
    reference.load_state_dict(contiguous)
    expected = reference.proj(reference.stem(images)).flatten(2).transpose(1, 2)  # channels-first all through
    torch.testing.assert_close(tokens, expected, atol=1e-5, rtol=1e-4)
