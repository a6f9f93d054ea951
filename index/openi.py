"""Fetch a small public demo corpus: the first N images of the Open-i Indiana University chest X-ray collection
(NLM) with their reports.

The collection ships as two archives: ``NLMCXR_reports.tgz`` (one XML per study, ~1 MB) and ``NLMCXR_png.tgz``
(~7,470 PNGs, ~1.3 GB). The reports are downloaded whole; the PNG archive is *streamed* and read only until
``max_images`` images are extracted, so a demo of a few hundred images downloads a small part of it. Licence: NLM
Open-i states CC BY-NC-ND 4.0 for this collection; check it before redistributing anything.
"""

from __future__ import annotations

import csv
import io
import logging
import shutil
import tarfile
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from cxr_explorer.retrieval.bundle.store.atomic import write_bytes, write_text, writing

log = logging.getLogger(__name__)

OPENI_BASE_URL = "https://openi.nlm.nih.gov/imgs/collections"
REPORTS_ARCHIVE = "NLMCXR_reports.tgz"
IMAGES_ARCHIVE = "NLMCXR_png.tgz"
MANIFEST = "openi_demo.csv"
COLUMNS = ("image_id", "image_path", "study_id", "view", "findings", "impression", "labels", "source", "license")


class DownloadError(RuntimeError):
    """The demo corpus could not be fetched (network, HTTP status, or a malformed archive)."""


@dataclass(frozen=True)
class StudyReport:
    """One Open-i study: its sections, MeSH labels and the ids of its images."""

    study_id: str
    findings: str
    impression: str
    labels: str
    images: dict[str, str]  # image id -> caption


def _open(url: str, timeout: float) -> IO[bytes]:
    try:
        return urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 - https/http URL given by the user
    except OSError as exc:
        raise DownloadError(f"cannot download {url}: {exc}") from None


def parse_report_xml(data: bytes) -> StudyReport | None:
    """Parse one Open-i ``eCitation`` XML; None if it holds no image."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError:
        return None
    uid = root.find("uId")
    sections = {el.get("Label", "").upper(): (el.text or "").strip() for el in root.iter("AbstractText")}
    labels = "|".join((el.text or "").strip() for el in root.iter("major") if (el.text or "").strip())
    images = {}
    for img in root.iter("parentImage"):
        caption = img.findtext("caption") or ""
        if img.get("id"):
            images[img.get("id", "")] = caption.strip()
    if not images:
        return None
    study = uid.get("id", "") if uid is not None else ""
    return StudyReport(study, sections.get("FINDINGS", ""), sections.get("IMPRESSION", ""), labels, images)


def read_reports(archive: Path) -> dict[str, tuple[StudyReport, str]]:
    """Map image id -> (its study, its caption) from the reports archive."""
    out: dict[str, tuple[StudyReport, str]] = {}
    with tarfile.open(archive, mode="r:gz") as tar:
        for member in tar:
            if not member.isfile() or not member.name.lower().endswith(".xml"):
                continue
            fh = tar.extractfile(member)
            report = parse_report_xml(fh.read()) if fh is not None else None
            if report is not None:
                for image_id, caption in report.images.items():
                    out[image_id] = (report, caption)
    if not out:
        raise DownloadError(f"{archive} holds no Open-i report with images")
    return out


def _download_file(url: str, dest: Path, timeout: float) -> Path:
    if dest.is_file():
        return dest
    with _open(url, timeout) as resp, writing(dest) as fh:
        shutil.copyfileobj(resp, fh)
    return dest


def _view(caption: str) -> str:
    """A view hint from the figure caption; empty when the caption names several views."""
    low = caption.lower()
    words = low.replace(",", " ").split()
    if " and " in low:
        return ""
    if "lateral" in words:
        return "LAT"
    return "PA" if "pa" in words else ("AP" if "ap" in words else "")


def stream_images(url: str, images_dir: Path, wanted: set[str], max_images: int, timeout: float) -> list[str]:
    """Extract up to ``max_images`` PNGs whose id is in ``wanted``, reading the archive as a stream."""
    images_dir.mkdir(parents=True, exist_ok=True)
    got: list[str] = []
    try:
        with _open(url, timeout) as resp, tarfile.open(fileobj=resp, mode="r|gz") as tar:
            for member in tar:
                name = PurePosixPath(member.name).name  # never trust archive paths
                image_id = name[:-4] if name.lower().endswith(".png") else ""
                if not member.isfile() or image_id not in wanted:
                    continue
                fh = tar.extractfile(member)
                if fh is None:
                    continue
                write_bytes(images_dir / name, fh.read())
                got.append(image_id)
                if len(got) >= max_images:
                    break
    except (tarfile.TarError, EOFError, OSError) as exc:
        if not got:
            raise DownloadError(f"cannot read {url} as a .tgz archive: {exc}") from None
        log.warning("image archive ended early after %d images: %s", len(got), exc)
    return got


def fetch_openi(dest: Path, max_images: int = 300, base_url: str = OPENI_BASE_URL, timeout: float = 120.0) -> Path:
    """Fetch the demo corpus into ``dest`` and return the path of its CSV manifest (reused when complete)."""
    dest.mkdir(parents=True, exist_ok=True)
    manifest = dest / MANIFEST
    if manifest.is_file():
        with open(manifest, newline="", encoding="utf-8") as fh:
            if sum(1 for _ in csv.DictReader(fh)) >= max_images:
                return manifest
    reports = read_reports(_download_file(f"{base_url}/{REPORTS_ARCHIVE}", dest / REPORTS_ARCHIVE, timeout))
    log.info("streaming the first %d images of %s/%s", max_images, base_url, IMAGES_ARCHIVE)
    ids = stream_images(f"{base_url}/{IMAGES_ARCHIVE}", dest / "images", set(reports), max_images, timeout)
    table = io.StringIO(newline="")  # small: one row per image
    writer = csv.DictWriter(table, fieldnames=COLUMNS)
    writer.writeheader()
    for image_id in ids:
        study, caption = reports[image_id]
        writer.writerow({"image_id": image_id, "image_path": f"images/{image_id}.png", "study_id": study.study_id,
                         "view": _view(caption), "findings": study.findings, "impression": study.impression,
                         "labels": study.labels, "source": "Open-i Indiana University (NLM)",
                         "license": "CC BY-NC-ND 4.0 (NLM Open-i)"})
    write_text(manifest, table.getvalue())
    log.info("demo corpus: %d images with reports in %s", len(ids), dest)
    return manifest
