"""Scale-out on Ray: each shard of a build is a Ray task (retried after a crash, resuming from its chunks), then merge.

``cxr-explorer build CORPUS --out OUT --ray [ADDRESS] [--ray-shards N]`` (or :func:`run_ray_build`) starts or joins a
Ray cluster, runs ``index.runner.run_build`` for shards 0..N-1 as tasks, and merges the shard bundles into ``OUT``
with ``index.shards.merge_bundles``. Shard bundles live next to ``OUT`` in ``OUT.shards/shard-I`` (shared storage
on a cluster) and are removed after a successful merge. A task whose worker dies (node lost, OOM, ``kill -9``) is
retried up to ``max_retries`` times; the retry resumes the shard from its committed chunks, so every item ends up
in the merged bundle exactly once. Rerunning the same command after a failure resumes every unfinished shard.

Ray is an optional dependency (``requirements-dev.txt``; ``pip install ray``): this module imports it lazily.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from cxr_explorer.index.runner import BuildConfig, run_build
from cxr_explorer.index.shards import merge_bundles

log = logging.getLogger(__name__)
RAY_MISSING = "--ray needs the ray package: pip install ray (it is not a runtime dependency of cxr-explorer)"


def shard_dir(out: Path, i: int) -> Path:
    """Where shard ``i`` of a Ray build into ``out`` is written."""
    return out.parent / f"{out.name}.shards" / f"shard-{i}"


def build_shard(cfg: BuildConfig, i: int, n: int) -> str:
    """Build (or resume) shard ``i`` of ``n`` of ``cfg`` into :func:`shard_dir`; returns its folder (a Ray task)."""
    out = shard_dir(cfg.out, i)
    summary = run_build(replace(cfg, out=out, shard=(i, n), append=False, progress="log"))
    log.info("shard %d/%d: %s", i, n, summary.line())
    return str(out)


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RuntimeError(RAY_MISSING) from None
    return ray


def run_ray_build(cfg: BuildConfig, shards: int, address: str | None = None, max_retries: int = 3,
                  cpus_per_task: float = 1.0, keep_shards: bool = False) -> Path:
    """Build ``cfg`` as ``shards`` Ray tasks and merge them into ``cfg.out``; returns ``cfg.out``.

    ``address`` joins a running cluster ("auto" or host:port); None starts a local one unless Ray is already
    initialised in this process.
    """
    if shards < 1:
        raise ValueError(f"--ray-shards must be >= 1, got {shards}")
    if cfg.shard is not None or cfg.append:
        raise ValueError("--ray builds every shard itself; it cannot be combined with --shard or --append")
    ray = _ray()
    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False)
    task = ray.remote(build_shard).options(max_retries=max_retries, retry_exceptions=False, num_cpus=cpus_per_task)
    dirs = ray.get([task.remote(cfg, i, shards) for i in range(shards)])
    log.info("all %d shards built; merging into %s", shards, cfg.out)
    merge_bundles([Path(d) for d in dirs], cfg.out, index_type=cfg.index_type, command=cfg.command)
    if not keep_shards:
        shutil.rmtree(shard_dir(cfg.out, 0).parent, ignore_errors=True)
    return cfg.out
