"""Deterministic, name-seeded weights for tests and the ``tiny-random`` model.

Every tensor is drawn from its own generator seeded by a hash of its state-dict key, so two codebases that build
modules in a different order (ours and the hi-ml reference) still obtain the identical state dict, tensor for tensor.

This file depends on ``torch`` and the standard library only: the reference generator script imports it by path from
a separate virtual environment.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping

import torch


def key_seed(key: str, salt: str = "") -> int:
    """A stable 63-bit seed derived from a state-dict key (and an optional salt)."""
    digest = hashlib.sha256(f"{salt}/{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def seeded_tensor(key: str, shape: torch.Size | tuple[int, ...], dtype: torch.dtype, salt: str = "") -> torch.Tensor:
    """Draw one tensor for ``key`` with a scale that keeps activations of deep nets finite.

    Rules by key suffix and rank: integer buffers are zero (``position_ids`` is ``arange``); BatchNorm running
    variances lie in [0.5, 1.5]; running means and biases are small; 1-D weights (norm gains) are near 1; tensors of
    rank >= 2 are normal with std ``1/sqrt(fan_in)``; residual-closing norms (``bn3``) are damped so a 16-block
    ResNet stays well conditioned.
    """
    gen = torch.Generator().manual_seed(key_seed(key, salt))
    shape = tuple(shape)
    if not dtype.is_floating_point:
        if key.endswith("position_ids"):
            return torch.arange(shape[-1], dtype=dtype).expand(shape).clone()
        return torch.zeros(shape, dtype=dtype)
    if key.endswith("running_var"):
        out = 0.5 + torch.rand(shape, generator=gen, dtype=torch.float64)
    elif key.endswith("running_mean") or key.endswith("bias"):
        out = 0.1 * torch.randn(shape, generator=gen, dtype=torch.float64)
    elif len(shape) <= 1:
        damp = 0.2 if ".bn3." in key else 1.0
        out = damp * (1.0 + 0.1 * torch.randn(shape, generator=gen, dtype=torch.float64))
    else:
        fan_in = math.prod(shape[1:])
        out = torch.randn(shape, generator=gen, dtype=torch.float64) / math.sqrt(fan_in)
    return out.to(dtype)


def seeded_state_dict(template: Mapping[str, torch.Tensor], salt: str = "") -> dict[str, torch.Tensor]:
    """Return a state dict with the keys, shapes and dtypes of ``template``, filled by :func:`seeded_tensor`."""
    return {k: seeded_tensor(k, v.shape, v.dtype, salt) for k, v in template.items()}
