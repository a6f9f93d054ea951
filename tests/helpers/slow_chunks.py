"""A Ray ``worker_process_setup_hook`` for tests: each committed chunk is followed by a 1 s pause, so that a test can
kill a worker mid-shard. Test side only: production code has no delay and reads nothing for this."""

from __future__ import annotations

import time
from pathlib import Path

PAUSE_S = 1.0


def slow_chunks() -> None:
    """Patch this worker's chunk commit to sleep after each commit."""
    from cxr_explorer.retrieval.bundle.store import build_area

    real = build_area.commit_chunk

    def commit_then_pause(tmp: Path, final: Path) -> None:
        real(tmp, final)
        time.sleep(PAUSE_S)

    build_area.commit_chunk = commit_then_pause  # type: ignore[assignment]
