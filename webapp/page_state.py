"""One shareable state per page, kept in the URL and in the session, that survives going to another page and back.

Each page declares its state in one call, a :class:`PageState` of :class:`Field` s (a session key, usually a
widget's, a URL parameter, a default and a parser); it calls :meth:`PageState.restore` before drawing its widgets and
:meth:`PageState.save` after them. The app's own choices (the bundle) are a shared :class:`PageState` that every
page's URL carries. The rules:

* The URL is followed whenever it differs from the one this page's last run left: a shared link in a fresh browser,
  Back/Forward (Streamlit re-runs the page with the older query string, also when it holds none of the page's
  parameters: that is the page as it was before the user's first change) or a link from another page.
* Otherwise the values kept in the session are put back, because Streamlit forgets a widget's value while its page is
  not drawn.
* ``save`` writes the URL only when the user changed something in this run (a widget, a button's callback), and
  then writes it once: Streamlit adds one browser history entry per write, so every change is one entry and Back
  undoes it. Opening a page, arriving by a link and Back/Forward write nothing. Values a page fixes by itself (an
  unknown id replaced, a page number clamped) go through :meth:`PageState.correct`: shown, but no change of the
  user's, so the URL keeps what the user gave until the next change. Values at their default are left out of the
  URL, the other pages' parameters are left in place, so one URL holds the whole app's state.

The URL only ever holds plain values; nothing read from it is a path, and each value is parsed and bounded here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import streamlit as st

Params = dict[str, list[str]]
MAX_TEXT = 20_000  # longest text value read back from a URL (queries are written in full up to this)
LAST_PAGE = "_page_state_last"  # session key: the page whose state the last run restored
SHARED = "_page_state_shared"  # session key: the shared states' parameters as last saved ({param: [values]})


def _text(values: list[str]) -> str:
    return values[0][:MAX_TEXT] if values else ""


def _dump_text(value: Any) -> list[str]:
    text = str(value or "")
    return [text[:MAX_TEXT]] if text.strip() else []


@dataclass(frozen=True)
class Field:
    """One piece of page state: ``key`` in ``st.session_state``, ``param`` in the URL.

    ``parse`` turns the URL's values for ``param`` into a value (raising ValueError falls back to ``default``);
    ``dump`` turns a value into URL values (``[]`` = left out of the URL).
    """

    key: str
    param: str
    default: Any
    parse: Callable[[list[str]], Any] = _text
    dump: Callable[[Any], list[str]] = _dump_text


def text_field(key: str, param: str, default: str = "") -> Field:
    """Free text (a query, phrases)."""
    return Field(key, param, default)


def choice_field(key: str, param: str, choices: Sequence[Any], default: Any) -> Field:
    """One of ``choices`` (compared by text form); anything else falls back to ``default``."""
    by_text = {str(c).lower(): c for c in choices}

    def parse(values: list[str]) -> Any:
        if not values or values[0].lower() not in by_text:
            raise ValueError("not a choice")
        return by_text[values[0].lower()]

    return Field(key, param, default, parse, lambda v: [] if v is None else [str(v).lower()])


def int_field(key: str, param: str, default: int, lo: int, hi: int) -> Field:
    """An integer clamped to [lo, hi]."""
    return Field(key, param, default, lambda v: min(hi, max(lo, int(v[0]))), lambda v: [str(int(v))])


def float_field(key: str, param: str, default: float | None, lo: float, hi: float) -> Field:
    """A float clamped to [lo, hi] (None = left out)."""

    def parse(values: list[str]) -> float:
        f = float(values[0])
        if f != f:
            raise ValueError("NaN")
        return min(hi, max(lo, f))

    return Field(key, param, default, parse, lambda v: [] if v is None else [f"{float(v):.3f}"])


def range_field(key: str, param: str, default: tuple[float, float], lo: float, hi: float) -> Field:
    """A (low, high) pair written as ``low,high``."""

    def parse(values: list[str]) -> tuple[float, float]:
        a, b = (min(hi, max(lo, float(x))) for x in values[0].split(",", 1))
        if not a < b:
            raise ValueError("empty range")
        return (a, b)

    return Field(key, param, default, parse, lambda v: [f"{float(v[0]):g},{float(v[1]):g}"])


def bool_field(key: str, param: str, default: bool = False) -> Field:
    """A toggle written as ``1`` when on and ``0`` when off (only where it differs from ``default``)."""
    return Field(key, param, default, lambda v: v[0] == "1", lambda v: ["1" if v else "0"])


def list_field(key: str, param: str, allowed: Callable[[str], bool] | None = None) -> Field:
    """Several values (a repeated parameter); ``allowed`` drops the unknown ones."""
    return Field(key, param, [], lambda v: [x for x in v if allowed is None or allowed(x)],
                 lambda v: [str(x) for x in (v or [])])


def link_params(name: str) -> Params:
    """The URL parameters of page ``name`` as it was left, plus the shared ones (the bundle), for a link to it:
    arriving by such a link shows the page as the user left it and adds one history entry."""
    out = shared_params()
    out.update(st.session_state.get(f"_page_url_{name}", {}))
    return out


def shared_params() -> Params:
    """The parameters of the shared states (the bundle choice) as last saved; ``[]`` values are left out."""
    return {k: list(v) for k, v in st.session_state.get(SHARED, {}).items() if v}


def url_params() -> Params:
    """The current URL query as ``{param: [values]}``."""
    return {k: list(st.query_params.get_all(k)) for k in st.query_params}




@dataclass(frozen=True)
class PageState:
    """The state of one page (``name`` keys its kept values and its URL in the session). ``shared`` marks the app's
    own state (drawn by every page): each page's URL carries its parameters, and it does not count as a page."""

    name: str
    fields: tuple[Field, ...]
    shared: bool = False

    @property
    def _keep(self) -> str:
        return f"_page_state_{self.name}"

    @property
    def _written(self) -> str:
        return f"_page_url_{self.name}"

    @property
    def _seen(self) -> str:
        return f"_page_seen_{self.name}"

    @property
    def _base(self) -> str:
        return f"_page_base_{self.name}"

    def params_of(self, params: Mapping[str, list[str]]) -> Params:
        """Only this page's parameters of ``params``."""
        mine = {f.param for f in self.fields}
        return {k: list(v) for k, v in params.items() if k in mine}

    def from_url(self, params: Mapping[str, list[str]]) -> dict[str, Any]:
        """Every field's value from ``params`` (defaults for the missing or invalid ones)."""
        out: dict[str, Any] = {}
        for f in self.fields:
            values = list(params.get(f.param, []))
            try:
                out[f.key] = f.parse(values) if values else f.default
            except (ValueError, TypeError, IndexError):
                out[f.key] = f.default
        return out

    def to_url(self, state: Mapping[str, Any]) -> Params:
        """The URL parameters of ``state`` (fields at their default left out)."""
        out: Params = {}
        for f in self.fields:
            value = state.get(f.key, f.default)
            if value == f.default:
                continue
            dumped = f.dump(value)
            if dumped:
                out[f.param] = dumped
        return out

    def _values(self) -> dict[str, Any]:
        return {f.key: st.session_state.get(f.key, f.default) for f in self.fields}

    def restore(self) -> bool:
        """Put the page's state into ``st.session_state`` before its widgets are drawn; True when it came from the
        URL (a link, Back/Forward, a first visit), False when the kept values were used."""
        ours = self.params_of(url_params())
        kept: dict[str, Any] = st.session_state.get(self._keep, {})
        arrived = False
        if not self.shared:
            arrived = st.session_state.get(LAST_PAGE) != self.name  # the previous run drew another page
            st.session_state[LAST_PAGE] = self.name
        from_url = ours != st.session_state.get(self._seen)
        values = self.from_url(ours) if from_url else kept
        for f in self.fields:
            # on arrival the kept values win over any widget value Streamlit carried over from an interrupted run
            if from_url or f.key not in st.session_state or (arrived and f.key in kept):
                st.session_state[f.key] = values.get(f.key, f.default)
        # kept now, not only by ``save`` at the end: a run cut short (the user left the page at once) loses nothing
        st.session_state[self._keep] = self._values()
        if from_url or self._base not in st.session_state:
            st.session_state[self._base] = self._values()  # what the user's changes in this run are measured from
            st.session_state[self._seen] = ours
        return from_url

    def correct(self, **values: Any) -> None:
        """Values the page fixed by itself (an unknown id replaced by a valid one, a page number clamped): shown and
        kept, but not a change of the user's, so they add no history entry."""
        st.session_state.update(values)
        base = dict(st.session_state.get(self._base, {}))
        base.update(values)
        st.session_state[self._base] = base

    def set(self, **values: Any) -> Params:
        """Change kept values from another page (e.g. "Ground this case" preparing Grounding); returns the URL
        parameters that show the page with them (for ``st.switch_page(..., query_params=...)``)."""
        kept = {f.key: f.default for f in self.fields}
        kept.update(st.session_state.get(self._keep, {}))
        kept.update(values)
        st.session_state[self._keep] = kept
        for key, value in values.items():
            st.session_state[key] = value
        return {**shared_params(), **self.to_url(kept)}

    def save(self) -> None:
        """Keep the page's values; when the user changed any in this run, write the URL once: the other pages'
        parameters as they are, the shared ones as last saved, this page's values (defaults left out)."""
        state = self._values()
        st.session_state[self._keep] = state
        ours = self.to_url(state)
        changed = ours != self.to_url(st.session_state.get(self._base, {}))
        st.session_state[self._base] = state
        st.session_state[self._written] = ours
        if self.shared:
            st.session_state[SHARED] = {f.param: ours.get(f.param, []) for f in self.fields}
        current = url_params()
        if not changed:
            st.session_state[self._seen] = self.params_of(current)
            return
        mine = {f.param for f in self.fields}
        wanted = {k: v for k, v in current.items() if k not in mine}  # the other pages' state
        for param, values in st.session_state.get(SHARED, {}).items():
            wanted.pop(param, None)
            if values:
                wanted[param] = list(values)
        wanted.update(ours)
        st.session_state[self._seen] = ours
        if wanted != current:
            st.query_params.from_dict(wanted)
