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
    "cxr_explorer.retrieval.models.registry": ("UnknownModelError",),
    "cxr_explorer.retrieval.models.text_model": ("TextInputError",),
    "cxr_explorer.retrieval.models.weights": ("WeightsChecksumError", "WeightsFormatError", "WeightsNotFoundError"),
    "cxr_explorer.retrieval.inputs.images": ("ImageLoadError",),
    "cxr_explorer.retrieval.engine.filters": ("QueryError",),
    "cxr_explorer.retrieval.bundle.reader": ("BundleError",),
    "cxr_explorer.index.presets": ("CorpusError",),
    "cxr_explorer.index.build_state": ("BuildStateError",),
    "cxr_explorer.retrieval.bundle.store.errors": ("StoreError", "BundleError"),
    "cxr_explorer.index.decode": ("DecodeWorkersError",),
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
