"""Progress of the job: a tqdm bar with rate and ETA on a terminal, plain periodic log lines otherwise."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

log = logging.getLogger("cxr_explorer.index.progress")


class Progress:
    """Counts items done (indexed + skipped) out of ``total``; ``mode`` is auto, bar, log or none; ``what`` names
    the stage and ``unit`` what it counts (in the bar and the log lines)."""

    def __init__(self, total: int, mode: str = "auto", every_s: float = 30.0, what: str = "items",
                 unit: str = "img") -> None:
        self.total = total
        self.what = what
        self.unit = unit
        self.every_s = every_s
        self.indexed = 0
        self.skipped = 0
        self.start = time.monotonic()
        self._last_log = self.start
        use_bar = mode == "bar" or (mode == "auto" and sys.stderr.isatty())
        self.mode = "bar" if use_bar else mode if mode in ("log", "none") else "log"
        self._bar: Any = None
        if self.mode == "bar":
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit=unit, dynamic_ncols=True, smoothing=0.1, file=sys.stderr,
                             desc=None if what == "items" else what)

    @property
    def done(self) -> int:
        return self.indexed + self.skipped

    def rate(self) -> float:
        """Items per second since the start."""
        return self.done / max(time.monotonic() - self.start, 1e-9)

    def update(self, indexed: int = 0, skipped: int = 0) -> None:
        """Record newly finished items."""
        self.indexed += indexed
        self.skipped += skipped
        if self._bar is not None:
            self._bar.update(indexed + skipped)
            self._bar.set_postfix(skipped=self.skipped, refresh=False)
        elif self.mode == "log" and time.monotonic() - self._last_log >= self.every_s:
            self._last_log = time.monotonic()
            self.log_line()

    def log_line(self) -> None:
        """One plain line: done/total, skipped, rate, ETA."""
        rate = self.rate()
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        log.info("%d/%d %s (%d skipped), %.2f %s/s, ETA %s", self.done, self.total, self.what, self.skipped, rate,
                 self.unit, _duration(eta))

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self.mode == "log" and self.total:
            self.log_line()


def _duration(seconds: float) -> str:
    if seconds == float("inf"):
        return "?"
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
