"""ViT image and video encoder whose parameter names and shapes match V-JEPA 2's VisionTransformer.

State-dict layout::

    patch_embed.proj.weight  [D, 3, p, p], or [D, 3, tubelet, p, p] with encoder.tubelet_size > 1
    patch_embed.proj.bias    [D]
    pos_embed                [1, g*g, D]    only when use_rope is False
    blocks.{i}.norm1 / attn.qkv / attn.proj / norm2 / mlp.fc1 / mlp.fc2
    norm.weight / norm.bias  [D]

so official ViT-L/H/g weights load by name, with their tubelet (``tubelet_size: 2``) or folded
into an image patch embedding (see checkpoint.py). The official RoPE encoders rotate queries
and keys over (frame, row, column); so does this one, an image being frame 0. A clip of T
frames ([B, 3, T, S, S], T a multiple of the tubelet) gives T / tubelet token grids, frame-major.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from jepa_wm.config import EncoderConfig
from jepa_wm.models.layers import Block, grid_positions, init_weights, rescale_residual_branches

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


class TubeletEmbed(nn.Module):
    """Space-time patches (``tubelet`` frames x p x p) to tokens with one strided 3D convolution (``proj``)."""

    def __init__(self, patch_size: int, tubelet_size: int, in_channels: int, embed_dim: int) -> None:
        super().__init__()
        self.tubelet_size = tubelet_size
        size = (tubelet_size, patch_size, patch_size)
        self.proj = nn.Conv3d(in_channels, embed_dim, kernel_size=size, stride=size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images [B, C, H, W] (repeated over the tubelet) or clips [B, C, T, H, W] -> [B, (T/t)*(H/p)*(W/p), D]."""
        if images.ndim == 4:
            images = images.unsqueeze(2).expand(-1, -1, self.tubelet_size, -1, -1)
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
        if config.tubelet_size > 1:
            self.patch_embed = TubeletEmbed(config.patch_size, config.tubelet_size, config.in_channels, config.embed_dim)
        else:
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
        """uint8 RGB frames [B, H, W, 3] -> normalised float [B, 3, S, S] at the configured size.

        A clip [B, T, H, W, 3] gives [B, 3, T, S, S], the layout :meth:`forward` takes.
        """
        if frames.dtype != torch.uint8 or frames.ndim not in (4, 5) or frames.shape[-1] != 3:
            raise ValueError(
                f"frames: expected uint8 [B, H, W, 3] RGB (or clips [B, T, H, W, 3]), got {frames.dtype} "
                f"{tuple(frames.shape)}"
            )
        if frames.ndim == 5:
            B, T = frames.shape[:2]
            images = self.preprocess(frames.flatten(0, 1))  # [B*T, 3, S, S]
            return images.unflatten(0, (B, T)).transpose(1, 2)  # [B, 3, T, S, S]
        images = frames.to(self.pixel_mean.device).permute(0, 3, 1, 2).float().div_(255.0)  # [B, 3, H, W]
        size = self.config.image_size
        if images.shape[-2:] != (size, size):
            images = nn.functional.interpolate(images, size=(size, size), mode="bilinear", antialias=True)
        if self.blur_kernel.numel() > 1:
            images = separable_blur(images, self.blur_kernel)
        return (images - self.pixel_mean) / self.pixel_std

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised images [B, 3, S, S] -> patch tokens [B, g*g, D]; clips [B, 3, T, S, S] -> [B, (T/t)*g*g, D]."""
        size, g, tubelet = self.config.image_size, self.config.grid_size, self.config.tubelet_size
        if images.shape[-2:] != (size, size) or images.ndim not in (4, 5):
            raise ValueError(f"expected images [B, 3, {size}, {size}] or clips [B, 3, T, {size}, {size}], "
                             f"got {tuple(images.shape)}")
        frames = 1
        if images.ndim == 5:
            if images.shape[2] % tubelet:
                raise ValueError(f"a clip of {images.shape[2]} frames: expected a multiple of the tubelet "
                                 f"({tubelet} frames)")
            frames = images.shape[2] // tubelet
            if tubelet == 1:  # an image patch embedding sees each frame on its own
                images = images.transpose(1, 2).flatten(0, 1)  # [B*T, 3, S, S]
        x = self.patch_embed(images)
        x = x.reshape(-1, frames * g * g, x.shape[-1])  # [B, frames*g*g, D]
        if self.pos_embed is not None:
            if frames > 1:
                raise ValueError(f"a clip of {frames} token grids: this encoder's position table holds one "
                                 f"frame's positions (use_rope: false); clips need a RoPE encoder")
            x = x + self.pos_embed
        positions = grid_positions(frames, g, g, device=x.device) if self.config.use_rope else None
        for block in self.blocks:
            x, _ = block(x, positions=positions)
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
