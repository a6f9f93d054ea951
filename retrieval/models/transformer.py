"""BioViL-T's temporal ViT pooler in plain torch, with the reference's module names (no timm).

At inference the dropouts and drop-path are inactive, so they are omitted; the key names match hi-ml's
``VisionTransformerPooler`` (``blocks.{i}.attn.proj_q`` ..., ``blocks.{i}.mlp.fc1``, ``norm_post``, ``type_embed``).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def sine_position_embedding(height: int, width: int, embedding_dim: int, temperature: float = 10000.0,
                            scale: float = 2 * math.pi) -> torch.Tensor:
    """DETR-style normalised 2-D sine embedding, [1, height*width, 2*embedding_dim] (y half first, then x)."""
    mask = torch.ones(1, height, width)
    y_embed = mask.cumsum(1, dtype=torch.float32)
    x_embed = mask.cumsum(2, dtype=torch.float32)
    y_embed = y_embed / (y_embed[:, -1:, :] + 1e-6) * scale
    x_embed = x_embed / (x_embed[:, :, -1:] + 1e-6) * scale
    dim_t = torch.arange(embedding_dim, dtype=torch.float32)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / embedding_dim)
    pos_x = x_embed[:, :, :, None] / dim_t
    pos_y = y_embed[:, :, :, None] / dim_t
    pos_x = torch.stack((pos_x[:, :, :, 0::2].sin(), pos_x[:, :, :, 1::2].cos()), dim=4).flatten(3)
    pos_y = torch.stack((pos_y[:, :, :, 0::2].sin(), pos_y[:, :, :, 1::2].cos()), dim=4).flatten(3)
    return torch.cat((pos_y, pos_x), dim=3).view(1, height * width, embedding_dim * 2)


class MultiHeadAttentionLayer(nn.Module):
    """Multi-head attention with separate q/k/v projections (no bias) and an output projection."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.proj_q = nn.Linear(dim, dim, bias=False)
        self.proj_k = nn.Linear(dim, dim, bias=False)
        self.proj_v = nn.Linear(dim, dim, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Self-attention, [B, N, C] -> [B, N, C]."""
        b, n, c = x.shape
        heads = self.num_heads

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(b, n, heads, c // heads).permute(0, 2, 1, 3)

        q, k, v = split(self.proj_q(x)), split(self.proj_k(x)), split(self.proj_v(x))
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    """fc1 -> GELU -> fc2 (timm's ``Mlp`` names)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, N, C] -> [B, N, C]."""
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm block; position+type embeddings are added to the normed input of attention only (DETR style)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 1.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = MultiHeadAttentionLayer(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, pos_and_type_embed: torch.Tensor) -> torch.Tensor:
        """[B, N, C] -> [B, N, C]."""
        x = x + self.attn(self.norm1(x) + pos_and_type_embed)
        return x + self.mlp(self.norm2(x))


class VisionTransformerPooler(nn.Module):
    """Fuses current and prior patch grids; returns the current image's tokens as a grid [B, C, H, W]."""

    def __init__(self, input_dim: int, grid_shape: tuple[int, int], num_heads: int = 8, num_blocks: int = 3) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([Block(input_dim, num_heads) for _ in range(num_blocks)])
        self.norm_post = nn.LayerNorm(input_dim, eps=1e-6)
        self.grid_shape = grid_shape
        self.num_patches = grid_shape[0] * grid_shape[1]
        self.type_embed = nn.Parameter(torch.zeros(2, 1, input_dim))
        pos = sine_position_embedding(grid_shape[0], grid_shape[1], input_dim // 2)
        self.register_buffer("pos_embed", pos, persistent=False)

    def forward(self, current: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        """current, previous: [B, C, H, W] with (H, W) == grid_shape -> [B, C, H, W]."""
        b, c, h, w = current.shape
        if (h, w) != self.grid_shape or previous.shape != current.shape:
            raise ValueError(f"temporal pooler needs two {self.grid_shape} grids, got {tuple(current.shape)} and "
                             f"{tuple(previous.shape)}")
        cur = current.view(b, c, h * w).transpose(1, 2)
        prev = previous.view(b, c, h * w).transpose(1, 2)
        x = torch.cat((cur, prev), dim=1)
        pos = self.pos_embed.repeat(b, 1, 1)  # type: ignore[operator]
        pos = torch.cat((pos, pos), dim=1)
        types = torch.cat((self.type_embed[0].expand(b, h * w, -1), self.type_embed[1].expand(b, h * w, -1)), dim=1)
        for block in self.blocks:
            x = block(x, pos + types)
        x = self.norm_post(x)
        return x[:, : self.num_patches].transpose(1, 2).reshape(b, c, h, w)
