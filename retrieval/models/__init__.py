"""The model layer: a registry of specs, BioViL/BioViL-T encoders, weight resolution and one factory."""

from retrieval.models.api import (
    ModelIdentity,
    VLModel,
    build_model,
    load_model,
    pick_device,
)
from retrieval.models.registry import ModelSpec, UnknownModelError, get_spec, list_models

__all__ = [
    "ModelIdentity", "ModelSpec", "UnknownModelError", "VLModel", "build_model", "get_spec", "list_models",
    "load_model", "pick_device",
]
