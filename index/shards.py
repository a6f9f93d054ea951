"""Scale-out: stable shard assignment by hashing item ids, and merging shard bundles into one bundle."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

from cxr_explorer.retrieval.bundle import store
from cxr_explorer.retrieval.bundle.reader import Bundle, BundleError
from cxr_explorer.retrieval.bundle.writer import write_version

log = logging.getLogger(__name__)


def parse_shard(text: str) -> tuple[int, int]:
    """"I/N" -> (I, N) with 0 <= I < N; ValueError with a clear message otherwise."""
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise ValueError(f"bad --shard {text!r}: expected I/N, e.g. 0/4") from None
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"bad --shard {text!r}: need 0 <= I < N")
    return i, n


def shard_of(item_id: str, n: int) -> int:
    """The shard (0..n-1) that owns ``item_id``: SHA-256 of the id, stable across machines and runs."""
    return int.from_bytes(hashlib.sha256(item_id.encode("utf-8")).digest()[:8], "big") % n


def _check_compatible(bundles: Sequence[Bundle]) -> None:
    first = bundles[0]
    for b in bundles[1:]:
        b.check_model(first.manifest["model"])
        for key in ("preprocessing", "grid_shape", "dim"):
            if b.manifest[key] != first.manifest[key]:
                raise BundleError(f"cannot merge {b.root} with {first.root}: different {key}")
        p1, p2 = (x.manifest.get("build", {}).get("precision") for x in (first, b))
        if p1 != p2:
            raise BundleError(f"cannot merge {b.root} ({p2}) with {first.root} ({p1}): different --precision")


def _check_shards(bundles: Sequence[Bundle], allow_partial: bool) -> None:
    shards = [b.manifest.get("build", {}).get("shard") for b in bundles]
    if any(s is None for s in shards):
        return  # plain bundles: merged as they are
    counts = {s[1] for s in shards}
    seen = [s[0] for s in shards]
    if len(counts) > 1:
        raise BundleError(f"cannot merge shards of different splits: {sorted(counts)}")
    if len(set(seen)) != len(seen):
        raise BundleError(f"shard {next(i for i in seen if seen.count(i) > 1)} is given twice")
    missing = sorted(set(range(counts.pop())) - set(seen))
    if missing and not allow_partial:
        raise BundleError(f"shards {missing} are missing; build them first, or pass --allow-partial")


def merge_bundles(dirs: Sequence[Path], out: Path, allow_partial: bool = False, index_type: str = "auto",
                  command: str = "") -> Path:
    """Join finished bundles (usually the shards of one build) into ``out``; ids must not overlap."""
    if not dirs:
        raise BundleError("merge needs at least one bundle")
    bundles = [Bundle.open(d) for d in dirs]
    _check_compatible(bundles)
    _check_shards(bundles, allow_partial)
    owner: dict[str, Path] = {}
    for b in bundles:
        for item_id in b.metadata["id"]:
            if item_id in owner:
                raise BundleError(f"id {item_id!r} is in both {owner[item_id]} and {b.root}; shards must not overlap")
            owner[item_id] = b.root
    first = bundles[0].manifest
    build = {**first.get("build", {}), "shard": None, "command": command, "merged_from": [str(d) for d in dirs],
             "timings": {str(b.root): b.manifest.get("build", {}).get("timings") for b in bundles}}
    merged_from = [str(d) for d in dirs]
    try:
        with store.WriterLock(out, command or None):
            _check_out(out, merged_from)
            if store.has_bundle(out):
                log.info("%s already holds this merge", out)
                return out
            area = store.BuildArea(out)
            build_id = area.write_state({"command": command, "merged_from": merged_from})
            write_version(out, [b.as_part() for b in bundles], identity=first["model"], spec=first["spec"],
                          preprocessing=first["preprocessing"], grid_shape=first["grid_shape"], dim=first["dim"],
                          build=build, index_type=index_type, build_id=build_id,
                          patch_store=str(first.get("patch_store") or "fp16"))
            area.retire()
    finally:
        for b in bundles:
            b.close()
    log.info("merged %d bundles (%d items) into %s", len(bundles), len(owner), out)
    return out


def _check_out(out: Path, merged_from: list[str]) -> None:
    """Refuse an output folder that holds another bundle or a build (a rerun of the same merge is fine)."""
    if store.is_legacy(out):
        raise BundleError(f"{out} already holds a bundle; merge into a new folder")
    if store.has_bundle(out):
        done = (store.read_manifest(out) or {}).get("build", {}).get("merged_from")
        if done != merged_from:
            raise BundleError(f"{out} already holds a bundle; merge into a new folder")
    elif store.BuildArea(out).chunks.committed():
        raise BundleError(f"{out} holds an unfinished build; merge into a new folder")
