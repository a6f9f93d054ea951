"""Refresh ``docs/screenshots/`` from real chest X-rays whose licence allows redistribution, and credit them.

Builds a bundle in a temporary folder from the covid corpus rows licensed CC BY / CC BY-SA (the images stay where
they are; nothing is copied into the repository), serves it with ``cxr-explorer app``, drives headless Chromium
through Search (grid and case view), Grounding, Map and About at 1280x800, writes the PNGs and
``docs/screenshots/CREDITS.md`` (every image of the bundle: id, licence, source, doi/url).

    .venv/bin/python scripts/refresh_screenshots.py [--corpus ../shared/data/covid_chestxray] [--model tiny-random]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
ALLOWED = ("CC BY", "CC BY 3.0", "CC BY 4.0", "CC BY-SA")  # redistribution with attribution
OUT = REPO / "docs" / "screenshots"


def licensed_csv(corpus: Path, tmp: Path) -> pd.DataFrame:
    """The corpus rows with an allowed licence, image paths made absolute, written to ``tmp/corpus.csv``."""
    rows = pd.read_csv(corpus / "reports.csv")
    rows = rows[rows["license"].isin(ALLOWED)].copy()
    rows["image_file"] = [str((corpus / p).resolve()) for p in rows["image_file"]]
    rows.to_csv(tmp / "corpus.csv", index=False)
    return rows


def credits(rows: pd.DataFrame) -> str:
    """CREDITS.md: the images the screenshots may show and their licences."""
    lines = ["# Credits of the images in these screenshots", "",
             "Chest X-rays from the COVID-19 image data collection (Cohen et al., github.com/ieee8023/covid-chestxray-"
             "dataset), only those licensed for redistribution with attribution; research use only.", "",
             "| image | licence | source | doi / url |", "|---|---|---|---|"]
    for r in rows.itertuples():
        lines.append(f"| {r.image_id} | {r.license} | {r.source} | {r.doi if isinstance(r.doi, str) else r.url} |")
    return "\n".join(lines) + "\n"


def shoot(url: str) -> None:
    """Walk the app in Chromium and save the screenshots."""
    from playwright.sync_api import sync_playwright

    from tests.e2e.helpers import settle

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--headless", "--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.set_default_timeout(120_000)
        for path, wait, name in (("?q=bilateral+opacities", "matching", "search.png"),
                                 ("?q=bilateral+opacities&ground=1", "shared range", "search-grounded.png"),
                                 ("grounding?phrases=bilateral+opacities%3B+pleural+effusion", "global similarity",
                                  "grounding.png"),
                                 ("map", "embeddings", "map.png"), ("about", "Skipped while building", "about.png")):
            page.goto(f"{url}/{path}")
            page.get_by_text(wait, exact=False).first.wait_for()
            settle(page)
            page.wait_for_timeout(1000)
            page.screenshot(path=str(OUT / name))
        page.goto(f"{url}/?q=bilateral+opacities")
        page.get_by_text("matching").first.wait_for()
        page.get_by_role("button", name="Open", exact=True).first.click()
        page.get_by_role("dialog").get_by_text("Metadata").wait_for()
        settle(page)
        page.wait_for_timeout(1000)
        page.screenshot(path=str(OUT / "case.png"))
        browser.close()


def main() -> int:
    from tests.e2e.conftest import free_port, wait_healthy

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "data" / "covid_chestxray")
    ap.add_argument("--model", default="tiny-random")
    ap.add_argument("--weights-dir", default=None)
    args = ap.parse_args()
    exe = str(Path(sys.executable).parent / "cxr-explorer")
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        rows = licensed_csv(args.corpus, tmp)
        build = [exe, "build", str(tmp / "corpus.csv"), "--out", str(tmp / "covid-cc-by"), "--model", args.model,
                 "--image-col", "image_file", "--id-col", "image_id", "--text-col", "findings", "impression",
                 "--label-sep", ";"]
        subprocess.run(build + (["--weights-dir", args.weights_dir] if args.weights_dir else []), check=True)
        port = free_port()
        proc = subprocess.Popen([exe, "app", str(tmp / "covid-cc-by"), "--port", str(port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_healthy(f"http://127.0.0.1:{port}/_stcore/health", proc)
            OUT.mkdir(parents=True, exist_ok=True)
            shoot(f"http://127.0.0.1:{port}")
        finally:
            proc.terminate()
            proc.wait(timeout=20)
        (OUT / "CREDITS.md").write_text(credits(rows), encoding="utf-8")
    print(f"wrote {OUT} ({len(rows)} licensed images credited)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
