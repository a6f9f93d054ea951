"""The one "add to a collection" form of the Search, Map and Curate pages (UI only; the store is
:mod:`retrieval.collections.store`, the page to browse them is ``views/collections``).

A page hands over the cases it can add (one or more labelled id lists), how they came in (``source`` and ``detail``)
and, when it already knows who is working, that name. The author is the signed-in identity when sign-in is on, else
that name, else the name typed in the form, else the login name (:func:`default_author`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import streamlit as st

from cxr_explorer.retrieval.collections.store import (
    Collection,
    CollectionError,
    check_by,
    default_author,
    list_collections,
)
from cxr_explorer.webapp import auth, display

NEW = "(a new one: type its name)"


def signed_in_author() -> str | None:
    """The signed-in person as an author (their email when the store accepts it, else the review-file name), or
    None when sign-in is off."""
    who = auth.identity()
    if who is None:
        return None
    try:
        return check_by(who.user)
    except CollectionError:
        return who.curator_name


def add_cases(bundle_dir: str, name: str, ids: Sequence[str], source: str, detail: str, by: str) -> tuple[bool, str]:
    """Add the cases not yet in collection ``name`` (created on the first add); returns (ok, one line for the user:
    how many were added and how many were already there, or why nothing was)."""
    wanted = list(dict.fromkeys(str(i) for i in ids))
    try:
        coll = Collection(bundle_dir, name.strip())
        if not wanted:
            raise CollectionError("there are no cases to add")
        have = coll.members() if coll.exists() else {}
        new = [i for i in wanted if i not in have]
        entries = coll.add(new, source=source, detail=detail, by=by)
    except (CollectionError, OSError) as exc:
        return False, f"Not added: {exc}"
    auth.record("collect", collection=coll.name, source=source, added=len(entries))
    return True, f"Added {len(entries)} case(s) to “{coll.name}”; {len(wanted) - len(new)} already there."


def _submit(bundle_dir: str, prefix: str, choices: Mapping[str, Sequence[str]], source: str, detail: str,
            by: str) -> None:
    """Form callback (before the page is drawn again, so the picker lists a new collection at once)."""
    s = st.session_state
    pick = s.get(f"{prefix}_coll_pick") or NEW
    name = str(s.get(f"{prefix}_coll") or "").strip() or (pick if pick != NEW else "")
    author = by or str(s.get(f"{prefix}_by") or "").strip() or default_author()
    which = s.get(f"{prefix}_coll_which") if len(choices) > 1 else next(iter(choices))
    s[f"{prefix}_coll_message"] = add_cases(bundle_dir, name, choices.get(str(which), []), source, detail, author)


def add_form(bundle_dir: str, prefix: str, choices: Mapping[str, Sequence[str]], source: str, detail: str,
             title: str = "Add to a collection", known_by: str = "") -> None:
    """The form: a new name or an existing collection, who adds (unless known), which of ``choices`` (label -> case
    ids; a radio when there are several) and the Add button; the outcome is one line under it. Widget keys start
    with ``prefix`` (``<prefix>_coll`` the typed name, ``<prefix>_coll_pick`` the existing one, ``<prefix>_by``,
    ``<prefix>_coll_which``)."""
    by = signed_in_author() or known_by.strip()
    with st.form(f"{prefix}_collect", border=True):
        st.markdown(f"**{title}** (kept beside the bundle; see the Collections page)")
        have = list_collections(bundle_dir)
        a, b = st.columns(2)
        a.text_input("Collection", key=f"{prefix}_coll", placeholder="a new name, e.g. teaching set")
        if have:
            b.selectbox("or an existing collection", [NEW, *have], key=f"{prefix}_coll_pick")
        c, d = st.columns(2)
        if by:
            c.text(f"Adding as {by}")
        else:
            c.text_input("Your name", key=f"{prefix}_by", placeholder=default_author())
        if len(choices) > 1:
            d.radio("Add", list(choices), key=f"{prefix}_coll_which")
        st.form_submit_button("Add", on_click=_submit, args=(bundle_dir, prefix, dict(choices), source, detail, by))
        outcome = st.session_state.pop(f"{prefix}_coll_message", None)
        if outcome:
            (st.success if outcome[0] else st.error)(display.md_escape(outcome[1]))
