"""The shape of a bundle manifest: the fields a reader uses, with their types, checked once on opening.

:func:`check_manifest` raises one :class:`retrieval.bundle.store.errors.DamagedBundleError` line naming the field
(``damaged bundle: B/versions/000002/manifest.json, field "count": ...``) instead of a KeyError, TypeError or
IndexError deep inside a search. The format name and version are checked by the reader first (an older format is a
rebuild, not damage).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cxr_explorer.retrieval.bundle.store.errors import DamagedBundleError
from cxr_explorer.retrieval.bundle.store.integrity import MANIFEST_FIX
from cxr_explorer.retrieval.bundle.targets import TARGETS

INDEX_TYPES = ("flat", "hnsw", "ivf")
INDEX_PARAMS = ("M", "efConstruction", "efSearch", "nlist", "nprobe")
_HEX64 = re.compile(r"[0-9a-f]{64}")


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _positive(v: Any) -> bool:
    return _count(v) and v > 0


def _str_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _file_entry(v: Any) -> bool:
    if not (isinstance(v, dict) and _count(v.get("bytes")) and isinstance(v.get("sha256"), str)
            and _HEX64.fullmatch(v["sha256"])):
        return False
    blocks = v.get("blocks")
    return blocks is None or (isinstance(blocks, dict) and _positive(blocks.get("size"))
                              and isinstance(blocks.get("top"), list)
                              and all(isinstance(t, str) and _HEX64.fullmatch(t) for t in blocks["top"]))


def _problems(m: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, what is wrong) for each bad field, in reading order."""
    checks: list[tuple[str, Callable[[Any], bool], str]] = [
        ("count", _count, "not a count of items"),
        ("dim", _positive, "not a positive width"),
        ("grid_shape", lambda v: isinstance(v, list) and len(v) == 2 and all(_positive(x) for x in v),
         "not [h, w]"),
        ("model", lambda v: isinstance(v, dict) and isinstance(v.get("name"), str), "has no model name"),
        ("preprocessing", lambda v: isinstance(v, dict) and set(v) <= {"resize", "crop"}
         and all(_positive(v.get(k)) for k in ("resize", "crop")), "not {resize, crop}"),
        ("files", lambda v: isinstance(v, dict) and all(isinstance(k, str) and _file_entry(e) for k, e in v.items()),
         "not {file: {bytes, sha256}}"),
        ("counts", lambda v: v is None or (isinstance(v, dict) and all(_count(x) for x in v.values())),
         "not {kind: count}"),
        ("metadata_columns", lambda v: v is None or _str_list(v), "not a list of column names"),
        ("skipped", lambda v: v is None or (isinstance(v, list) and all(isinstance(x, dict) for x in v)),
         "not a list of skipped items"),
        ("build", lambda v: v is None or isinstance(v, dict), "not a build record"),
        ("patch_store", lambda v: v in (None, "fp16", "int8"), "not fp16 or int8"),
    ]
    out = [(key, what) for key, ok, what in checks if not ok(m.get(key))]
    indexes = m.get("indexes")
    if not isinstance(indexes, dict) or set(indexes) != set(TARGETS):
        out.append(("indexes", f"not one entry per target ({', '.join(TARGETS)})"))
    else:
        for target, entry in indexes.items():
            params = entry.get("params", {}) if isinstance(entry, dict) else None
            if not (isinstance(entry, dict) and entry.get("type") in INDEX_TYPES and _count(entry.get("count"))
                    and isinstance(params, dict) and set(params) <= set(INDEX_PARAMS)
                    and all(_positive(x) for x in params.values())):
                out.append((f"indexes.{target}", "not {type, count, params} with known index parameters"))
    columns = m.get("metadata_columns") or []
    seps = m.get("label_separators")
    if seps is not None and not (isinstance(seps, dict) and all(
            k in columns and isinstance(s, str) and s.strip() and s.isprintable() for k, s in seps.items())):
        out.append(("label_separators", "not {metadata column: separator}"))
    return out


def check_manifest(root: Path, where: str, manifest: Any) -> None:
    """Raise DamagedBundleError (one line: the file, the first bad field) unless ``manifest`` has the shape a
    reader needs; ``where`` is the manifest's path relative to ``root``."""
    if not isinstance(manifest, dict):
        raise DamagedBundleError(root, where, f"not a JSON object but {type(manifest).__name__}", MANIFEST_FIX)
    problems = _problems(manifest)
    if problems:
        field, what = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise DamagedBundleError(root, where, f'field "{field}": {what}{more}', MANIFEST_FIX)
