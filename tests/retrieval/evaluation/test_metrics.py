"""Hand-computed cases for :mod:`retrieval.evaluation.metrics` and :mod:`retrieval.evaluation.classification`."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cxr_explorer.retrieval.evaluation import classification, metrics

# 4x4 map with a hot 2x2 block at rows 1-2, columns 1-2, i.e. the box (x=1, y=1, w=2, h=2)
GRID = np.array(
    [
        [0.1, 0.2, 0.0, 0.1],
        [0.3, 0.9, 0.7, 0.0],
        [0.2, 0.8, 0.6, 0.1],
        [0.0, 0.1, 0.2, 0.3],
    ]
)
BOX = (1.0, 1.0, 2.0, 2.0)


def test_box_mask_integer_float_and_union() -> None:
    mask = metrics.box_mask(4, 5, [(1, 1, 2, 2)])
    expected = np.zeros((4, 5), bool)
    expected[1:3, 1:3] = True
    np.testing.assert_array_equal(mask, expected)
    # x in [0.6, 2.4): of the pixel centres 0.5, 1.5, 2.5 only 1.5 is inside -> column 1 only
    np.testing.assert_array_equal(metrics.box_mask(1, 4, [(0.6, 0, 1.8, 1)])[0], [False, True, False, False])
    union = metrics.box_mask(3, 3, [(0, 0, 1, 1), (2, 2, 5, 5)])  # second box clipped to the image
    assert union.sum() == 2 and union[0, 0] and union[2, 2]


def test_cnr_hand_computed_on_4x4_grid() -> None:
    inside = [0.9, 0.7, 0.8, 0.6]  # mean 0.75, population variance (0.15^2 * 2 + 0.05^2 * 2) / 4 = 0.0125
    outside_sum, outside_sq = 1.6, 0.34  # the 12 other values: sum and sum of squares
    var_abar = outside_sq / 12 - (outside_sum / 12) ** 2
    expected = (0.75 - outside_sum / 12) / math.sqrt(0.0125 + var_abar)
    assert np.mean(inside) == pytest.approx(0.75) and np.var(inside) == pytest.approx(0.0125)
    assert metrics.cnr(GRID, metrics.box_mask(4, 4, [BOX])) == pytest.approx(expected)
    assert expected == pytest.approx(4.0612, abs=1e-4)


def test_cnr_is_symmetric_in_sign() -> None:
    mask = metrics.box_mask(4, 4, [BOX])
    assert metrics.cnr(-GRID, mask) == pytest.approx(metrics.cnr(GRID, mask))


def test_cnr_with_zero_variance() -> None:
    mask = metrics.box_mask(6, 6, [(2, 2, 2, 2)])
    assert metrics.cnr(mask.astype(float), mask) == math.inf  # box exactly on the hot region
    assert metrics.cnr(np.full((6, 6), 0.3), mask) == 0.0  # flat map: equal means


def test_flat_map_miou_is_box_iou_with_whole_image_below_the_flat_value() -> None:
    mask = metrics.box_mask(10, 10, [(0, 0, 5, 4)])  # 20 of 100 pixels
    flat = np.full((10, 10), 0.25)
    ious = [metrics.iou_at(flat, mask, t) for t in metrics.DEFAULT_THRESHOLDS]
    assert ious == pytest.approx([0.2, 0.2, 0.0, 0.0, 0.0])
    assert metrics.miou(flat, mask) == pytest.approx(2 / 5 * 0.2)


def test_miou_hand_example() -> None:
    mask = metrics.box_mask(4, 4, [BOX])
    # > 0.1: 9 pixels incl. the 4 box pixels; > 0.2: 6; > 0.3, 0.4, 0.5: exactly the box
    ious = [metrics.iou_at(GRID, mask, t) for t in metrics.DEFAULT_THRESHOLDS]
    assert ious == pytest.approx([4 / 9, 4 / 6, 1.0, 1.0, 1.0])
    assert metrics.miou(GRID, mask) == pytest.approx((4 / 9 + 4 / 6 + 3) / 5)


def test_nan_pixels_are_excluded_from_both_regions() -> None:
    padded = np.full((6, 8), np.nan)
    padded[1:5, 2:6] = GRID
    mask = metrics.box_mask(6, 8, [(3, 2, 2, 2)])  # the same box, shifted with the grid
    assert metrics.cnr(padded, mask) == pytest.approx(metrics.cnr(GRID, metrics.box_mask(4, 4, [BOX])))
    assert metrics.miou(padded, mask) == pytest.approx(metrics.miou(GRID, metrics.box_mask(4, 4, [BOX])))
    # a box partly in the NaN margin only counts its valid pixels
    wide = metrics.box_mask(6, 8, [(0, 2, 5, 2)])
    inside = metrics.iou_at(GRID, metrics.box_mask(4, 4, [(0, 1, 3, 2)]), 0.5)
    assert metrics.iou_at(padded, wide, 0.5) == pytest.approx(inside)
    assert math.isnan(metrics.cnr(padded, metrics.box_mask(6, 8, [(0, 0, 1, 1)])))  # box entirely in the NaN margin


def test_shape_mismatch_raises() -> None:
    with pytest.raises(ValueError):
        metrics.cnr(GRID, np.zeros((3, 3), bool))


def test_bootstrap_ci_contains_mean_and_is_deterministic() -> None:
    values = np.random.default_rng(1).normal(2.0, 1.0, size=200)
    est, lo, hi = metrics.bootstrap_ci(values, seed=7)
    assert est == pytest.approx(values.mean()) and lo < est < hi
    assert (est, lo, hi) == metrics.bootstrap_ci(values, seed=7)
    assert (lo, hi) != metrics.bootstrap_ci(values, seed=8)[1:]
    assert hi - lo == pytest.approx(2 * 1.96 / math.sqrt(200), rel=0.25)  # ~ normal-theory width
    med = metrics.bootstrap_ci(values, n_boot=200, stat=np.median)
    assert med[0] == pytest.approx(np.median(values)) and med[1] <= med[0] <= med[2]
    assert all(math.isnan(v) for v in metrics.bootstrap_ci([]))


def test_summarise_by_class() -> None:
    records = [
        metrics.GroundingRecord("Pneumonia", 1.0, 0.2),
        metrics.GroundingRecord("Pneumonia", 3.0, 0.4),
        metrics.GroundingRecord("Edema", 2.0, 0.6),
        metrics.GroundingRecord("Edema", float("nan"), 0.8),
    ]
    summary = metrics.summarise_by_class(records, n_boot=200)
    assert list(summary["per_class"]) == ["Edema", "Pneumonia"]
    pneumonia = summary["per_class"]["Pneumonia"]
    assert pneumonia["cnr"].value == pytest.approx(2.0) and pneumonia["cnr"].n == 2
    assert pneumonia["cnr"].lo <= 2.0 <= pneumonia["cnr"].hi
    assert summary["per_class"]["Edema"]["cnr"].n == 1  # the NaN CNR is left out
    assert summary["overall"]["cnr"].value == pytest.approx(2.0) and summary["overall"]["miou"].n == 4
    assert summary["class_mean"]["miou"] == pytest.approx((0.3 + 0.7) / 2)


def test_accuracy_and_f1() -> None:
    y, p = [1, 0, 1, 1, 0], [1, 1, 0, 1, 0]  # TP 2, FP 1, FN 1, TN 1
    assert classification.accuracy(y, p) == pytest.approx(3 / 5)
    assert classification.f1_score(y, p) == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    assert classification.f1_score([0, 0], [0, 0]) == 0.0
    np.testing.assert_array_equal(classification.predict_from_scores([0.2, -0.1, 0.0]), [1, 0, 0])
    with pytest.raises(ValueError):
        classification.accuracy([1, 2], [1, 0])


def test_auroc_with_ties_and_hand_examples() -> None:
    assert classification.auroc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    # pairs (pos, neg): (0.5, 0.5) tie = 1/2, (0.5, 0.2), (0.9, 0.5), (0.9, 0.2) -> 3.5 / 4
    assert classification.auroc([0, 1, 0, 1], [0.5, 0.5, 0.2, 0.9]) == pytest.approx(0.875)
    assert classification.auroc([1, 0, 1, 0], [0.3, 0.3, 0.3, 0.3]) == pytest.approx(0.5)
    assert classification.auroc([1, 1, 0], [0.1, 0.2, 0.9]) == 0.0
    with pytest.raises(ValueError):
        classification.auroc([1, 1], [0.2, 0.3])


def test_auroc_matches_pairwise_count_and_sklearn_if_present() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, size=60)
    s = np.round(rng.normal(size=60), 1)  # rounding creates many ties
    pos, neg = s[y == 1], s[y == 0]
    pairwise = ((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) / (pos.size * neg.size)
    assert classification.auroc(y, s) == pytest.approx(pairwise)
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    assert classification.auroc(y, s) == pytest.approx(sklearn_metrics.roc_auc_score(y, s))


def test_recall_at_k() -> None:
    ranked = [["a", "b", "c"], ["d", "e", "f"], ["g", "h", "i"]]
    relevant = [{"b"}, {"f", "x"}, set()]  # third query has nothing relevant and is skipped
    assert classification.recall_at_k(ranked, relevant, k=1) == 0.0
    assert classification.recall_at_k(ranked, relevant, k=2) == pytest.approx(0.5)
    assert classification.recall_at_k(ranked, relevant, k=3) == pytest.approx(1.0)
    assert classification.recall_at_k(ranked, relevant, k=3, mode="fraction") == pytest.approx((1 + 0.5) / 2)
    assert math.isnan(classification.recall_at_k([["a"]], [set()], k=1))


def test_precision_at_k_by_label() -> None:
    labels = {"i1": {"pneumonia"}, "i2": {"edema"}, "i3": {"pneumonia", "edema"}}
    ranked = [["i1", "i2", "i3"], ["i3", "i1"], ["i2", "i9"]]
    result = classification.precision_at_k_by_label(ranked, ["pneumonia", "pneumonia", "edema"], labels, k=2)
    assert result == pytest.approx({"pneumonia": (1 / 2 + 2 / 2) / 2, "edema": 1 / 2})
    assert classification.precision_at_k_by_label([["i1"]], ["pneumonia"], labels, k=4) == {"pneumonia": 0.25}
