"""The precision of a build: explicit, the given model's, the one the folder's build already uses, or the hardware's.

``--precision auto`` (the default) resolves with :func:`retrieval.models.precision.resolve_precision`, except that a
build being resumed or appended to keeps the precision it was started with (vectors of one bundle share one
precision), and a build handed a ready model uses that model's precision.
"""

from __future__ import annotations

from pathlib import Path

import torch

from cxr_explorer.retrieval.bundle import store
from cxr_explorer.retrieval.models.precision import Precision, resolve_precision


def _recorded(out: Path) -> str | None:
    """The precision recorded by an unfinished build or by the installed bundle in ``out``."""
    if not out.is_dir():
        return None
    state = store.BuildArea(out).state()
    if state and state.get("precision") in ("fp32", "bf16"):
        return str(state["precision"])
    try:
        manifest = store.read_manifest(out)
    except (OSError, ValueError):
        return None
    value = (manifest or {}).get("build", {}).get("precision")
    return str(value) if value in ("fp32", "bf16") else None


def build_precision(precision: str, device: torch.device, out: Path, model_precision: str | None = None
                    ) -> Precision:
    """The precision a build in ``out`` runs at (see the module docstring); ValueError for an unknown name."""
    if precision != "auto":
        return resolve_precision(precision, device)
    if model_precision is not None:
        return resolve_precision(model_precision, device)
    recorded = _recorded(out)
    return resolve_precision(recorded or "auto", device)
