"""Transformer building blocks shared by the encoder and the predictor.

Parameter names follow V-JEPA 2 (``norm1``, ``attn.qkv``, ``attn.proj``, ``norm2``,
``mlp.fc1``, ``mlp.fc2``) so that official state dicts map onto these modules by name.
Attention can return its keys and values and accept cached ones, which is what makes
autoregressive rollouts cheap: past steps are never recomputed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# (keys, values), each [B, heads, L, head_dim]
KVCache = tuple[torch.Tensor, torch.Tensor]


def rope_rotate(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Rotate pairs of channels of ``x`` [..., L, n] by angles ``positions`` [L] x frequencies.

    The frequency layout matches V-JEPA 2's pretrained encoders: the n/2 frequencies are
    repeated as [f, f] over the n channels (not interleaved) while the rotation pairs
    neighbouring channels (2i, 2i+1). Loading their weights needs this exact layout.
    """
    n = x.shape[-1]
    assert n % 2 == 0, f"rotary segment width {n} must be even"
    omega = 1.0 / 10000 ** (torch.arange(n // 2, dtype=x.dtype, device=x.device) / (n / 2))
    angles = positions.to(x.dtype)[:, None] * omega[None, :]  # [L, n/2]
    sin = angles.sin().repeat(1, 2)  # [L, n]
    cos = angles.cos().repeat(1, 2)
    pairs = x.unflatten(-1, (-1, 2))  # [..., L, n/2, 2]
    partner = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)  # [..., L, n]
    return x * cos + partner * sin


def grid_positions(frames: int, rows: int, cols: int, first_frame: int = 0,
                   device: torch.device | str | None = None) -> torch.Tensor:
    """RoPE positions [3, frames*rows*cols] (depth, height, width) of a token grid in frame-major, row-major order."""
    ids = torch.arange(frames * rows * cols, device=device)
    per_frame = rows * cols
    return torch.stack([first_frame + ids // per_frame, (ids % per_frame) // cols, ids % cols]).float()


class Attention(nn.Module):
    """Multi-head self-attention with optional 2D RoPE and an optional key/value cache."""

    def __init__(self, dim: int, num_heads: int, use_rope: bool = False, grid_size: int = 0) -> None:
        super().__init__()
        assert dim % num_heads == 0, f"dim={dim} not divisible by num_heads={num_heads}"
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)
        self.use_rope = use_rope
        self.grid_size = grid_size
        # V-JEPA 2 splits each head into depth / height / width rotary segments of this width.
        self.rope_segment = 2 * ((self.head_dim // 3) // 2)

    def _apply_rope(self, t: torch.Tensor, positions: torch.Tensor | None) -> torch.Tensor:
        """Rotate the (depth, height, width) segments of each head by the tokens' positions [3, L].

        None: the tokens are one image's patch grid (frame 0, whose depth rotation is the identity).
        Channels past the three segments are not rotated, as in V-JEPA 2.
        """
        if positions is None:
            L = t.shape[-2]
            assert L == self.grid_size**2, f"RoPE expects {self.grid_size}^2 tokens, got {L}"
            positions = grid_positions(1, self.grid_size, self.grid_size, device=t.device)
        s = self.rope_segment
        rotated = [rope_rotate(t[..., i * s : (i + 1) * s], positions[i]) for i in range(3)]
        return torch.cat([*rotated, t[..., 3 * s :]], dim=-1)

    def forward(
        self,
        x: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
        positions: torch.Tensor | None = None,
        queries: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, KVCache]:
        """x [B, L, C] -> ([B, L, C], (keys, values) including the cached ones).

        positions: RoPE (depth, height, width) of the L new tokens [3, L]; cached keys keep theirs.
        queries: indices [L'] of the tokens whose outputs are wanted (all L are still keys and values):
        the output is then [B, L', C].
        """
        B, L, C = x.shape
        qkv = self.qkv(x).unflatten(-1, (3, self.num_heads, self.head_dim)).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # each [B, heads, L, head_dim]
        if self.use_rope:
            q, k = self._apply_rope(q, positions), self._apply_rope(k, positions)
        if cache is not None:
            cached_k, cached_v = cache
            if cached_k.shape[0] != B:  # context cached once at batch 1, shared by all candidates
                cached_k, cached_v = cached_k.expand(B, -1, -1, -1), cached_v.expand(B, -1, -1, -1)
            k = torch.cat([cached_k, k], dim=2)
            v = torch.cat([cached_v, v], dim=2)
        if queries is not None:
            q = q.index_select(2, queries)
            attn_mask = None if attn_mask is None else attn_mask.index_select(0, queries)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # [B, heads, L', head_dim]
        out = out.transpose(1, 2).reshape(B, q.shape[2], C)
        return self.proj(out), (k, v)


class MLP(nn.Module):
    """Two-layer GELU feed-forward (``fc1``, ``fc2`` as in V-JEPA 2)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [..., dim] -> [..., dim]."""
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, use_rope: bool = False, grid_size: int = 0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, use_rope=use_rope, grid_size=grid_size)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MLP(dim, int(dim * mlp_ratio))

    def forward(
        self,
        x: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
        positions: torch.Tensor | None = None,
        queries: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, KVCache]:
        """x [B, L, C] -> ([B, L, C], this layer's keys and values); positions and queries (outputs of
        these tokens only: [B, L', C]) as in :class:`Attention`."""
        attended, kv = self.attn(self.norm1(x), attn_mask=attn_mask, cache=cache, positions=positions, queries=queries)
        x = (x if queries is None else x.index_select(1, queries)) + attended
        x = x + self.mlp(self.norm2(x))
        return x, kv


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """Truncated-normal linear/conv weights, zero biases, unit LayerNorm (as in V-JEPA 2)."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.Conv3d)):
            nn.init.trunc_normal_(m.weight, std=std, a=-2 * std, b=2 * std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def rescale_residual_branches(blocks: nn.ModuleList) -> None:
    """Shrink each block's output projections by sqrt(2 * layer) to keep the residual stream stable."""
    with torch.no_grad():
        for layer, block in enumerate(blocks, start=1):
            block.attn.proj.weight.div_((2.0 * layer) ** 0.5)
            block.mlp.fc2.weight.div_((2.0 * layer) ** 0.5)
