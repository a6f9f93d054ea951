"""Exports after review: the cleaned manifest (a CSV ``cxr-explorer build`` reads) and the exclusion list."""

from __future__ import annotations

import pandas as pd

from cxr_explorer.retrieval.curate.review import Decision

DECISION_COLUMNS = ["check", "id", "path", "in_bundle", "decision", "curator", "decided_at", "note", "conflict"]

BUILD_HINT = "cxr-explorer build {csv} --id-col id --text-col report --out NEW_BUNDLE_DIR --model MODEL"
"""How to rebuild from the cleaned manifest (ids, reports and metadata columns are kept as they were)."""


def cleaned_manifest(metadata: pd.DataFrame, metadata_columns: list[str], excluded: set[str]) -> pd.DataFrame:
    """The bundle's cases minus ``excluded`` ids as a build corpus: ``image_path`` (absolute), ``id``, ``report``
    and the user metadata columns, in bundle order."""
    keep = ~metadata["id"].astype(str).isin(excluded)
    out = pd.DataFrame({"image_path": metadata.loc[keep, "image_abspath"].astype(str),
                        "id": metadata.loc[keep, "id"].astype(str),
                        "report": metadata.loc[keep, "report"].fillna("").astype(str)})
    for col in metadata_columns:
        out[col] = metadata.loc[keep, col].fillna("").astype(str)
    return out.reset_index(drop=True)


def exclusion_list(metadata: pd.DataFrame, excluded: dict[str, Decision]) -> pd.DataFrame:
    """One row per excluded case: id, path (as in the corpus), the check it was excluded from, curator, when
    (UTC, ISO), note. Ids no longer in the bundle are kept (marked ``in_bundle`` False), never dropped."""
    paths = dict(zip(metadata["id"].astype(str), metadata["path"].astype(str), strict=True))
    rows = [{"id": i, "path": paths.get(i, ""), "in_bundle": i in paths, "check": d.check, "curator": d.curator,
             "decided_at": pd.Timestamp(d.ts_ns, unit="ns", tz="UTC").isoformat(), "note": d.note}
            for i, d in sorted(excluded.items())]
    return pd.DataFrame(rows, columns=["id", "path", "in_bundle", "check", "curator", "decided_at", "note"])


def decision_list(metadata: pd.DataFrame, state: dict[tuple[str, str], Decision],
                  conflicting: dict[tuple[str, str], dict[str, Decision]]) -> pd.DataFrame:
    """One row per current decision (ok, wrong and exclude alike), by check then id: the decision, its curator,
    when (UTC, ISO), note, and ``conflict``: the other curators' differing decisions (``ben: ok``), empty when
    none."""
    paths = dict(zip(metadata["id"].astype(str), metadata["path"].astype(str), strict=True))
    rows = []
    for (check, case_id), d in sorted(state.items()):
        others = conflicting.get((check, case_id), {})
        rows.append({"check": check, "id": case_id, "path": paths.get(case_id, ""), "in_bundle": case_id in paths,
                     "decision": d.decision, "curator": d.curator,
                     "decided_at": pd.Timestamp(d.ts_ns, unit="ns", tz="UTC").isoformat(), "note": d.note,
                     "conflict": "; ".join(f"{o.curator}: {o.decision}" for o in sorted(others.values(),
                                           key=lambda o: o.curator) if o.curator != d.curator)})
    return pd.DataFrame(rows, columns=DECISION_COLUMNS)
