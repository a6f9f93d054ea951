"""BioViL inference preprocessing without torchvision.

Reproduces hi-ml-multimodal's ``create_chest_xray_transform_for_inference(resize, crop)``, i.e. torchvision
``Compose([Resize(resize), CenterCrop(crop), ToTensor(), ExpandChannels()])`` on a PIL mode ``"L"`` image.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

if TYPE_CHECKING:  # torch is imported where a tensor is made: decode workers use :meth:`Preprocessing.pixels` only
    import torch

__all__ = ["Preprocessing", "preprocess_batch"]


@dataclass(frozen=True)
class Preprocessing:
    """Resize the shorter side to ``resize`` (bilinear), centre-crop ``crop`` x ``crop``, 3-channel float tensor."""

    resize: int = 512
    crop: int = 480

    def __post_init__(self) -> None:
        for field in ("resize", "crop"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Preprocessing.{field} must be a positive int, got {value!r}")

    def resized_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) after torchvision ``Resize(resize)``: shorter side -> resize, longer side truncated."""
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = self.resize, int(self.resize * long / short)
        return (new_short, new_long) if width <= height else (new_long, new_short)

    def _crop_offsets(self, width: int, height: int) -> tuple[int, int]:
        """(left, top) of the crop window in resized-image coordinates; negative where torchvision pads."""
        offsets = []
        for size in (width, height):
            if self.crop > size:
                offsets.append(-((self.crop - size) // 2))
            else:
                offsets.append(int(round((size - self.crop) / 2.0)))
        return offsets[0], offsets[1]

    def pixels(self, img: Image.Image) -> np.ndarray:
        """PIL ``"L"`` image -> [crop, crop] uint8 grey levels, resized and centre-cropped; the model input is these
        / 255 on 3 channels (:meth:`__call__`), so they carry it exactly in a quarter of a channel's float bytes."""
        if img.mode != "L":
            raise ValueError(f"Preprocessing expects a PIL image of mode 'L', got {img.mode!r}")
        new_size = self.resized_size(img.width, img.height)
        if new_size != img.size:
            img = img.resize(new_size, Image.Resampling.BILINEAR)
        return np.array(_center_crop(img, self.crop), dtype=np.uint8, copy=True)

    def __call__(self, img: Image.Image) -> torch.Tensor:
        """Transform a PIL ``"L"`` image into a float32 tensor [3, crop, crop] with values in [0, 1]."""
        import torch

        tensor = torch.from_numpy(self.pixels(img)).unsqueeze(0).to(dtype=torch.float32).div(255)
        return torch.repeat_interleave(tensor, 3, dim=0)

    def crop_box(self, width: int, height: int) -> tuple[int, int, int, int]:
        """The crop window (left, top, right, bottom) in ORIGINAL image pixels, rounded; may exceed the image."""
        new_w, new_h = self.resized_size(width, height)
        left, top = self._crop_offsets(new_w, new_h)
        sx, sy = width / new_w, height / new_h
        return (round(left * sx), round(top * sy), round((left + self.crop) * sx), round((top + self.crop) * sy))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly record for manifests."""
        return {"resize": self.resize, "crop": self.crop}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Preprocessing:
        """Inverse of :meth:`to_dict`; unknown keys are rejected."""
        unknown = set(data) - {"resize", "crop"}
        if unknown:
            raise ValueError(f"unknown Preprocessing keys: {sorted(unknown)}")
        return cls(resize=data["resize"], crop=data["crop"])


def _center_crop(img: Image.Image, crop: int) -> Image.Image:
    """torchvision ``CenterCrop(crop)`` on a PIL image: zero-pad the axes shorter than ``crop``, then crop."""
    width, height = img.size
    if crop > width or crop > height:
        pad_l = (crop - width) // 2 if crop > width else 0
        pad_t = (crop - height) // 2 if crop > height else 0
        pad_r = (crop - width + 1) // 2 if crop > width else 0
        pad_b = (crop - height + 1) // 2 if crop > height else 0
        padded = Image.new(img.mode, (width + pad_l + pad_r, height + pad_t + pad_b), 0)
        padded.paste(img, (pad_l, pad_t))
        img = padded
        width, height = img.size
        if width == crop and height == crop:
            return img
    top = int(round((height - crop) / 2.0))
    left = int(round((width - crop) / 2.0))
    return img.crop((left, top, left + crop, top + crop))


def preprocess_batch(images: Sequence[Image.Image], pp: Preprocessing) -> torch.Tensor:
    """Stack ``pp(image)`` for each image into a float32 tensor [N, 3, crop, crop] (N may be 0)."""
    import torch

    if len(images) == 0:
        return torch.empty((0, 3, pp.crop, pp.crop), dtype=torch.float32)
    return torch.stack([pp(img) for img in images])
