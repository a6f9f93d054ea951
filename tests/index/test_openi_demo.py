"""The demo corpus download (Open-i layout) against a local HTTP server, and the demo command end to end."""

from __future__ import annotations

import csv
import functools
import http.server
import io
import os
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cxr_explorer.index.openi import DownloadError, fetch_openi, parse_report_xml
from tests.helpers.paths import REPO

XML = """<?xml version="1.0" encoding="utf-8"?>
<eCitation><meta type="rr"/><uId id="CXR{n}"/>
<MedlineCitation Owner="Indiana University" Status="supplied"><Article PubModel="Electronic"><Abstract>
<AbstractText Label="COMPARISON">None.</AbstractText>
<AbstractText Label="FINDINGS">{findings}</AbstractText>
<AbstractText Label="IMPRESSION">{impression}</AbstractText>
</Abstract></Article></MedlineCitation>
<MeSH><major>{label}</major></MeSH>
<parentImage id="CXR{n}_1_IM-{n:04d}-1001"><figureId>F1</figureId><caption>Xray Chest PA</caption></parentImage>
<parentImage id="CXR{n}_1_IM-{n:04d}-2001"><figureId>F2</figureId><caption>Xray Chest Lateral</caption></parentImage>
</eCitation>"""


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _png(seed: int) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 255, (64, 80), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def openi_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("openi")
    with tarfile.open(root / "NLMCXR_reports.tgz", "w:gz") as tar:
        for n in (1, 2, 3):
            xml = XML.format(n=n, findings=f"Finding {n}. No effusion.", impression="Normal.", label="normal")
            _add(tar, f"ecgen-radiology/{n}.xml", xml.encode())
    with tarfile.open(root / "NLMCXR_png.tgz", "w:gz") as tar:
        _add(tar, "../../evil.png", _png(0))  # a hostile member name must never escape the images folder
        for n in (1, 2, 3):
            for k in (1001, 2001):
                _add(tar, f"CXR{n}_1_IM-{n:04d}-{k}.png", _png(n * k))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_parse_report_xml() -> None:
    report = parse_report_xml(XML.format(n=7, findings="Left effusion.", impression="Effusion.", label="x").encode())
    assert report is not None and report.study_id == "CXR7"
    assert report.findings == "Left effusion." and report.labels == "x" and len(report.images) == 2
    assert parse_report_xml(b"<not xml") is None


def test_fetch_streams_only_what_it_needs(openi_server: str, tmp_path: Path) -> None:
    manifest = fetch_openi(tmp_path / "c", max_images=3, base_url=openi_server, timeout=10)
    with open(manifest, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3
    assert rows[0]["findings"] == "Finding 1. No effusion." and rows[0]["view"] == "PA" and rows[1]["view"] == "LAT"
    assert all((manifest.parent / r["image_path"]).is_file() for r in rows)
    assert not (tmp_path / "evil.png").exists() and not (tmp_path / "c" / "images" / "evil.png").exists()
    assert fetch_openi(tmp_path / "c", max_images=3, base_url="http://127.0.0.1:9") == manifest  # reused, no network


def test_fetch_failure_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="cannot download"):
        fetch_openi(tmp_path, max_images=2, base_url="http://127.0.0.1:9", timeout=2)


@pytest.mark.slow  # downloads from the local server and builds
def test_demo_command_builds_a_bundle(openi_server: str, tmp_path: Path) -> None:
    pytest.importorskip("cxr_explorer.commands.build")
    from cxr_explorer.cli import main

    out = tmp_path / "bundle"
    code = main(["demo", "--model", "tiny-random", "--openi-url", openi_server, "--cache-dir", str(tmp_path / "cache"),
                 "--max-images", "4", "--out", str(out), "--no-app", "--device", "cpu"])
    assert code == 0
    assert main(["info", str(out), "--json"]) == 0


def test_demo_offline_without_weights_says_how(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cxr_explorer.cli import main

    code = main(["demo", "--model", "biovil", "--weights-dir", str(tmp_path / "none"), "--no-app"])
    assert code == 2
    assert "--weights-dir" in capsys.readouterr().err


def _demo_without_network(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``cxr-explorer demo`` in a fresh process whose hub and Open-i hosts are a closed local port."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env |= {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": str(tmp_path / "hf"), "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "cxr_explorer", "demo", "--no-app", "--cache-dir",
                           str(tmp_path / "cache"), *args], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)


def test_demo_without_network_says_so_in_the_first_line(tmp_path: Path) -> None:
    """No hub retries: the first line names the unreachable host and the offline smoke run."""
    result = _demo_without_network(tmp_path, "--model", "biovil")
    assert result.returncode == 2
    first = result.stderr.strip().splitlines()[0]
    assert first.startswith("cxr-explorer: error: no network: 127.0.0.1 cannot be reached")
    assert "--model tiny-random" in first and "--weights-dir" in first
    assert "Retrying" not in result.stderr


def test_demo_without_network_or_corpus_names_the_corpus_host(tmp_path: Path) -> None:
    result = _demo_without_network(tmp_path, "--model", "tiny-random", "--openi-url", "http://127.0.0.1:9/x")
    assert result.returncode == 2
    assert "no network: 127.0.0.1 cannot be reached, so the Open-i demo corpus" in result.stderr
