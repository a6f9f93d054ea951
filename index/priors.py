"""Which earlier study is each image's prior: from a column naming it, or the previous study of the same patient.

Pairing reads the corpus table itself (the patient column is used here only and never stored in the bundle); the
result is one :class:`PriorLink` per corpus item, ``status`` one of :data:`STATUSES`. Problems are reasons, never
errors: a prior that is not in the corpus is ``missing``, a row that names itself is ``self``, an order value that
cannot be read is ``bad-order``; an image without an earlier study is ``no-prior`` (BioViL-T's missing-prior path).
Whether the prior image can be decoded is only known when it is read: the temporal stage adds ``unreadable``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cxr_explorer.index.corpus import Corpus, CorpusOptions, make_id
from cxr_explorer.index.presets import CorpusError, load_preset, read_csv

__all__ = ["PRIOR_PRESETS", "STATUSES", "STATUS_MEANINGS", "PriorLink", "PriorOptions", "find_priors", "parse_order"]

#: ``paired`` has a prior id; every other status has none, and a reason in ``detail``.
STATUSES = ("paired", "no-prior", "missing", "self", "bad-order", "unreadable")
STATUS_MEANINGS = {
    "paired": "has an earlier study: embedded fused with it (BioViL-T) and shown on the Compare page",
    "no-prior": "no earlier study (the first of its patient, or the prior column is empty): embedded alone, as "
                "BioViL-T does without a prior",
    "missing": "the prior it names is not among the indexed images (not in the corpus, or skipped)",
    "self": "the row names itself as its prior",
    "bad-order": "its order value (--order-col, e.g. a date or day) could not be read, so no study can be called "
                 "earlier; fix the value to pair it",
    "unreadable": "the current or the prior image could not be decoded",
}
"""One line per status: what it means and what happens to the image (build summary, ``info``)."""
_COVID_DAY = re.compile(r"_d(-?\d+)$")


@dataclass(frozen=True)
class PriorOptions:
    """``prior_col`` names each row's prior (an id or an image path of the corpus); otherwise ``patient_col`` +
    ``order_col`` take the latest earlier study of the same patient. ``preset`` fills both for a known layout."""

    prior_col: str | None = None
    patient_col: str | None = None
    order_col: str | None = None
    preset: str | None = None

    def describe(self) -> dict[str, str | None]:
        """What the manifest records."""
        return {"prior_col": self.prior_col, "patient_col": self.patient_col, "order_col": self.order_col,
                "preset": self.preset}


@dataclass(frozen=True)
class PriorLink:
    """The prior of one item: ``prior_id`` when ``status == "paired"``, else None and a reason in ``detail``."""

    id: str
    status: str
    prior_id: str | None = None
    detail: str = ""


def covid_day(value: str) -> float:
    """``covid_p2_d3`` -> 3.0 (the day of the study in the covid_chestxray corpus)."""
    m = _COVID_DAY.search(value.strip())
    if m is None:
        raise ValueError(f"study id {value!r} does not end in _d<day>")
    return float(m.group(1))


def parse_order(value: str) -> float:
    """A sortable number from an order cell: a number, a YYYYMMDD[ HHMMSS] date, an ISO date, or a covid study id."""
    text = value.strip()
    if not text:
        raise ValueError("empty order value")
    try:
        return float(text)
    except ValueError:
        pass
    if _COVID_DAY.search(text):
        return covid_day(text)
    stamp = pd.Timestamp(text)  # ValueError for text that is no date
    return float(stamp.value) / 1e9


@dataclass(frozen=True)
class _Preset:
    patient_col: str
    order_col: str
    order: Callable[[str], float]


#: Patient and order columns of the presets whose corpora have patient timelines.
PRIOR_PRESETS: dict[str, _Preset] = {
    "covid_chestxray": _Preset("patient_id", "study_id", covid_day),
    # MIMIC-CXR-JPG: subject_id, and StudyDate + StudyTime (YYYYMMDD, HHMMSS.fff) joined by _mimic_table.
    "mimic_cxr_jpg": _Preset("subject_id", "study_order", parse_order),
}


def _mimic_table(source: Path) -> pd.DataFrame:
    """The MIMIC-CXR-JPG metadata CSV with ``study_order`` = StudyDate * 1e6 + StudyTime (sortable)."""
    csv = next((source / n for n in ("mimic-cxr-2.0.0-metadata.csv", "mimic-cxr-2.0.0-metadata.csv.gz")
                if (source / n).exists()), source / "mimic-cxr-2.0.0-metadata.csv")
    table = read_csv(csv)
    table["study_order"] = [f"{d.strip()}{float(t or 0):011.3f}".replace(".", "") if d.strip() else ""
                            for d, t in zip(table["StudyDate"], table["StudyTime"], strict=True)]
    return table


def _raw_table(corpus: Corpus, opts: CorpusOptions) -> pd.DataFrame:
    """The corpus table with every column (patient ones included), in the order the corpus reader saw it."""
    src, preset = Path(corpus.source), corpus.columns.get("preset")
    if corpus.kind == "folder":
        raise CorpusError("priors need a CSV corpus or a preset layout; a folder of images has no patient timeline")
    if preset == "mimic_cxr_jpg":
        return _mimic_table(src)
    if preset not in (None, "csv"):
        return load_preset(preset, src, opts.images_dir, opts.reports_dir).table
    return read_csv(src)


def _row_ids(table: pd.DataFrame, corpus: Corpus, opts: CorpusOptions) -> list[str]:
    id_col, image_col = corpus.columns.get("id_col"), corpus.columns["image_col"]
    if id_col:
        return [str(v).strip() for v in table[id_col]]
    return [make_id(str(p).strip(), opts.hash_ids) if str(p).strip() else "" for p in table[image_col]]


def _need(table: pd.DataFrame, col: str, flag: str) -> None:
    if col not in table.columns:
        raise CorpusError(f"no column {col!r} for {flag}; columns are: {', '.join(table.columns)}")


def _by_column(table: pd.DataFrame, ids: list[str], col: str, corpus: Corpus, opts: CorpusOptions
               ) -> dict[str, PriorLink]:
    known = {it.id for it in corpus.items}
    by_path = {it.path: it.id for it in corpus.items}
    links: dict[str, PriorLink] = {}
    for item_id, value in zip(ids, (str(v).strip() for v in table[col]), strict=True):
        if item_id not in known or item_id in links:
            continue
        prior = value if value in known else by_path.get(value, make_id(value, opts.hash_ids) if value else "")
        if not value:
            links[item_id] = PriorLink(item_id, "no-prior", None, f"column {col!r} is empty")
        elif prior == item_id:
            links[item_id] = PriorLink(item_id, "self", None, f"column {col!r} names the image itself")
        elif prior not in known:
            links[item_id] = PriorLink(item_id, "missing", None, f"prior {value!r} is not an item of the corpus")
        else:
            links[item_id] = PriorLink(item_id, "paired", prior)
    return links


def _by_patient(table: pd.DataFrame, ids: list[str], patient_col: str, order_col: str,
                order: Callable[[str], float], corpus: Corpus) -> dict[str, PriorLink]:
    """Each image's prior: the first image (corpus order) of the patient's latest study strictly before its own."""
    known = {it.id for it in corpus.items}
    links: dict[str, PriorLink] = {}
    studies: dict[str, dict[float, list[str]]] = {}
    for item_id, patient, raw in zip(ids, table[patient_col], table[order_col], strict=True):
        if item_id not in known or item_id in links:
            continue
        patient = str(patient).strip()
        if not patient:
            links[item_id] = PriorLink(item_id, "no-prior", None, f"column {patient_col!r} is empty")
            continue
        try:
            key = order(str(raw))
        except ValueError as exc:
            links[item_id] = PriorLink(item_id, "bad-order", None, f"column {order_col!r}: {exc}")
            continue
        studies.setdefault(patient, {}).setdefault(key, []).append(item_id)
        links[item_id] = PriorLink(item_id, "no-prior", None, "first study of its patient")
    for by_time in studies.values():
        times = sorted(by_time)
        for earlier, later in zip(times, times[1:], strict=False):
            for item_id in by_time[later]:
                links[item_id] = PriorLink(item_id, "paired", by_time[earlier][0])
    return links


def find_priors(corpus: Corpus, prior: PriorOptions, opts: CorpusOptions | None = None) -> dict[str, PriorLink]:
    """One :class:`PriorLink` per corpus item; CorpusError for a column that does not exist (before any work)."""
    opts = opts or CorpusOptions()
    table = _raw_table(corpus, opts)
    ids = _row_ids(table, corpus, opts)
    if prior.prior_col:
        _need(table, prior.prior_col, "--prior-col")
        links = _by_column(table, ids, prior.prior_col, corpus, opts)
    else:
        preset = PRIOR_PRESETS.get(prior.preset or "") if prior.preset else None
        if prior.preset and preset is None:
            raise CorpusError(f"no prior preset {prior.preset!r}; valid: {', '.join(PRIOR_PRESETS)}")
        patient_col = prior.patient_col or (preset.patient_col if preset else None)
        order_col = prior.order_col or (preset.order_col if preset else None)
        if not patient_col or not order_col:
            raise CorpusError("priors need --prior-col, or --patient-col with --order-col, or a prior preset")
        _need(table, patient_col, "--patient-col")
        _need(table, order_col, "--order-col")
        parse = preset.order if preset and order_col == preset.order_col else parse_order
        links = _by_patient(table, ids, patient_col, order_col, parse, corpus)
    return {it.id: links.get(it.id, PriorLink(it.id, "no-prior", None, "row not found")) for it in corpus.items}
