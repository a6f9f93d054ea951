"""An RSS sampler that knows which phase of a build is running (benchmark-side instrumentation only).

:class:`PhasedSampler` reads the process's RSS every ``every_s`` seconds in a thread and keeps the peak and the
seconds per phase. Phases are marked by wrapping the build's own functions for the duration of the ``with`` block
(restored on exit; production code has no hooks): the embed loop, each chunk commit, and finalisation's steps
(the file writers a chunk commit shares with finalisation count as finalise phases only once finalising began).
A function the build no longer has (renamed by a refactor) is listed in ``missing`` instead of failing the run.
"""

from __future__ import annotations

import functools
import importlib
import threading
import time
from collections.abc import Callable
from typing import Any

from benchmarks.common import current_rss_mib

#: (module, attribute, phase entered when it is called); the order is the order a build runs them in.
PHASES: tuple[tuple[str, str, str], ...] = (
    ("cxr_explorer.index.runner", "_embed_all", "embed_first_chunk"),
    ("cxr_explorer.index.runner", "finalise_build", "finalise_gather_chunks"),
    ("cxr_explorer.retrieval.bundle.store.parts", "_write_tables", "finalise_tables_vectors"),
    ("cxr_explorer.retrieval.bundle.store.parts", "_write_patches", "finalise_patches"),
    ("cxr_explorer.retrieval.bundle.store.parts", "_write_thumbs", "finalise_thumbnails"),
    ("cxr_explorer.retrieval.bundle.writer", "build_index", "finalise_faiss"),
    ("cxr_explorer.retrieval.maps.projection", "write_projections", "finalise_projections"),
)
SHARED_WITH_COMMIT = ("cxr_explorer.retrieval.bundle.store.parts",)
AFTER: dict[str, str] = {"_write_thumbs": "finalise_write_rest", "write_projections": "finalise_manifest_install",
                         "write_version": "reopen_bundle"}


class PhasedSampler:
    """RSS peaks (MiB) and seconds per phase; RSS after each committed chunk."""

    def __init__(self, every_s: float = 0.05) -> None:
        self.every_s = every_s
        self.phase = "startup"
        self.peaks: dict[str, float] = {}
        self.seconds: dict[str, float] = {}
        self.after_chunk: list[float] = []
        self.missing: list[str] = []
        self.finalising = False
        self._since = time.perf_counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._restore: list[tuple[Any, str, Any]] = []

    def set_phase(self, phase: str) -> None:
        """Enter ``phase`` (the RSS right now counts in the phase being left and in the new one)."""
        self.finalising = self.finalising or phase.startswith("finalise_")
        with self._lock:
            now, rss = time.perf_counter(), current_rss_mib()
            self._note(rss)
            self.seconds[self.phase] = self.seconds.get(self.phase, 0.0) + now - self._since
            self.phase, self._since = phase, now
            self._note(rss)

    def _note(self, rss: float) -> None:
        self.peaks[self.phase] = max(self.peaks.get(self.phase, 0.0), rss)

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                self._note(current_rss_mib())
            time.sleep(self.every_s)

    def _wrap(self, owner: Any, attr: str, phase: str, after: str | None) -> None:
        original = getattr(owner, attr)

        @functools.wraps(original)
        def wrapped(*args: Any, **kw: Any) -> Any:
            if owner.__name__ in SHARED_WITH_COMMIT and not self.finalising:  # a chunk commit writes them too
                return original(*args, **kw)
            self.set_phase(phase)
            try:
                return original(*args, **kw)
            finally:
                if after:
                    self.set_phase(after)

        setattr(owner, attr, wrapped)
        self._restore.append((owner, attr, original))

    def _committed(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def commit(store: Any, *args: Any, **kw: Any) -> Any:
            out = original(store, *args, **kw)
            self.after_chunk.append(round(current_rss_mib(), 1))
            if self.phase == "embed_first_chunk":
                self.set_phase("embed_later_chunks")
            return out
        return commit

    def __enter__(self) -> PhasedSampler:
        for module, attr, phase in PHASES:
            mod = importlib.import_module(module)
            if hasattr(mod, attr):
                self._wrap(mod, attr, phase, AFTER.get(attr))
            else:
                self.missing.append(f"{module}.{attr}")
        finalise = importlib.import_module("cxr_explorer.index.finalise")
        self._wrap(finalise, "write_version", "finalise_write_start", AFTER["write_version"])
        chunks = importlib.import_module("cxr_explorer.index.build_state")
        self._restore.append((chunks.ChunkStore, "commit", chunks.ChunkStore.commit))
        chunks.ChunkStore.commit = self._committed(chunks.ChunkStore.commit)  # type: ignore[method-assign]
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.set_phase("done")
        self._stop.set()
        self._thread.join()
        for owner, attr, original in reversed(self._restore):
            setattr(owner, attr, original)

    def rounded_peaks(self) -> dict[str, float]:
        return {k: round(v, 1) for k, v in self.peaks.items() if k != "done"}

    def rounded_seconds(self) -> dict[str, float]:
        return {k: round(v, 2) for k, v in self.seconds.items()}

    def later_over_first(self) -> float | None:
        """Peak RSS while embedding the later chunks minus the first chunk's (MiB); None with one chunk."""
        first, later = self.peaks.get("embed_first_chunk"), self.peaks.get("embed_later_chunks")
        return round(later - first, 1) if first is not None and later is not None else None
