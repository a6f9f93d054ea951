"""Priors and the temporal stage: pairing by column or by patient + order, reasons for bad priors, BioViL-T's fused
embedding stored beside the single-image one (tiny-random-t), exactly-once resume, and interval-change queries."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from cxr_explorer.cli import main
from cxr_explorer.index.corpus import CorpusOptions, read_corpus
from cxr_explorer.index.presets import CorpusError
from cxr_explorer.index.priors import PriorOptions, covid_day, find_priors, parse_order
from cxr_explorer.index.runner import BuildConfig, run_build
from cxr_explorer.retrieval.bundle.reader import Bundle
from cxr_explorer.retrieval.bundle.store import BuildArea, current_version
from cxr_explorer.retrieval.bundle.store.temporal import TemporalRecords
from cxr_explorer.retrieval.engine.engine import Engine
from cxr_explorer.retrieval.engine.filters import QueryError
from cxr_explorer.retrieval.engine.query_cache import QueryEncoder
from cxr_explorer.retrieval.inputs.images import load_image
from cxr_explorer.retrieval.models import VLModel, load_model
from cxr_explorer.retrieval.temporal.compare import compare_case, compare_images, search_pair, timeline
from cxr_explorer.retrieval.temporal.interval import CLASSES, FINDINGS, encode_pair, interval_change
from tests.helpers.paths import COVID_CORPUS, REPO
from tests.helpers.seeded_models import real_size_model
from tests.helpers.synthetic import draw_image


@lru_cache(maxsize=1)
def tiny_t() -> VLModel:
    """The synthetic BioViL-T-shaped model (temporal pooler included), loaded once."""
    return load_model("tiny-random-t", device="cpu")


def _write_corpus(root: Path) -> Path:
    """Patient A: days 0, 2, 5 (two images on day 5); patient B: day 1 and a corrupt day-3 image; C: one image.
    Column ``prior`` names priors by hand: a missing one, a self reference, an empty cell."""
    root.mkdir(parents=True, exist_ok=True)
    rows = [("a0", "A", "covid_pA_d0", ""), ("a2", "A", "covid_pA_d2", "a0"), ("a5", "A", "covid_pA_d5", "a2"),
            ("a5b", "A", "covid_pA_d5", "nope"), ("b1", "B", "covid_pB_d1", "b1"), ("b3", "B", "covid_pB_d3", "b1"),
            ("c0", "C", "covid_pC_dna", "")]
    for i, (name, *_rest) in enumerate(rows):
        if name == "b1":
            (root / f"{name}.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
        else:
            draw_image(i, 96, 80).save(root / f"{name}.png")
    table = pd.DataFrame([{"image_path": f"{n}.png", "image_id": n, "patient_id": p, "study": s, "prior": q,
                           "report": f"study {n}"} for n, p, s, q in rows])
    table.to_csv(root / "corpus.csv", index=False)
    return root / "corpus.csv"


def test_order_values() -> None:
    assert covid_day("covid_p2_d3") == 3.0 and covid_day("covid_p324b_d11") == 11.0
    assert parse_order("7") == 7.0 and parse_order("2020-01-02") > parse_order("2020-01-01")
    with pytest.raises(ValueError):
        covid_day("covid_p5_dna")


def test_priors_by_patient_and_order(tmp_path: Path) -> None:
    csv = _write_corpus(tmp_path / "c")
    corpus = read_corpus(csv, CorpusOptions(id_col="image_id"))
    links = find_priors(corpus, PriorOptions(patient_col="patient_id", order_col="study"),
                        CorpusOptions(id_col="image_id"))
    got = {k: (v.status, v.prior_id) for k, v in links.items()}
    assert got == {"a0": ("no-prior", None), "a2": ("paired", "a0"), "a5": ("paired", "a2"),
                   "a5b": ("paired", "a2"), "b1": ("no-prior", None), "b3": ("paired", "b1"),
                   "c0": ("bad-order", None)}
    assert "patient_id" not in corpus.items[0].metadata  # used for pairing only, never stored


def test_priors_by_column_report_missing_and_self(tmp_path: Path) -> None:
    csv = _write_corpus(tmp_path / "c")
    opts = CorpusOptions(id_col="image_id")
    links = find_priors(read_corpus(csv, opts), PriorOptions(prior_col="prior"), opts)
    assert (links["a2"].status, links["a2"].prior_id) == ("paired", "a0")
    assert links["a5b"].status == "missing" and "'nope'" in links["a5b"].detail
    assert links["b1"].status == "self" and links["a0"].status == "no-prior"
    with pytest.raises(CorpusError, match="no column 'previous' for --prior-col"):
        find_priors(read_corpus(csv, opts), PriorOptions(prior_col="previous"), opts)


def _build(csv: Path, out: Path, priors: PriorOptions) -> object:
    cfg = BuildConfig(corpus=csv, out=out, model="tiny-random-t", corpus_options=CorpusOptions(id_col="image_id"),
                      device="cpu", workers=1, progress="none", priors=priors)
    return run_build(cfg, model=tiny_t())


@pytest.fixture(scope="module")
def pairs_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("priors")
    csv = _write_corpus(root / "c")
    summary = _build(csv, root / "bundle", PriorOptions(patient_col="patient_id", order_col="study"))
    assert summary.temporal is not None and summary.temporal.embedded  # type: ignore[attr-defined]
    return root / "bundle"


@pytest.mark.slow  # reads the BioViL-T pairs bundle, built once per module
def test_build_stores_fused_embeddings_and_reasons(pairs_bundle: Path) -> None:
    opened = Bundle.open(pairs_bundle)
    section = opened.manifest["temporal"]
    assert section["priors"]["patient_col"] == "patient_id" and section["embedded"]
    # b1 is corrupt: skipped by the build, so b3's prior is unreadable; c0's day is not recorded
    assert section["by_status"] == {"bad-order": 1, "no-prior": 1, "paired": 3, "unreadable": 1}
    records = TemporalRecords.open(opened.folder)
    assert records is not None and records.embeddings.shape == (3, 128)
    status, detail = records.status_of("b3")
    assert status == "unreadable" and "'b1'" in detail and "skipped" in detail
    assert not BuildArea(pairs_bundle).exists() and opened.version == 1 and opened.verify() == []
    model, root = tiny_t(), pairs_bundle.parent / "c"
    for cur, prior in (("a2", "a0"), ("a5", "a2"), ("a5b", "a2")):
        assert records.prior_of(cur) == prior
        direct = encode_pair(model, load_image(root / f"{cur}.png").image, load_image(root / f"{prior}.png").image)
        stored = records.embedding(cur)
        assert stored is not None and np.abs(stored - direct.global_emb[0].numpy()).max() < 1e-6
    single = Bundle.open(pairs_bundle).vectors("images")
    assert np.abs(records.embedding("a2") - single[1]).max() > 1e-4  # fused differs from the single-image one


@pytest.mark.slow  # reads the BioViL-T pairs bundle, built once per module
def test_timeline_follows_prior_links(pairs_bundle: Path) -> None:
    engine = Engine.open(pairs_bundle, model=tiny_t())
    assert timeline(engine, "a5") == ["a0", "a2", "a5", "a5b"]
    assert timeline(engine, "c0") == ["c0"]


@pytest.mark.slow  # a build in a fresh process, killed, then run again
def test_temporal_stage_resumes_exactly_once(pairs_bundle: Path, tmp_path: Path) -> None:
    """A build killed (a real SIGKILL) after its first temporal chunk: nothing is installed, and the same command
    embeds only the other pairs, each once, with the vectors of an uninterrupted build."""
    csv = pairs_bundle.parent / "c" / "corpus.csv"
    out = tmp_path / "b"
    argv = ["build", str(csv), "--out", str(out), "--model", "tiny-random-t", "--id-col", "image_id", "--device",
            "cpu", "--workers", "0", "--threads", "1", "--progress", "none", "--patient-col", "patient_id",
            "--order-col", "study", "--precision", "fp32"]
    run = subprocess.run([sys.executable, "-m", "tests.helpers.killpoint", "temporal", "1", "--", *argv],
                         cwd=REPO, capture_output=True, text=True, timeout=600)
    assert run.returncode == -signal.SIGKILL, run.stderr[-2000:]
    assert current_version(out) is None and BuildArea(out).temporal_chunks.is_dir()
    again = subprocess.run([sys.executable, "-m", "cxr_explorer", *argv], cwd=REPO, capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "embedded 2 pairs in this run" in again.stdout  # 3 pairs, 1 committed before the kill
    assert main([*argv[:3], str(tmp_path / "clean"), *argv[4:]]) == 0  # the same build, uninterrupted
    a, b = Bundle.open(out), Bundle.open(tmp_path / "clean")
    ra, rb = TemporalRecords.open(a.folder), TemporalRecords.open(b.folder)
    assert ra is not None and rb is not None and a.manifest["temporal"]["by_status"] == b.manifest["temporal"][
        "by_status"]
    for item_id in ("a2", "a5", "a5b"):
        ea, eb = ra.embedding(item_id), rb.embedding(item_id)
        assert ea is not None and eb is not None
        np.testing.assert_allclose(ea, eb, atol=1e-5)


@pytest.mark.slow  # reads the BioViL-T pairs bundle, built once per module
def test_compare_case_and_uploads_agree(pairs_bundle: Path) -> None:
    engine = Engine.open(pairs_bundle, model=tiny_t())
    root = pairs_bundle.parent / "c"
    stored = compare_case(engine, "a5")
    computed = compare_images(engine, root / "a5.png", (root / "a2.png").read_bytes())
    assert stored.source == "stored" and computed.source == "computed" and stored.prior_id == "a2"
    assert np.abs(stored.global_emb - computed.global_emb).max() < 1e-6
    assert [c.finding for c in stored.changes] == list(FINDINGS)
    for c in stored.changes:
        best = max(c.scores.values())
        assert c.predicted in CLASSES and c.scores[c.predicted] == best
        assert c.margin == pytest.approx(best - sorted(c.scores.values())[-2]) and c.margin >= 0
    hits = search_pair(engine, root / "a5.png", root / "a2.png", k=3)
    assert len(hits) == 3 and hits[0].score >= hits[-1].score
    with pytest.raises(QueryError, match="no prior in this bundle"):
        compare_case(engine, "a0")


def test_interval_scores_average_unnormalised_prompts() -> None:
    """Each class score is the cosine with the normalised mean of that class's unnormalised prompt embeddings."""
    from cxr_explorer.retrieval.grounding.maps import global_prompt_score
    from cxr_explorer.retrieval.temporal.interval import interval_prompts

    model = tiny_t()
    emb = torch.nn.functional.normalize(torch.randn(128, generator=torch.Generator().manual_seed(0)), dim=0)
    (change,) = interval_change(QueryEncoder(model), emb, ("pleural effusion",))
    prompts = interval_prompts("pleural effusion")
    assert prompts["worsening"][0] == "Worsening pleural effusion" and len(set(prompts["stable"])) == 4
    for cls in CLASSES:
        direct = global_prompt_score(emb, model.embed_texts(list(prompts[cls]), normalize=False))
        assert change.scores[cls] == pytest.approx(direct, abs=1e-6)


@pytest.mark.slow  # reads the BioViL-T pairs bundle, built once per module
def test_cli_search_with_prior(pairs_bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = pairs_bundle.parent / "c"
    assert main(["search", str(pairs_bundle), "--image", str(root / "a5.png"), "--prior", str(root / "a2.png"),
                 "--k", "2", "--json", "--device", "cpu"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["hits"]) == 2 and [c["finding"] for c in out["interval_change"]] == list(FINDINGS)
    assert main(["search", str(pairs_bundle), "--id", "a5", "--k", "2", "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "interval change (prior a2)" in text and "pleural effusion" in text and "margin" in text
    assert main(["search", str(pairs_bundle), "--text", "effusion", "--prior", str(root / "a2.png")]) != 0


@pytest.mark.slow  # a build with a decode worker process
def test_single_image_model_has_no_temporal_path(tmp_path: Path) -> None:
    csv = _write_corpus(tmp_path / "c")
    out = tmp_path / "b"
    cfg = BuildConfig(corpus=csv, out=out, model="tiny-random", corpus_options=CorpusOptions(id_col="image_id"),
                      device="cpu", workers=1, progress="none", priors=PriorOptions(prior_col="prior"))
    summary = run_build(cfg)
    assert summary.temporal is not None and not summary.temporal.embedded
    assert Bundle.open(out).manifest["temporal"]["paired_embedded"] == 0
    engine = Engine.open(out, device="cpu")
    with pytest.raises(QueryError, match="no prior-image path"):
        compare_images(engine, tmp_path / "c" / "a2.png", tmp_path / "c" / "a0.png")


@pytest.mark.shared_data
@pytest.mark.skipif(not COVID_CORPUS.is_dir(), reason=f"../shared/data is absent ({COVID_CORPUS})")
def test_covid_pairs_found_by_patient_and_day() -> None:
    """Preset pairing on the real covid corpus (no build): 164 patients with 2+ images."""
    corpus = read_corpus(COVID_CORPUS)
    links = find_priors(corpus, PriorOptions(preset="covid_chestxray"))
    by = pd.Series([v.status for v in links.values()]).value_counts().to_dict()
    assert by["paired"] > 150 and by["bad-order"] > 0 and set(by) <= {"paired", "no-prior", "bad-order"}
    meta = pd.read_csv(COVID_CORPUS / "reports.csv", dtype=str, keep_default_na=False).set_index("image_id")
    for link in [v for v in links.values() if v.status == "paired"][:50]:
        cur, prior = meta.loc[link.id], meta.loc[link.prior_id]
        assert cur["patient_id"] == prior["patient_id"]
        assert covid_day(prior["study_id"]) < covid_day(cur["study_id"])


def _two_covid_patients(csv_path: Path) -> pd.DataFrame:
    """The covid rows of the first two patients with two or more dated studies, written to ``csv_path`` with
    absolute image paths (the rows are returned)."""
    table = pd.read_csv(COVID_CORPUS / "reports.csv", dtype=str, keep_default_na=False)
    days = table["study_id"].str.extract(r"_d(\d+)$")[0]
    ok = table[days.notna()]
    patients = ok.groupby("patient_id")["study_id"].nunique().loc[lambda n: n >= 2].index[:2]
    subset = ok[ok["patient_id"].isin(patients)].copy()
    subset["image_file"] = [str(COVID_CORPUS / f) for f in subset["image_file"]]
    subset.to_csv(csv_path, index=False)
    return subset


@pytest.mark.shared_data
@pytest.mark.skipif(not COVID_CORPUS.is_dir(), reason=f"../shared/data is absent ({COVID_CORPUS})")
def test_covid_subset_build_with_preset_priors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`build --preset covid_chestxray --priors auto` on two real patients (tiny-random-t): pairs by patient + day."""
    subset = _two_covid_patients(tmp_path / "reports.csv")
    out = tmp_path / "b"
    assert main(["build", str(tmp_path / "reports.csv"), "--out", str(out), "--model", "tiny-random-t",
                 "--preset", "covid_chestxray", "--priors", "auto", "--device", "cpu", "--progress", "none"]) == 0
    assert "temporal embeddings:" in capsys.readouterr().out
    records = TemporalRecords.open(Bundle.open(out).folder)
    assert records is not None
    meta = subset.set_index("image_id")
    paired = [i for i in meta.index if records.prior_of(i) is not None]
    assert len(paired) >= len(subset) - 2 * 2  # at most the first study of each patient (<= 2 images) unpaired
    for item_id in paired:
        prior = records.prior_of(item_id)
        assert meta.loc[item_id, "patient_id"] == meta.loc[prior, "patient_id"]
        assert covid_day(meta.loc[prior, "study_id"]) < covid_day(meta.loc[item_id, "study_id"])
        assert records.embedding(item_id) is not None


def test_mimic_preset_orders_by_study_date_and_time(tmp_path: Path) -> None:
    """MIMIC-CXR-JPG layout: the prior is the subject's latest earlier study by StudyDate + StudyTime."""
    rows = [("d1", "10000001", "50000001", "21800101", "93000.5"), ("d2", "10000001", "50000002", "21800101",
            "143000"), ("d3", "10000001", "50000003", "21800105", ""), ("d4", "10000002", "50000004", "21800102",
            "1000"), ("d5", "10000002", "50000005", "", "1000")]
    pd.DataFrame([{"dicom_id": d, "subject_id": s, "study_id": st, "StudyDate": date, "StudyTime": t,
                   "ViewPosition": "PA"} for d, s, st, date, t in rows]).to_csv(
        tmp_path / "mimic-cxr-2.0.0-metadata.csv", index=False)
    corpus = read_corpus(tmp_path)
    assert corpus.columns["preset"] == "mimic_cxr_jpg"
    links = find_priors(corpus, PriorOptions(preset="mimic_cxr_jpg"))
    got = {k: (v.status, v.prior_id) for k, v in links.items()}
    assert got == {"d1": ("no-prior", None), "d2": ("paired", "d1"), "d3": ("paired", "d2"),
                   "d4": ("no-prior", None), "d5": ("bad-order", None)}
    assert all("subject" not in k for k in corpus.items[0].metadata)


@pytest.mark.slow
@pytest.mark.shared_data
@pytest.mark.skipif(not COVID_CORPUS.is_dir(), reason=f"../shared/data is absent ({COVID_CORPUS})")
def test_covid_pairs_with_the_seeded_real_size_biovil_t(tmp_path: Path) -> None:
    """Two real covid patients through the build with priors found by patient and day, on the real-size BioViL-T
    architecture (seeded weights: real shapes, 448 px crops, the temporal ViT pooler): every stored fused embedding
    equals a direct current+prior forward of the same two files."""
    subset = _two_covid_patients(tmp_path / "reports.csv")
    model = real_size_model("biovil-t")
    out = tmp_path / "b"
    run_build(BuildConfig(corpus=tmp_path / "reports.csv", out=out, model="biovil-t", workers=0, threads=2,
                          progress="none", precision="fp32", corpus_options=CorpusOptions(preset="covid_chestxray"),
                          priors=PriorOptions(preset="covid_chestxray")), model=model)
    records = TemporalRecords.open(Bundle.open(out).folder)
    assert records is not None
    meta = subset.set_index("image_id")
    paired = [i for i in meta.index if records.prior_of(i) is not None]
    assert paired, "two patients with two or more dated studies must give at least one pair"
    for item_id in paired:
        prior = records.prior_of(item_id)
        assert prior is not None and meta.loc[item_id, "patient_id"] == meta.loc[prior, "patient_id"]
        direct = encode_pair(model, load_image(meta.loc[item_id, "image_file"]).image,
                             load_image(meta.loc[prior, "image_file"]).image)
        stored = records.embedding(item_id)
        assert stored is not None and np.abs(stored - direct.global_emb[0].numpy()).max() < 1e-5


def test_temporal_stage_reports_progress_and_explains_each_status(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import logging

    csv = _write_corpus(tmp_path / "c")
    cfg = BuildConfig(corpus=csv, out=tmp_path / "b", model="tiny-random-t",
                      corpus_options=CorpusOptions(id_col="image_id"), device="cpu", workers=1, progress="log",
                      log_every_s=0.0, priors=PriorOptions(patient_col="patient_id", order_col="study"))
    with caplog.at_level(logging.INFO):
        summary = run_build(cfg, model=tiny_t())
    lines = [r.getMessage() for r in caplog.records]
    assert lines.index("finalising: search indexes, 2-D maps and derived files; then the temporal stage (its own "
                       "progress)") < lines.index("temporal stage: embedding 3 (current, prior) pairs")
    assert any(re.fullmatch(r"3/3 temporal pairs \(0 skipped\), [\d.]+ pair/s, ETA 0:00:00", m) for m in lines)
    text = summary.line()  # type: ignore[attr-defined]
    assert "\n  bad-order: its order value (--order-col" in text and "\n  no-prior: no earlier study" in text
    assert main(["info", str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "priors      bad-order: 1, no-prior: 1, paired: 3, unreadable: 1" in out
    assert "            bad-order: its order value" in out and "            unreadable: the current or" in out
