"""Errors of the bundle store that a user can cause (printed by the CLI as one line, no traceback)."""

from __future__ import annotations


class StoreError(Exception):
    """A bundle folder that cannot be written now: busy, full disk, or an old format."""

    exit_code = 2


class WriterBusyError(StoreError):
    """Another job holds the writer lock of the folder."""


class DiskSpaceError(StoreError):
    """Not enough free space for the next write; committed work is kept and the same command resumes."""

    exit_code = 1
