"""BioViL / BioViL-T image models with the reference's module names (``encoder.encoder.*``, ``projector.model.*``).

Shapes: input [B, 3, H, W] in [0, 1] (no mean/std normalisation); the ResNet-50 grid is (H/32, W/32), e.g. 15x15 at
480 px and 14x14 at 448 px. Outputs live in the 128-d joint space.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cxr_explorer.retrieval.models.registry import ModelSpec
from cxr_explorer.retrieval.models.resnet import ResNet
from cxr_explorer.retrieval.models.transformer import VisionTransformerPooler


class ImageEncoder(nn.Module):
    """Wraps the ResNet trunk as ``encoder`` (hence ``encoder.encoder.*`` keys)."""

    def __init__(self, base_width: int = 64) -> None:
        super().__init__()
        self.encoder = ResNet(base_width=base_width)
        self.out_channels = self.encoder.out_channels

    def forward(self, current: torch.Tensor, previous: torch.Tensor | None = None) -> torch.Tensor:
        """[B, 3, H, W] -> patch features [B, C, h, w]; single-image models ignore ``previous``."""
        if previous is not None:
            raise ValueError("this image model takes a single image; use a BioViL-T model for a prior image")
        return self.encoder(current)


class MultiImageEncoder(ImageEncoder):
    """BioViL-T trunk: ResNet -> 1x1 conv to 256 -> [current, difference] fused to 512 channels.

    Without a prior image the difference half is the learned ``missing_previous_emb`` tiled over the grid.
    """

    def __init__(self, base_width: int = 64, vit_dim: int = 256, grid_shape: tuple[int, int] = (14, 14)) -> None:
        super().__init__(base_width)
        self.backbone_to_vit = nn.Conv2d(self.encoder.out_channels, vit_dim, kernel_size=1, bias=False)
        self.vit_pooler = VisionTransformerPooler(input_dim=vit_dim, grid_shape=grid_shape)
        self.missing_previous_emb = nn.Parameter(torch.zeros(1, vit_dim, 1, 1))
        self.out_channels = 2 * vit_dim

    def forward(self, current: torch.Tensor, previous: torch.Tensor | None = None) -> torch.Tensor:
        """[B, 3, H, W] (+ prior of the same shape) -> fused patch features [B, 512, h, w]."""
        b = current.shape[0]
        if previous is None:
            patch_x = self.backbone_to_vit(self.encoder(current))
            diff_x = self.missing_previous_emb.repeat(b, 1, patch_x.shape[2], patch_x.shape[3])
        else:
            if previous.shape != current.shape:
                raise ValueError(f"current and prior images differ in shape: {tuple(current.shape)} vs "
                                 f"{tuple(previous.shape)}")
            x = self.backbone_to_vit(self.encoder(torch.cat([current, previous], dim=0)))
            patch_x, patch_prev = x[:b], x[b:]
            diff_x = self.vit_pooler(patch_x, patch_prev)
        return torch.cat([patch_x, diff_x], dim=1)


class MLP(nn.Module):
    """Projector as 1x1 convolutions: ``model`` = Conv(in->hid, no bias), BN, ReLU, Conv(hid->out)."""

    def __init__(self, input_dim: int, output_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.model = nn.Sequential(
            nn.Conv2d(input_dim, hidden_dim, kernel_size=1, bias=False),
            nn.BatchNorm2d(hidden_dim),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden_dim, output_dim, kernel_size=1, bias=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, input_dim, h, w] -> [B, output_dim, h, w]."""
        return self.model(x)


@dataclass(frozen=True)
class ImageEmbeddings:
    """Both outputs of one forward pass.

    ``global_emb``: [B, D] L2-normalised mean of the projected patches (not a projection of the pooled vector).
    ``patches``: [B, h, w, D], each patch L2-normalised.
    """

    global_emb: torch.Tensor
    patches: torch.Tensor


class ImageModel(nn.Module):
    """``encoder`` + ``projector``; state dict identical to hi-ml's ``ImageModel`` (incl. the unused ``fc``)."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        if spec.image_arch == "resnet50_multi_image":
            self.encoder: ImageEncoder = MultiImageEncoder(spec.base_width)
        else:
            self.encoder = ImageEncoder(spec.base_width)
        self.projector = MLP(self.encoder.out_channels, spec.joint_dim, spec.joint_dim)

    def grid(self, height: int, width: int) -> tuple[int, int]:
        """Patch grid (h, w) for [B, 3, height, width] input; the projector and BioViL-T's fusion keep the trunk's
        grid."""
        return self.encoder.encoder.grid(height, width)

    def projected_patches(self, images: torch.Tensor, previous: torch.Tensor | None = None) -> torch.Tensor:
        """[B, 3, H, W] -> unnormalised projected patch embeddings [B, D, h, w]."""
        return self.projector(self.encoder(images, previous))

    def forward(self, images: torch.Tensor, previous: torch.Tensor | None = None) -> ImageEmbeddings:
        """[B, 3, H, W] -> :class:`ImageEmbeddings` (global [B, D], patches [B, h, w, D]), both L2-normalised."""
        proj = self.projected_patches(images, previous)
        global_emb = F.normalize(torch.mean(proj, dim=(2, 3)), dim=-1)
        patches = F.normalize(proj, dim=1).permute(0, 2, 3, 1)
        return ImageEmbeddings(global_emb=global_emb, patches=patches)
