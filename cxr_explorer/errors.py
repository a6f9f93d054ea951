"""Errors a user can cause, and how the CLI turns them into one-line messages."""

from __future__ import annotations


class CliError(Exception):
    """A user-facing error: printed as ``cxr-explorer: error: <message>`` with a non-zero exit, no traceback."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def user_error_types() -> tuple[type[BaseException], ...]:
    """Exception types that describe bad input or setup rather than a bug; the CLI prints them in one line."""
    from retrieval.models.registry import UnknownModelError
    from retrieval.models.text_model import TextInputError
    from retrieval.models.weights import WeightsChecksumError, WeightsFormatError, WeightsNotFoundError

    types: list[type[BaseException]] = [CliError, UnknownModelError, TextInputError, WeightsChecksumError,
                                        WeightsFormatError, WeightsNotFoundError, FileNotFoundError]
    try:
        from retrieval.imageio import ImageLoadError

        types.append(ImageLoadError)
    except ImportError:  # pragma: no cover
        pass
    try:
        from index.chunks import BuildStateError
        from index.decode import DecodeWorkersError
        from index.presets import CorpusError

        types += [CorpusError, BuildStateError, DecodeWorkersError]
    except ImportError:  # pragma: no cover
        pass
    try:
        from retrieval.filters import QueryError

        types.append(QueryError)
    except ImportError:  # pragma: no cover
        pass
    try:
        from retrieval.bundle import BundleError

        types.append(BundleError)
    except ImportError:  # pragma: no cover - before the bundle module exists
        pass
    return tuple(types)
