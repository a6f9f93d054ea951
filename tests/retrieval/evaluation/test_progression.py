"""``eval progression``: the metric maths on hand-checkable codes, and the command on a hand-made CSV whose labels
are chosen against the model's own predictions, so every accuracy is known in advance."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxr_explorer.cli import main
from cxr_explorer.retrieval.engine.query_cache import QueryEncoder
from cxr_explorer.retrieval.evaluation.progression import _acc, macro_accuracy, read_progression_cases
from cxr_explorer.retrieval.inputs.images import load_image
from cxr_explorer.retrieval.models import load_model
from cxr_explorer.retrieval.temporal.interval import CLASSES, encode_pair, interval_change
from tests.helpers.synthetic import draw_image


def _codes(pairs: list[tuple[str, str]]) -> np.ndarray:
    return np.array([CLASSES.index(t) * 3 + CLASSES.index(p) for t, p in pairs])


def test_accuracy_and_macro_accuracy_by_hand() -> None:
    codes = _codes([("stable", "stable"), ("stable", "stable"), ("stable", "stable"), ("worsening", "stable")])
    assert _acc(codes) == 0.75
    assert macro_accuracy(codes) == 0.5  # stable recall 1, worsening recall 0; improving absent from the truth
    assert macro_accuracy(_codes([("improving", "improving"), ("worsening", "stable")])) == 0.5


def test_wide_format_and_unknown_labels(tmp_path: Path) -> None:
    pd.DataFrame({"current": ["a.png", "b.png"], "prior": ["p.png", "q.png"],
                  "pleural_effusion_progression": ["Worsened", ""], "edema_progression": ["stable", "maybe"]}
                 ).to_csv(tmp_path / "w.csv", index=False)
    cases, skipped = read_progression_cases(tmp_path / "w.csv")
    assert {(c.current.name, c.finding, c.label) for c in cases} == {("a.png", "pleural effusion", "worsening"),
                                                                      ("a.png", "edema", "stable")}
    assert skipped[0]["reason"] == "unknown-label" and "'maybe'" in skipped[0]["detail"]


@pytest.mark.slow  # tiny BioViL-T forwards over 5 image pairs, then the eval command with a bootstrap
def test_eval_progression_on_known_answers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = load_model("tiny-random-t", device="cpu")
    encoder = QueryEncoder(model)
    for i in range(5):
        draw_image(10 + i, 90, 100).save(tmp_path / f"i{i}.png")
    (tmp_path / "broken.png").write_bytes(b"not an image")
    pairs = [("i1.png", "i0.png"), ("i2.png", "i1.png"), ("i3.png", "i2.png"), ("i4.png", "i3.png")]
    rows = []
    for finding in ("pneumonia", "edema"):
        for n, (cur, prior) in enumerate(pairs):
            emb = encode_pair(model, load_image(tmp_path / cur).image, load_image(tmp_path / prior).image)
            (change,) = interval_change(encoder, emb.global_emb[0], (finding,))
            wrong = next(c for c in CLASSES if c != change.predicted)
            rows.append({"current": cur, "prior": prior, "finding": finding,
                         "label": change.predicted if n < 3 or finding == "edema" else wrong})
    rows.append({"current": "broken.png", "prior": "i0.png", "finding": "edema", "label": "stable"})
    pd.DataFrame(rows).to_csv(tmp_path / "pairs.csv", index=False)
    assert main(["eval", "progression", "tiny-random-t", "--pairs", str(tmp_path / "pairs.csv"), "--n-boot", "50",
                 "--device", "cpu", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["pairs"] == 8 and res["image_pairs"] == 5
    assert res["per_finding"]["edema"]["accuracy"]["value"] == 1.0
    assert res["per_finding"]["pneumonia"]["accuracy"]["value"] == 0.75
    lo, hi = res["per_finding"]["pneumonia"]["accuracy"]["lo"], res["per_finding"]["pneumonia"]["accuracy"]["hi"]
    assert 0.0 <= lo <= 0.75 <= hi <= 1.0
    assert res["overall"]["accuracy"]["value"] == 7 / 8
    assert [s["reason"] for s in res["skipped"]] == ["unreadable"]
    assert main(["eval", "progression", "tiny-random", "--pairs", str(tmp_path / "pairs.csv")]) != 0
