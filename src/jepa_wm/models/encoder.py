"""ViT image encoder whose parameter names and shapes match V-JEPA 2's VisionTransformer.

State-dict layout (image mode)::

    patch_embed.proj.weight  [D, 3, p, p]   (V-JEPA 2 video: [D, 3, tubelet, p, p], see checkpoint.py)
    patch_embed.proj.bias    [D]
    pos_embed                [1, g*g, D]    only when use_rope is False
    blocks.{i}.norm1 / attn.qkv / attn.proj / norm2 / mlp.fc1 / mlp.fc2
    norm.weight / norm.bias  [D]

so official ViT-L/H/g weights load by name (after folding the tubelet dimension). The
official RoPE encoders rotate queries and keys over (frame, row, column); here an image
is frame 0, whose rotation is the identity.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from jepa_wm.config import EncoderConfig
from jepa_wm.models.layers import Block, init_weights, rescale_residual_branches

# V-JEPA 2 normalises pixels with the ImageNet statistics.
IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """Normalised 1D Gaussian taps out to 3 sigma; [1.0] (no blur) for sigma 0."""
    radius = math.ceil(3.0 * sigma)
    taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float32) / max(sigma, 1e-6)) ** 2)
    return taps / taps.sum()


def separable_blur(images: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Blur [B, C, H, W] with ``kernel`` along rows, then columns; borders reflect."""
    C, r = images.shape[1], kernel.numel() // 2
    x = nn.functional.pad(images, (r, r, r, r), mode="reflect")
    x = nn.functional.conv2d(x, kernel.view(1, 1, 1, -1).expand(C, 1, 1, -1), groups=C)
    return nn.functional.conv2d(x, kernel.view(1, 1, -1, 1).expand(C, 1, -1, 1), groups=C)


def sincos_2d(embed_dim: int, grid_size: int) -> torch.Tensor:
    """Fixed 2D sine-cosine position table [grid*grid, embed_dim] (half rows, half columns)."""
    assert embed_dim % 4 == 0, f"sincos positions need embed_dim divisible by 4, got {embed_dim}"
    quarter = embed_dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    ids = torch.arange(grid_size * grid_size)
    tables = []
    for coordinate in (ids // grid_size, ids % grid_size):  # rows, then columns
        angles = coordinate[:, None].double() * omega[None, :]
        tables += [angles.sin(), angles.cos()]
    return torch.cat(tables, dim=1).float()


class PatchEmbed(nn.Module):
    """Non-overlapping patches to tokens with one strided convolution (``proj``)."""

    def __init__(self, patch_size: int, in_channels: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images [B, C, H, W] -> tokens [B, (H/p)*(W/p), D], row-major."""
        return self.proj(images).flatten(2).transpose(1, 2)


class ConvPatchEmbed(nn.Module):
    """Convolutional stem: 3x3 stride-2 convolutions (GroupNorm, GELU), then a 2x2 stride-2 ``proj``.

    For patch size p = 2^k there are k-1 stem convolutions whose widths double up to embed_dim / 2
    (narrow: the stem runs at full resolution on every training frame); tokens come out on the
    same (H/p) x (W/p) grid as :class:`PatchEmbed`. Weights and activations are channels-last: with
    these few channels oneDNN's convolutions run 2-3x faster than channels-first (the stem's
    forward + backward is half of the encoder's), and the tokens then come out contiguous.
    """

    def __init__(self, patch_size: int, in_channels: int, embed_dim: int) -> None:
        super().__init__()
        count = patch_size.bit_length() - 2
        widths = [in_channels] + [embed_dim // 2 ** (count - i) for i in range(count)]
        layers: list[nn.Module] = []
        for width_in, width_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Conv2d(width_in, width_out, 3, stride=2, padding=1), nn.GroupNorm(1, width_out), nn.GELU()]
        self.stem = nn.Sequential(*layers)
        self.proj = nn.Conv2d(widths[-1], embed_dim, kernel_size=2, stride=2)
        self.to(memory_format=torch.channels_last)  # kept by load_state_dict (copy_) and .to(device)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images [B, C, H, W] -> tokens [B, (H/p)*(W/p), D], row-major."""
        images = images.contiguous(memory_format=torch.channels_last)
        return self.proj(self.stem(images)).flatten(2).transpose(1, 2)


class VisionEncoder(nn.Module):
    """ViT over image patches: normalised pixels [B, 3, H, W] -> patch tokens [B, g*g, D]."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        g = config.grid_size
        embed = ConvPatchEmbed if config.patch_embed == "conv" else PatchEmbed
        self.patch_embed = embed(config.patch_size, config.in_channels, config.embed_dim)
        if config.use_rope:
            self.pos_embed = None
        else:
            # Learnable, started from the sine-cosine table V-JEPA 2 keeps fixed.
            self.pos_embed = nn.Parameter(sincos_2d(config.embed_dim, g).unsqueeze(0))
        self.blocks = nn.ModuleList(
            Block(config.embed_dim, config.num_heads, config.mlp_ratio, use_rope=config.use_rope, grid_size=g)
            for _ in range(config.depth)
        )
        self.norm = nn.LayerNorm(config.embed_dim, eps=1e-6)
        init_weights(self)
        rescale_residual_branches(self.blocks)
        self.register_buffer("pixel_mean", torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(IMAGE_STD).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("blur_kernel", gaussian_kernel(config.input_blur), persistent=False)

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 RGB frames [B, H, W, 3] -> normalised float [B, 3, S, S] at the configured size."""
        if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(
                f"frames: expected uint8 [B, H, W, 3] RGB, got {frames.dtype} {tuple(frames.shape)}"
            )
        images = frames.to(self.pixel_mean.device).permute(0, 3, 1, 2).float().div_(255.0)  # [B, 3, H, W]
        size = self.config.image_size
        if images.shape[-2:] != (size, size):
            images = nn.functional.interpolate(images, size=(size, size), mode="bilinear", antialias=True)
        if self.blur_kernel.numel() > 1:
            images = separable_blur(images, self.blur_kernel)
        return (images - self.pixel_mean) / self.pixel_std

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised images [B, 3, S, S] -> patch tokens [B, g*g, D]."""
        size = self.config.image_size
        assert images.shape[-2:] == (size, size), f"expected {size}x{size} images, got {tuple(images.shape)}"
        x = self.patch_embed(images)  # [B, g*g, D]
        if self.pos_embed is not None:
            x = x + self.pos_embed
        for block in self.blocks:
            x, _ = block(x)
        return self.norm(x)


def pool_tokens(tokens: torch.Tensor, latent_grid: int) -> torch.Tensor:
    """Average-pool a square token grid [B, g*g, D] to [B, latent_grid^2, D]."""
    B, L, D = tokens.shape
    g = math.isqrt(L)
    assert g * g == L and g % latent_grid == 0, f"{L} tokens do not pool to a {latent_grid}x{latent_grid} grid"
    if g == latent_grid:
        return tokens
    grid = tokens.transpose(1, 2).reshape(B, D, g, g)  # [B, D, g, g]
    pooled = nn.functional.avg_pool2d(grid, kernel_size=g // latent_grid)  # [B, D, n, n]
    return pooled.flatten(2).transpose(1, 2)  # [B, n*n, D]


def group_blocks(tokens: torch.Tensor, latent_grid: int) -> torch.Tensor:
    """Square token grid [B, g*g, D] -> [B, latent_grid^2, k*k*D], each row one k x k block of patches."""
    B, L, D = tokens.shape
    g = math.isqrt(L)
    assert g * g == L and g % latent_grid == 0, f"{L} tokens do not group into a {latent_grid}x{latent_grid} grid"
    n, k = latent_grid, g // latent_grid
    blocks = tokens.view(B, n, k, n, k, D).permute(0, 1, 3, 2, 4, 5)  # [B, n, n, k, k, D]
    return blocks.reshape(B, n * n, k * k * D)


class LinearPool(nn.Module):
    """Each latent token is a learned linear map of its block of patch tokens; starts as their mean."""

    def __init__(self, embed_dim: int, grid_size: int, latent_grid: int) -> None:
        super().__init__()
        self.latent_grid = latent_grid
        block = (grid_size // latent_grid) ** 2
        self.proj = nn.Linear(block * embed_dim, embed_dim)
        with torch.no_grad():  # mean over the block's patches, so training starts from average pooling
            self.proj.weight.copy_(torch.eye(embed_dim).repeat(1, block) / block)
            self.proj.bias.zero_()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """[B, g*g, D] -> [B, latent_grid^2, D]."""
        return self.proj(group_blocks(tokens, self.latent_grid))
