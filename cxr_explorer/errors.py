"""Errors a user can cause, and how the CLI turns them into one-line messages."""

from __future__ import annotations

import sys


class CliError(Exception):
    """A user-facing error: printed as ``cxr-explorer: error: <message>`` with a non-zero exit, no traceback."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


#: module -> the exception types in it that describe bad input or setup rather than a bug.
USER_ERRORS: dict[str, tuple[str, ...]] = {
    "retrieval.models.registry": ("UnknownModelError",),
    "retrieval.models.text_model": ("TextInputError",),
    "retrieval.models.weights": ("WeightsChecksumError", "WeightsFormatError", "WeightsNotFoundError"),
    "retrieval.imageio": ("ImageLoadError",),
    "retrieval.filters": ("QueryError",),
    "retrieval.bundle": ("BundleError",),
    "index.presets": ("CorpusError",),
    "index.chunks": ("BuildStateError",),
    "retrieval.store.errors": ("StoreError",),
    "index.decode": ("DecodeWorkersError",),
}


def user_error_types() -> tuple[type[BaseException], ...]:
    """The user-error types of the modules imported so far (one that was never imported raised nothing), so that
    handling an error never imports torch."""
    types: list[type[BaseException]] = [CliError, FileNotFoundError]
    for module_name, names in USER_ERRORS.items():
        module = sys.modules.get(module_name)
        if module is not None:
            types += [getattr(module, name) for name in names]
    return tuple(types)
