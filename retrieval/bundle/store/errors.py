"""Errors of the bundle store that a user can cause (printed by the CLI as one line, no traceback)."""

from __future__ import annotations

from pathlib import Path


class StoreError(Exception):
    """A bundle folder that cannot be written now: busy, full disk, or an old format."""

    exit_code = 2


class WriterBusyError(StoreError):
    """Another job holds the writer lock of the folder."""


class DiskSpaceError(StoreError):
    """Not enough free space for the next write; committed work is kept and the same command resumes."""

    exit_code = 1


class BundleError(Exception):
    """A user-facing bundle problem: missing or damaged bundle, wrong format version, model mismatch."""


class DamagedBundleError(BundleError):
    """A bundle file whose bytes or fields are not what was written: one line ``damaged bundle: FILE, FIELD: what;
    fix``. Nothing is read from it and no writer touches the folder."""

    def __init__(self, root: Path | str, file: str, problem: str, fix: str | None = None) -> None:
        self.root, self.file, self.problem = Path(root), file, problem
        self.fix = fix or f"check it with `cxr-explorer info {root} --verify` and rebuild it"
        super().__init__(f"damaged bundle: {Path(root) / file}, {problem}; {self.fix}")
