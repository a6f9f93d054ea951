"""The curation checks, one :class:`CheckSpec` each: what the CLI, the Curate page and the benchmarks run and show.

A check is one module that defines its function and settings, declares a ``CheckSpec`` and calls
:func:`register` once. This module imports the built-in check modules at its end, and the package imports this
module first, so every check is registered, in the order below, before any of them is listed or run. Readers take
names, titles, help, columns, settings (thresholds) and the function to run from :func:`checks` / :func:`get`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from enum import Enum
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import numpy as np

from cxr_explorer.retrieval.curate.base import CheckResult, CurateData

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

S = TypeVar("S", bound="DataclassInstance")


class Need(Enum):
    """An input a check cannot run without (besides the bundle's vectors); the value names it for a user."""

    LABEL_COLUMN = "label column"
    SPLIT_COLUMN = "split column"
    OTHER_BUNDLE = "second bundle"
    THUMBNAILS = "thumbnails"


@dataclass(frozen=True)
class CheckInputs:
    """What one run offers besides the bundle's own data: the chosen label / split columns, a second bundle to
    compare with and zero-shot prompts per label (``{label: (positive [D], negative [D])}``)."""

    label_col: str | None = None
    split_col: str | None = None
    other: CurateData | None = None
    prompts: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None

    def has(self, need: Need, data: CurateData) -> bool:
        """Whether ``need`` is met for a run over ``data``."""
        if need is Need.LABEL_COLUMN:
            return bool(self.label_col)
        if need is Need.SPLIT_COLUMN:
            return bool(self.split_col)
        if need is Need.OTHER_BUNDLE:
            return self.other is not None
        return data.thumbnail is not None


@dataclass(frozen=True)
class Tunable:
    """A setting the CLI's shared options set: ``option`` is the option's name (``k`` for ``--k``,
    ``dup_threshold`` for ``--dup-threshold``), ``field`` the settings field it sets."""

    option: str
    field: str


@dataclass(frozen=True)
class CheckSpec(Generic[S]):
    """One check.

    ``name``: its key (report file names, ``c_check`` in the page's URL, review decisions); ``title``: how it is
    named to a user; ``help``: one line on what it finds; ``looks_for``: that in a few words (the page's "Choose a
    label column to look for ..."); ``columns``: its own table columns a reviewer reads first; ``settings``: the
    frozen dataclass of its thresholds (its defaults are the defaults everywhere); ``run(data, settings, inputs)``:
    the check itself, returning a table worst first; ``needs``: inputs without which it is skipped;
    ``tunables``: settings the CLI's shared options set; ``short_title``: a shorter title for the page's list;
    ``pair_caption``: set when each row is a pair (``other_row``), the caption of the other image;
    ``shows_report``: the page shows each case's report; ``terms``: (name, one line) for each column and threshold
    a reader meets (the page's "What the names mean").
    """

    name: str
    title: str
    help: str
    looks_for: str
    columns: tuple[str, ...]
    settings: type[S]
    run: Callable[[CurateData, S, CheckInputs], CheckResult]
    needs: frozenset[Need] = frozenset()
    tunables: tuple[Tunable, ...] = ()
    short_title: str = ""
    pair_caption: str = ""
    shows_report: bool = False
    terms: tuple[tuple[str, str], ...] = ()

    @property
    def page_title(self) -> str:
        """The title in the Curate page's list of checks."""
        return self.short_title or self.title

    def missing(self, data: CurateData, inputs: CheckInputs) -> list[Need]:
        """The needs ``inputs`` leave unmet for a run over ``data`` (empty: the check applies)."""
        return [n for n in sorted(self.needs, key=lambda n: n.name) if not inputs.has(n, data)]

    def tuned(self, values: Mapping[str, Any]) -> S:
        """The default settings with the tunables found in ``values`` (CLI option name -> value) applied."""
        return replace(self.settings(), **{t.field: values[t.option] for t in self.tunables if t.option in values})

    def settings_from(self, value: object | None) -> S:
        """``value`` when it is this check's settings, the defaults when None; anything else is a TypeError."""
        if value is None:
            return self.settings()
        if not isinstance(value, self.settings):
            raise TypeError(f"settings of check {self.name!r} must be {self.settings.__name__}, got "
                            f"{type(value).__name__}")
        return value

    def run_with(self, data: CurateData, settings: object | None, inputs: CheckInputs) -> CheckResult:
        """Run the check over ``data`` with ``settings`` (None: the defaults)."""
        return self.run(data, self.settings_from(settings), inputs)


_CHECKS: dict[str, CheckSpec[Any]] = {}


def register(spec: CheckSpec[Any]) -> CheckSpec[Any]:
    """Add a check (listed and run after those registered before it); a name already taken is a ValueError."""
    if spec.name in _CHECKS:
        raise ValueError(f"a curation check named {spec.name!r} is already registered")
    _CHECKS[spec.name] = spec
    return spec


def checks() -> list[CheckSpec[Any]]:
    """Every registered check, in registration order."""
    return list(_CHECKS.values())


def get(name: str) -> CheckSpec[Any]:
    """The check called ``name``; an unknown name is a KeyError naming the registered ones."""
    if name not in _CHECKS:
        raise KeyError(f"no curation check {name!r}; registered: {', '.join(_CHECKS)}")
    return _CHECKS[name]


# The built-in checks register themselves on import; this order is the order they run and are listed in.
from cxr_explorer.retrieval.curate import mismatch, labels, outliers, pixels, leakage  # noqa: E402, F401, I001
