"""Scale-out recipes run for real: the Slurm array script under a local fake ``sbatch``, and the Ray runner on a
local 2-worker Ray cluster with one worker killed mid-shard. Both must end with every item exactly once and the
vectors of a single-process build."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cxr_explorer.index.runner import BuildConfig
from cxr_explorer.retrieval.bundle import store
from tests.helpers.corpora import assert_same_bundle, write_good_csv
from tests.helpers.paths import REPO


@pytest.mark.slow  # shard builds in fresh processes under the fake sbatch
def test_slurm_array_and_merge_under_fake_sbatch(tmp_path: Path, build) -> None:
    corpus = write_good_csv(tmp_path, 10)
    build(corpus, tmp_path / "single", precision="fp32")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    sbatch = bin_dir / "sbatch"
    sbatch.write_text(f"#!/bin/sh\nexec {sys.executable} {REPO / 'tests/helpers/fake_sbatch.py'} \"$@\"\n")
    sbatch.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_SLURM_DIR": str(tmp_path / "slurm"),
           "CORPUS": str(corpus), "OUT": str(tmp_path / "bundles"), "N": "3", "MODEL": "tiny-random",
           "CXR": f"{sys.executable} -m cxr_explorer",
           "BUILD_ARGS": "--device cpu --precision fp32 --workers 0 --threads 1"}
    run = subprocess.run(["bash", str(REPO / "scripts/slurm/submit.sh")], env=env, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "bundles").iterdir()) == ["all", "shard-0", "shard-1", "shard-2"]
    assert_same_bundle(tmp_path / "single", tmp_path / "bundles" / "all")


@pytest.mark.slow  # shard builds in fresh processes under the fake sbatch
def test_fake_sbatch_refuses_a_merge_after_a_failed_shard(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(f"#!/bin/sh\nexec {sys.executable} {REPO / 'tests/helpers/fake_sbatch.py'} "
                                    "\"$@\"\n")
    (bin_dir / "sbatch").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_SLURM_DIR": str(tmp_path / "slurm"),
           "CORPUS": str(tmp_path / "missing.csv"), "OUT": str(tmp_path / "bundles"), "N": "2",
           "MODEL": "tiny-random", "CXR": f"{sys.executable} -m cxr_explorer", "BUILD_ARGS": "--device cpu"}
    run = subprocess.run(["bash", str(REPO / "scripts/slurm/submit.sh")], env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode != 0 and "never satisfied" in run.stderr
    assert not (tmp_path / "bundles" / "all").exists()


def _kill_one_shard_worker(out: Path, stop: threading.Event, killed: list[int]) -> None:
    """Wait until some shard has committed a chunk but is not installed, then kill -9 the process building it (named
    by the folder's writer lock)."""
    shards = out.parent / f"{out.name}.shards"
    while not stop.is_set() and not killed:
        for folder in sorted(shards.glob("shard-*")) if shards.is_dir() else []:
            holder = store.holder(folder)
            if holder and store.BuildArea(folder).chunks.committed() and store.current_version(folder) is None:
                pid = int(holder.get("pid", 0))
                if pid and pid != os.getpid() and Path(f"/proc/{pid}").exists():
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    return
        time.sleep(0.05)


@pytest.mark.slow  # starts Ray and kills one of its workers
def test_ray_runner_survives_a_killed_worker(tmp_path: Path, build) -> None:
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install -r requirements-dev.txt)")
    from cxr_explorer.index.ray_runner import run_ray_build, shard_dir

    corpus = write_good_csv(tmp_path, 16)
    build(corpus, tmp_path / "single", precision="fp32")
    out = tmp_path / "ray"
    cfg = BuildConfig(corpus=corpus, out=out, model="tiny-random", device="cpu", precision="fp32", workers=0,
                      threads=1, progress="none", chunk_size=2)
    # a test-side pause after each committed chunk in every Ray worker (tests/helpers/slow_chunks.py)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={
        "worker_process_setup_hook": "tests.helpers.slow_chunks.slow_chunks",
        "env_vars": {"PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}})
    stop = threading.Event()
    killed: list[int] = []
    killer = threading.Thread(target=_kill_one_shard_worker, args=(out, stop, killed), daemon=True)
    killer.start()
    try:
        run_ray_build(cfg, shards=2, max_retries=3, keep_shards=True)
    finally:
        stop.set()
        ray.shutdown()
    assert killed, "no shard worker was caught mid-shard"
    assert_same_bundle(tmp_path / "single", out)
    assert all(store.current_version(shard_dir(out, i)) == 1 for i in range(2))


def test_ray_build_refuses_shard_and_append_before_starting_ray(tmp_path: Path) -> None:
    from cxr_explorer.index.ray_runner import run_ray_build

    cfg = BuildConfig(corpus=tmp_path / "c.csv", out=tmp_path / "out", model="tiny-random")
    for bad in (BuildConfig(**{**cfg.__dict__, "shard": (0, 2)}), BuildConfig(**{**cfg.__dict__, "append": True})):
        with pytest.raises(ValueError, match="cannot be combined with --shard or --append"):
            run_ray_build(bad, shards=2)
    with pytest.raises(ValueError, match="--ray-shards must be >= 1"):
        run_ray_build(cfg, shards=0)
