"""The curation checks on synthetic vectors with planted faults: each check ranks its own fault first."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cxr_explorer.retrieval.bundle.writer import build_index
from cxr_explorer.retrieval.curate.base import CurateData, self_knn
from cxr_explorer.retrieval.curate.evaluate import score_ranking
from cxr_explorer.retrieval.curate.labels import check_labels, confidence_and_margin, split_labels
from cxr_explorer.retrieval.curate.leakage import check_cross_bundle, check_split_leakage
from cxr_explorer.retrieval.curate.mismatch import check_mismatch
from cxr_explorer.retrieval.curate.outliers import check_outliers
from tests.helpers.curate_faults import synthetic_faults


@pytest.fixture(scope="module")
def planted():  # type: ignore[no-untyped-def]
    return synthetic_faults(3000, rate=0.01, seed=3)


def scored(table: pd.DataFrame, truth: set[str]):  # type: ignore[no-untyped-def]
    return score_ranking(table["id"].tolist(), table.loc[table["flagged"], "id"].tolist(), truth)


def test_mismatch_ranks_swapped_reports_first(planted) -> None:  # type: ignore[no-untyped-def]
    result = check_mismatch(planted.data)
    s = scored(result.table, planted.swapped)
    assert s.precision_at_k >= 0.9 and s.flagged_recall >= 0.9
    top = result.table.iloc[0]
    assert top["margin"] < 0 and top["rank_image_to_report"] > 1 and top["rank_report_to_image"] > 1
    assert list(result.table["rank"]) == list(range(1, len(result.table) + 1))
    assert result.table["severity"].is_monotonic_decreasing


def test_mismatch_own_report_found_first_for_clean_cases(planted) -> None:  # type: ignore[no-untyped-def]
    table = check_mismatch(planted.data).table
    clean = table[~table["id"].isin(planted.swapped)]
    assert (clean["rank_image_to_report"] == 1).mean() > 0.5
    assert not clean["rank_capped"].all()


def test_labels_find_flipped_labels_with_evidence(planted) -> None:  # type: ignore[no-untyped-def]
    result = check_labels(planted.data, "labels")
    s = scored(result.table, planted.flipped)
    assert s.precision_at_k >= 0.8 and s.flagged_recall >= 0.9
    top = result.table.iloc[0]
    assert top["normalised_margin"] < 0.5 and top["id"] in planted.flipped
    assert '"neighbours"' in top["evidence"] and top["suggested"] and top["suggested"] != top["labels"]


def test_labels_are_multi_label_aware() -> None:
    assert split_labels("Effusion|Atelectasis") == {"Effusion", "Atelectasis"}
    assert split_labels("COVID-19; Pneumonia") == {"COVID-19", "Pneumonia"}
    assert split_labels("") == split_labels(None) == {"(none)"}
    y = np.array([[True, True, False], [True, False, False]])
    p = np.array([[1.0, 0.9, 0.1], [1.0, 0.9, 0.0]], dtype=np.float32)
    conf, margin, worst = confidence_and_margin(y, p)
    # the case carrying both labels its neighbours carry is fine; the one missing the second has a low
    # self-confidence on exactly that label, though no label it lacks beats the one it has (margin > 0.5)
    assert conf[0] == pytest.approx(0.9) and margin[0] == pytest.approx(0.9)
    assert conf[1] == pytest.approx(0.1) and worst[1] == 1 and margin[1] == pytest.approx(0.55)


def test_labels_zero_shot_margin_as_evidence(planted) -> None:  # type: ignore[no-untyped-def]
    data = planted.data
    label = "Effusion"
    has = np.array([label in c.split("|") for c in data.metadata["labels"]])
    pos = data.image_vectors[has].mean(axis=0)
    pos = pos / np.linalg.norm(pos)
    result = check_labels(data, "labels", prompts={label: (pos, -pos)})
    rows = result.table[result.table["zero_shot_label"] == label]
    assert len(rows) == has.sum() and rows["zero_shot_margin"].notna().all()
    assert result.table.loc[result.table["zero_shot_label"] == "", "zero_shot_margin"].isna().all()


def test_outliers_rank_random_images_first_and_compare_across_bundles(planted) -> None:  # type: ignore[no-untyped-def]
    result = check_outliers(planted.data, reference=planted.data)
    s = scored(result.table, planted.outliers)
    assert s.precision_at_k >= 0.9 and s.flagged_recall >= 0.9
    assert "reference_knn_distance" in result.table.columns
    # the same vectors in a bundle of different size get the same distance scale (absolute cosine distance)
    half = _subset(planted.data, np.arange(1500))
    d_half = check_outliers(half).table.set_index("id")["knn_distance"]
    d_full = result.table.set_index("id")["knn_distance"]
    common = d_half.index.intersection(list(planted.outliers))
    assert len(common) and np.allclose(d_half[common], d_full[common], atol=0.05)


def test_split_leakage_pairs(planted) -> None:  # type: ignore[no-untyped-def]
    result = check_split_leakage(planted.data, "split")
    s = scored(result.table, planted.duplicates)
    assert s.precision_at_k == 1.0 and s.flagged_recall == 1.0
    assert (result.table["split"] != result.table["other_split"]).all()
    assert result.summary["pairs"] == len(result.table)
    pairs = set(zip(result.table["id"], result.table["other_id"], strict=True))
    assert not any((b, a) in pairs for a, b in pairs)  # each pair listed once


def test_cross_bundle_leakage(planted) -> None:  # type: ignore[no-untyped-def]
    data = planted.data
    test_rows = np.flatnonzero(data.metadata["split"].to_numpy() == "test")
    train_rows = np.flatnonzero(data.metadata["split"].to_numpy() == "train")
    result = check_cross_bundle(_subset(data, test_rows), _subset(data, train_rows))
    assert set(result.table["id"]) == planted.duplicates
    assert (result.table["cosine"] >= 0.95).all() and result.summary["pairs"] == len(result.table)


def test_self_knn_drops_only_the_item_itself() -> None:
    vecs = np.eye(4, dtype=np.float32)[[0, 0, 1, 2, 3]]  # rows 0 and 1 are exact copies
    sims, neigh = self_knn(build_index(vecs, "flat")[0], vecs, 2)
    assert neigh.shape == (5, 2)
    assert all(i not in neigh[i] for i in range(5))
    assert neigh[0, 0] == 1 and neigh[1, 0] == 0 and sims[0, 0] == pytest.approx(1.0)


def test_label_check_rejects_unknown_column(planted) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="no label column 'nope'"):
        check_labels(planted.data, "nope")


def _subset(data: CurateData, rows: np.ndarray) -> CurateData:
    """The cases ``rows`` of ``data`` as their own corpus (new FAISS indexes)."""
    img = np.ascontiguousarray(data.image_vectors[rows])
    rep = np.ascontiguousarray(data.report_vectors[rows])
    return CurateData(name=f"{data.name}-{len(rows)}", ids=data.ids[rows],
                      metadata=data.metadata.iloc[rows].reset_index(drop=True), image_vectors=img,
                      image_index=build_index(img, "flat")[0], report_vectors=rep,
                      report_rows=np.arange(len(rows), dtype=np.int64), report_index=build_index(rep, "flat")[0])
