"""What a bundle says about itself (from its manifest), as typed values for the app's pages and the CLI.

:func:`bundle_facts` reads an open :class:`retrieval.bundle.reader.Bundle` once; pages show these fields instead of
reaching into ``manifest.json`` keys themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cxr_explorer.retrieval.bundle.reader import Bundle


@dataclass(frozen=True)
class IndexFacts:
    """One FAISS index of the bundle: its target, type (e.g. ``flat``), vector count and build parameters."""

    target: str
    type: str
    vectors: int
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BundleFacts:
    """The manifest facts of one bundle.

    ``model`` is the manifest's model record (name, revision, image_md5, is_real, verified, ...); ``counts`` what
    was stored (items, reports, sentences, ...); ``metadata_columns`` the user metadata columns (filterable), in
    corpus order; ``map_methods`` the 2-D maps stored per target (e.g.
    ``{"images": ["PCA", "UMAP"]}``); ``build`` the build record (command, precision, timings).
    """

    root: Path
    model_name: str
    count: int
    model: dict[str, Any]
    preprocessing: str
    grid_shape: tuple[int, ...]
    created: str
    counts: dict[str, Any]
    indexes: list[IndexFacts]
    skipped: list[dict[str, str]]
    build: dict[str, Any]
    map_methods: dict[str, list[str]]
    metadata_columns: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The bundle's folder name (how the app and exports name it; never the full path)."""
        return self.root.name


def bundle_facts(bundle: Bundle) -> BundleFacts:
    """The facts of ``bundle`` (missing optional manifest sections read as empty)."""
    manifest = bundle.manifest
    indexes = [IndexFacts(str(k), str(v.get("type")), int(v.get("count") or 0), dict(v.get("params", {})))
               for k, v in manifest.get("indexes", {}).items()]
    return BundleFacts(
        root=Path(bundle.root), model_name=bundle.model_name, count=bundle.count,
        model=dict(manifest.get("model", {})), preprocessing=str(manifest.get("preprocessing")),
        grid_shape=tuple(manifest.get("grid_shape", [])), created=str(manifest.get("created", "?")),
        counts=dict(manifest.get("counts", {"items": manifest.get("count")})), indexes=indexes,
        skipped=list(bundle.skipped), build=dict(manifest.get("build") or {}),
        map_methods={str(k): list(v) for k, v in manifest.get("projections", {}).get("methods", {}).items()},
        metadata_columns=bundle.metadata_columns,
    )
