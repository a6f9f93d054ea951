"""``python -m benchmarks.integrity [--items N] [--before REV] [--rounds R] [--bundle DIR]``: the cost of the bundle's
integrity checks, before (the code of git revision ``REV``, default ``main``) vs after (this checkout), in one run.

One synthetic N-item bundle (default 100,000: BioViL-size vectors, 15x15x128 float16 patches, 5.8 GB; written by
this checkout, so it carries the block digests and ``manifest.sha256``; the older reader ignores them) is timed by
both readers, each in its own processes, alternating ``R`` rounds:

- ``open``: ``Bundle.open`` + ``close`` (manifest, checksums of the files hashed on opening);
- ``first_grounding``: a freshly opened bundle's first ``Grounder.ground_case`` of a case (its patch row read and,
  after, its blocks checked), the text embedding already cached and the row's bytes already in the page cache in both;
  it includes loading the item table (metadata), the same in both;
- ``next_case_grounding``: then the grounding of another case whose blocks were never read (the app's first grounding
  of a case on an open bundle): the part the block checks add to;
- ``first_row_read``: the first read of one patch row of an open bundle (``Bundle.patches()[[row]]``): what the
  block check itself costs.

Prints one JSON object: medians (ms) of each, the ratio after/before and the difference.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TEXT = "right pleural effusion"
PER_PROCESS = 5  # opens (and groundings, each of another case) timed per worker process


def layout_revision(rev: str, dest: Path) -> Path:
    """The code of ``rev`` laid out as an importable ``cxr_explorer`` package under ``dest``; returns ``dest``."""
    data = subprocess.run(["git", "-C", str(REPO), "archive", rev, "cxr_explorer", "retrieval", "index", "webapp"],
                          check=True, capture_output=True).stdout
    src = dest / "src"
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(src, filter="data")
    pkg = dest / "cxr_explorer"
    (src / "cxr_explorer").rename(pkg)
    for sub in ("retrieval", "index", "webapp"):
        (src / sub).rename(pkg / sub)
    return dest


def worker(bundle: Path, first_row: int) -> dict[str, Any]:
    """Time ``PER_PROCESS`` opens and first groundings (rows ``first_row`` ...) with whichever code is imported."""
    import numpy as np

    from cxr_explorer.retrieval.bundle.reader import Bundle
    from cxr_explorer.retrieval.bundle.store import names
    from cxr_explorer.retrieval.engine.cases import CaseStore
    from cxr_explorer.retrieval.engine.query_cache import QueryEncoder
    from cxr_explorer.retrieval.grounding.grounder import Grounder
    from cxr_explorer.retrieval.models import load_model

    encoder = QueryEncoder(load_model("tiny-random", device="cpu"))
    encoder.text_embedding(TEXT)
    Bundle.open(bundle).close()  # imports and first-touch costs out of the figures
    opens, grounds = [], []
    for _ in range(PER_PROCESS):
        start = time.perf_counter()
        Bundle.open(bundle).close()
        opens.append(time.perf_counter() - start)
    with Bundle.open(bundle) as b:
        patches = np.load(b.folder / names.PATCHES, mmap_mode="r")
    warm = []
    for i in range(PER_PROCESS):
        row = first_row + i
        np.asarray(patches[row]).sum()  # the row's bytes in the page cache for both readers
        other = (row + len(patches) // 2) % len(patches)
        np.asarray(patches[other]).sum()
        b = Bundle.open(bundle)
        grounder = Grounder(encoder, CaseStore(b))
        start = time.perf_counter()
        grounder.ground_case(row, TEXT)
        grounds.append(time.perf_counter() - start)
        start = time.perf_counter()
        grounder.ground_case(other, TEXT)  # another case, its blocks never read before
        warm.append(time.perf_counter() - start)
        b.close()
    reads = []
    with Bundle.open(bundle) as b:
        rows = b.patches()
        for i in range(PER_PROCESS):
            row = (first_row + len(patches) // 4 + i) % len(patches)
            np.asarray(patches[row]).sum()
            start = time.perf_counter()
            np.asarray(rows[[row]], dtype=np.float32)
            reads.append(time.perf_counter() - start)
    return {"open_s": opens, "first_grounding_s": grounds, "next_case_grounding_s": warm,
            "first_row_read_s": reads, "file": sys.modules[Bundle.__module__].__file__}


def run_worker(bundle: Path, first_row: int, pythonpath: str | None) -> dict[str, Any]:
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join([pythonpath, str(REPO)])
    else:
        env["PYTHONPATH"] = str(REPO)
    code = (f"import json, pathlib; from benchmarks.integrity import worker; "
            f"print(json.dumps(worker(pathlib.Path({str(bundle)!r}), {first_row})))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env,
                         cwd=tempfile.gettempdir()).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def write(root: Path, items: int) -> Path:
    """Write the ``items``-item bundle under ``root`` (PCA maps only): the patches are one block of 1,000 random unit
    rows repeated, so that writing 5.8 GB costs copies, not random numbers (hashing cost is the same)."""
    import numpy as np

    from benchmarks.app import synthetic_bundle, unit_patches
    from cxr_explorer.retrieval.maps import projection

    projection.umap_coords = lambda *args, **kw: None  # benchmark-side: this writer process only
    root.mkdir(parents=True, exist_ok=True)
    block = unit_patches(np.random.default_rng(1), 1_000)
    path = root / "patches-tmp.npy"
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(items, *block.shape[1:]))
    for start in range(0, items, len(block)):
        m = min(len(block), items - start)
        out[start:start + m] = block[:m]
    out.flush()
    del out
    bundle = synthetic_bundle(root, items, patches=np.load(path, mmap_mode="r"))
    path.unlink()
    return bundle


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--before", default="main", help="git revision whose reader is the baseline")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--bundle", type=Path, help="an existing bundle written by this checkout (else one is written)")
    parser.add_argument("--write-only", type=Path, metavar="DIR", help="only write the bundle under DIR and exit")
    args = parser.parse_args(argv)
    if args.write_only:
        print(write(args.write_only, args.items))
        return 0
    with tempfile.TemporaryDirectory(prefix="integrity-bench-") as tmp:
        bundle = args.bundle or write(Path(tmp) / "w", args.items)
        before_path = str(layout_revision(args.before, Path(tmp) / "before"))
        runs: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
        for r in range(args.rounds):
            row = 1 + r * PER_PROCESS * 2
            runs["before"].append(run_worker(bundle, row, before_path))
            runs["after"].append(run_worker(bundle, row + PER_PROCESS, None))
    out: dict[str, Any] = {"items": args.items, "before": args.before, "rounds": args.rounds,
                           "per_process": PER_PROCESS,
                           "before_module": runs["before"][0]["file"], "after_module": runs["after"][0]["file"]}
    for key in ("open_s", "first_grounding_s", "next_case_grounding_s", "first_row_read_s"):
        med = {side: statistics.median(t for run in runs[side] for t in run[key]) * 1e3 for side in runs}
        name = key.removesuffix("_s")
        out[name] = {"before_ms": round(med["before"], 2), "after_ms": round(med["after"], 2),
                     "ratio": round(med["after"] / med["before"], 3),
                     "diff_ms": round(med["after"] - med["before"], 2)}
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
