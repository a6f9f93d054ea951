"""Plumbing of the evaluation runner, CSV adapters and ``cxr-explorer eval`` (the metric maths is tested in
test_metrics.py): synthetic maps with hand-computed answers, tiny-random smoke runs, a synthetic paired bundle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from cxr_explorer.cli import main
from cxr_explorer.retrieval.bundle.reader import Bundle
from cxr_explorer.retrieval.evaluation import datasets, runner
from tests.helpers.bundles import jpeg, write_test_bundle

D_EMB = 128


def _png(path: Path, size: tuple[int, int] = (64, 48)) -> Path:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0]), dtype=np.uint8), mode="L").save(path)
    return path


def _mscxr_csv(tmp_path: Path) -> Path:
    rows = [  # two boxes for one phrase, one box for another phrase on the same image, a second image
        ("img0", "images/img0.png", "left opacity", "Lung Opacity", 4, 6, 10, 12, 64, 48),
        ("img0", "images/img0.png", "left opacity", "Lung Opacity", 30, 6, 8, 8, 64, 48),
        ("img0", "images/img0.png", "effusion", "Pleural effusion", 2, 30, 20, 10, 64, 48),
        ("img1", "images/img1.png", "heart", "Cardiomegaly", 20, 20, 16, 16, 32, 24),
    ]
    cols = ["dicom_id", "path", "label_text", "category_name", "x", "y", "w", "h", "image_width", "image_height"]
    (tmp_path / "images").mkdir(exist_ok=True)
    _png(tmp_path / "images" / "img0.png")
    _png(tmp_path / "images" / "img1.png")
    csv = tmp_path / "ann.csv"
    pd.DataFrame(rows, columns=cols).to_csv(csv, index=False)
    return csv


def test_mscxr_reader_groups_boxes(tmp_path: Path) -> None:
    cases = datasets.read_grounding_cases(_mscxr_csv(tmp_path))
    assert [(c.key, c.phrase, len(c.boxes)) for c in cases] == [("img0", "left opacity", 2), ("img0", "effusion", 1),
                                                               ("img1", "heart", 1)]
    assert cases[0].boxes[1] == (30.0, 6.0, 8.0, 8.0) and cases[0].size == (64, 48)
    assert cases[0].image == tmp_path / "images" / "img0.png" and cases[0].finding == "Lung Opacity"


def test_covid_boxes_adapter(tmp_path: Path) -> None:
    pd.DataFrame({"image_id": ["a", "a"], "label": ["Right Lung", "Left Lung"], "x": [1.5, 20.0], "y": [2.0, 3.0],
                  "w": [10.0, 12.0], "h": [30.0, 28.0], "box_source": ["s", "s"]}).to_csv(tmp_path / "boxes.csv")
    pd.DataFrame({"image_id": ["a"], "image_file": ["images/a.jpg"], "labels": ["COVID-19"], "width": [40],
                  "height": [50]}).to_csv(tmp_path / "reports.csv", index=False)
    frame = datasets.grounding_frame(tmp_path / "boxes.csv")
    assert set(datasets.MSCXR_COLUMNS) <= set(frame.columns)
    cases = datasets.read_grounding_cases(tmp_path / "boxes.csv")
    assert [(c.phrase, c.finding, c.size) for c in cases] == [("right lung", "Right Lung", (40, 50)),
                                                              ("left lung", "Left Lung", (40, 50))]
    assert cases[0].image == tmp_path / "images" / "a.jpg" and cases[0].boxes == ((1.5, 2.0, 10.0, 30.0),)


def test_unknown_annotation_format(tmp_path: Path) -> None:
    pd.DataFrame({"a": [1]}).to_csv(tmp_path / "x.csv", index=False)
    with pytest.raises(datasets.AnnotationError, match="neither MS-CXR"):
        datasets.grounding_frame(tmp_path / "x.csv")
    with pytest.raises(datasets.AnnotationError, match="does not exist"):
        datasets.grounding_frame(tmp_path / "missing.csv")


def test_scale_boxes() -> None:
    assert datasets.scale_boxes(((1.0, 2.0, 3.0, 4.0),), (10, 20), (20, 10)) == ((2.0, 1.0, 6.0, 2.0),)
    boxes = ((1.0, 2.0, 3.0, 4.0),)
    assert datasets.scale_boxes(boxes, None, (5, 5)) is boxes and datasets.scale_boxes(boxes, (5, 5), (5, 5)) is boxes


class _MapSource:
    """Stands in for EmbeddingSource; ``grounding_map`` is patched to return known maps."""

    from_bundle = 0
    forwards = 0


def _known_map(height: int, width: int, box: tuple[int, int, int, int]) -> np.ndarray:
    """Inside the box a 0.6 / 0.8 checkerboard, outside 0.0 / 0.05, a NaN first column (outside the crop)."""
    x, y, w, h = box
    checker = (np.add.outer(np.arange(height), np.arange(width)) % 2).astype(bool)
    sim = np.where(checker, 0.05, 0.0)
    inside = np.where(checker, 0.8, 0.6)
    sim[y:y + h, x:x + w] = inside[y:y + h, x:x + w]
    sim[:, 0] = np.nan
    return sim


def test_grounding_known_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    # Map 20x20; boxes annotated on a 10x10 image -> doubled. Inside: mean 0.7, var 0.01; outside: mean 0.025,
    # var 0.000625 -> CNR = 0.675 / sqrt(0.010625) = 6.5485; every threshold 0.1..0.5 selects exactly the box: mIoU 1.
    box_small, box_map = (2, 3, 4, 5), (4, 6, 8, 10)
    monkeypatch.setattr(runner, "grounding_map", lambda source, case, interp: _known_map(20, 20, box_map))
    cases = [datasets.GroundingCase("k0", Path("x.png"), "p", "A", (box_small,), (10, 10)),
             datasets.GroundingCase("k1", Path("y.png"), "q", "B", (box_map,), (20, 20))]
    res = runner.evaluate_grounding(_MapSource(), cases, n_boot=50, keep_records=True)  # type: ignore[arg-type]
    expected = 0.675 / np.sqrt(0.01 + 0.000625)
    assert res["pairs"] == 2 and res["boxes_rescaled_pairs"] == 1 and res["interpolation"] == "bilinear"
    for rec in res["records"]:
        assert rec["cnr"] == pytest.approx(expected, rel=1e-9) and rec["miou"] == pytest.approx(1.0)
    assert res["per_class"]["A"]["cnr"]["value"] == pytest.approx(expected)
    assert res["overall"]["miou"]["n"] == 2 and res["class_mean"]["cnr"] == pytest.approx(expected)
    assert res["thresholds"] == [0.1, 0.2, 0.3, 0.4, 0.5]


def test_grounding_tiny_random_end_to_end(tmp_path: Path) -> None:
    from cxr_explorer.retrieval.models import load_model

    source = runner.EmbeddingSource(load_model("tiny-random", device="cpu"))
    cases = datasets.read_grounding_cases(_mscxr_csv(tmp_path))
    cases.append(datasets.GroundingCase("gone", tmp_path / "missing.png", "p", "X", ((0, 0, 4, 4),), None))
    res = runner.evaluate_grounding(source, cases, interpolation="nearest", n_boot=20)
    assert res["pairs"] == 3 and len(res["skipped"]) == 1 and res["skipped"][0]["key"] == "gone"
    assert res["image_forwards"] == 2  # one forward per image, reused for its second phrase
    assert res["boxes_rescaled_pairs"] == 1  # img1 annotated at 32x24, decoded at 64x48
    assert np.isfinite(res["overall"]["cnr"]["value"]) and res["interpolation"] == "nearest"
    sim = runner.grounding_map(source, cases[0], "bilinear")
    assert sim.shape == (48, 64) and np.isnan(sim).any()  # original size, NaN outside the centre crop


class _FakeModel:
    """Prompts containing 'no' embed to e1, others to e0; used for zero-shot plumbing."""

    def embed_texts(self, texts: list[str], normalize: bool = True) -> torch.Tensor:
        out = torch.zeros(len(texts), D_EMB)
        for i, t in enumerate(texts):
            out[i, 1 if "no" in t.lower().split() else 0] = 2.0
        return out


class _GlobalSource:
    def __init__(self, embs: dict[str, np.ndarray]) -> None:
        self.model, self.embs, self.from_bundle, self.forwards = _FakeModel(), embs, 0, 0

    def image(self, key: str, image: Path) -> tuple[np.ndarray, np.ndarray, int, int]:
        if key not in self.embs:
            raise FileNotFoundError(image)
        return np.zeros((1, 1, D_EMB), np.float32), self.embs[key], 1, 1


def test_zeroshot_known_answer() -> None:
    e0, e1 = np.eye(D_EMB, dtype=np.float32)[0], np.eye(D_EMB, dtype=np.float32)[1]
    mixed = (0.6 * e0 + 0.8 * e1).astype(np.float32)  # margin 0.6 - 0.8 < 0 -> predicted negative, but label 1
    items = [datasets.LabelledImage("a", Path("a"), 1, "P"), datasets.LabelledImage("b", Path("b"), 0, "N"),
             datasets.LabelledImage("c", Path("c"), 1, "P"), datasets.LabelledImage("d", Path("d"), 0, "N")]
    source = _GlobalSource({"a": e0, "b": e1, "c": mixed})
    res = runner.evaluate_zeroshot(source, items, positive=["pneumonia"], negative=["no pneumonia"])  # type: ignore[arg-type]
    # scored: a (1, +1), b (0, -1), c (1, -0.2); d is missing -> skipped
    assert res["images"] == 3 and len(res["skipped"]) == 1
    assert res["accuracy"] == pytest.approx(2 / 3) and res["f1"] == pytest.approx(2 / 3)
    assert res["auroc"] == pytest.approx(1.0)  # both positives score above the negative


def test_labels_reader_rules(tmp_path: Path) -> None:
    pd.DataFrame({"image_id": ["a", "b", "c"], "image_file": ["i/a.png", "i/b.png", "i/c.png"],
                  "labels": ["COVID-19", "No Finding", "Streptococcus"]}).to_csv(tmp_path / "r.csv", index=False)
    items, rule = datasets.read_labelled_images(tmp_path / "r.csv")
    assert [i.label for i in items] == [1, 0, 1] and rule["negative_match"] == datasets.COVID_NEGATIVE
    assert items[0].image == tmp_path / "i/a.png" and items[0].key == "a"
    items, _ = datasets.read_labelled_images(tmp_path / "r.csv", positive_match="strep")
    assert [i.label for i in items] == [0, 0, 1]
    assert list(datasets.binarise(pd.Series(["1", "0", "true"]), None, None)) == [1, 0, 1]
    with pytest.raises(datasets.AnnotationError, match="not 0/1"):
        datasets.binarise(pd.Series(["yes"]), None, None)


def _paired_bundle(root: Path, n: int = 12) -> Path:
    rng = np.random.default_rng(0)
    img = rng.normal(size=(n, D_EMB)).astype(np.float32)
    img /= np.linalg.norm(img, axis=1, keepdims=True)
    rep = img + 0.05 * rng.normal(size=img.shape).astype(np.float32)  # own report is by far the closest
    rep /= np.linalg.norm(rep, axis=1, keepdims=True)
    meta = pd.DataFrame({"id": [f"c{i}" for i in range(n)], "path": [f"c{i}.png" for i in range(n)],
                         "report": [f"report {i}" for i in range(n)],
                         "finding": ["effusion;edema" if i % 3 == 0 else "normal" for i in range(n)]})
    patches = np.zeros((n, 2, 2, D_EMB), np.float16)
    return write_test_bundle(root, grid_shape=(2, 2), build={}, index_type="flat", metadata=meta,
                             sentences=pd.DataFrame({"row": [], "text": []}), image_emb=img, report_emb=rep,
                             report_rows=np.arange(n), sentence_emb=np.zeros((0, D_EMB), np.float32),
                             patches=patches, thumbnails=[jpeg(100, (8, 8))] * n, skipped=[])


def test_retrieval_paired_bundle(tmp_path: Path) -> None:
    bundle = Bundle.open(_paired_bundle(tmp_path / "b"))
    res = runner.evaluate_retrieval(bundle, ks=(1, 5), label_column="finding")
    assert res["image_to_report"] == {"R@1": 1.0, "R@5": 1.0} and res["report_to_image"]["R@1"] == 1.0
    p = res["precision_by_label"]["report_to_image"]
    # each "effusion" query's top-1 is itself (labelled effusion); P@5 <= 1 and >= 1/5
    assert p["P@1"]["effusion"] == 1.0 and p["P@1"]["normal"] == 1.0 and 0.2 <= p["P@5"]["edema"] <= 1.0
    with pytest.raises(ValueError, match="no metadata column"):
        runner.evaluate_retrieval(bundle, label_column="nope")


def test_cli_eval(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "g.json"
    code = main(["eval", "grounding", "tiny-random", "--annotations", str(_mscxr_csv(tmp_path)), "--n-boot", "20",
                 "--json", "--out", str(out)])
    printed = json.loads(capsys.readouterr().out)
    assert code == 0 and json.loads(out.read_text()) == printed
    assert printed["model"]["name"] == "tiny-random" and printed["model"]["is_real"] is False
    assert printed["task"] == "grounding" and printed["interpolation"] == "bilinear"
    assert set(printed["overall"]) == {"cnr", "miou"}
    bundle = _paired_bundle(tmp_path / "b")
    assert main(["eval", "retrieval", str(bundle), "--k", "1", "--label-column", "finding"]) == 0
    assert "image_to_report: R@1 1.000" in capsys.readouterr().out


def test_cli_eval_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "grounding", "tiny-random", "--annotations", str(tmp_path / "none.csv")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["eval", "zeroshot", "no-such-model", "--labels", str(tmp_path / "x.csv")]) == 2
    assert "unknown model" in capsys.readouterr().err
    assert main(["eval", "retrieval", str(tmp_path / "nobundle")]) == 2
