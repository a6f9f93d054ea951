"""The model layer: a registry of specs, BioViL/BioViL-T encoders, weight resolution and one factory.

The registry is plain data and imports at once; the factory and encoders (torch, transformers: seconds to import)
load on first use, so ``cxr-explorer --help`` and argument checks answer before any model code is imported.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from cxr_explorer.retrieval.models.registry import ModelSpec, UnknownModelError, get_spec, list_models

if TYPE_CHECKING:
    from cxr_explorer.retrieval.models.api import ModelIdentity, VLModel, build_model, load_model, pick_device

_LAZY = {name: "cxr_explorer.retrieval.models.api" for name in ("ModelIdentity", "VLModel", "build_model", "load_model",
                                                     "pick_device")}

__all__ = [
    "ModelIdentity", "ModelSpec", "UnknownModelError", "VLModel", "build_model", "get_spec", "list_models",
    "load_model", "pick_device",
]


def __getattr__(name: str) -> Any:
    """Import the factory's names on first access (PEP 562)."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
