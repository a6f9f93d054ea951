"""Collections page: browse a bundle's named case sets (kept beside it), compare two, add or remove cases (by id or
from the Curate page's exclusions), export a manifest CSV that ``cxr-explorer build`` reads back and the ids list.
UI only: the store is :mod:`retrieval.collections.store`; state in the URL (``coll``, ``vs``)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from cxr_explorer.retrieval.collections.store import (
    Collection,
    CollectionError,
    collection_manifest,
    current,
    default_author,
    list_collections,
    split_missing,
)
from cxr_explorer.retrieval.curate.export import BUILD_HINT
from cxr_explorer.retrieval.curate.review import current as review_state
from cxr_explorer.retrieval.curate.review import excluded, read_decisions, review_dir
from cxr_explorer.webapp import chrome, display, loaders, page_state

NONE = "(none)"
engine = loaders.current_engine()
bundle_dir = loaders.current_bundle_dir()
names = list_collections(bundle_dir)
STATE = page_state.PageState("collections", (
    page_state.text_field("k_name", "coll", names[0] if names else ""),
    page_state.text_field("k_vs", "vs", NONE),
))
STATE.restore()
chrome.page_header(engine, "Collections", " Named case sets kept beside the bundle (never inside it); every change "
                   "records how a case was added and by whom.")
bundle_ids = engine.cases.ids


def _act(op: str) -> None:
    """Form callback: add or remove the typed ids (or the Curate exclusions) in the chosen collection."""
    s = st.session_state
    ids = [line.strip() for line in str(s.get("k_ids") or "").replace(",", "\n").splitlines() if line.strip()]
    by = (s.get("k_by") or "").strip() or default_author()
    try:
        coll = Collection(bundle_dir, s.get("k_target") or "")
        if op == "curate":
            decisions, _ = read_decisions(review_dir(bundle_dir))
            ids = sorted(excluded(review_state(decisions)))
            if not ids:
                raise CollectionError("the Curate page has no excluded cases yet")
            entries = coll.add(ids, source="curate", detail="excluded on the Curate page", by=by)
        else:
            unknown = [i for i in ids if i not in set(bundle_ids)]
            if not ids:
                raise CollectionError("type one or more case ids")
            if op == "add" and unknown:
                raise CollectionError(f"no case with id {', '.join(unknown[:5])} in this bundle; nothing added")
            entries = (coll.add(ids, source="id", detail="Collections page", by=by) if op == "add"
                       else coll.remove(ids, by=by))
    except (CollectionError, OSError) as exc:
        s["k_message"] = ("error", f"Nothing changed: {exc}")
    else:
        verb = "Removed" if op == "remove" else "Added"
        s["k_message"] = ("ok", f"{verb} {len(entries)} case(s) ({coll.name}).")
        s["k_name"] = coll.name
        s["k_ids"] = ""


def members_table(coll: Collection) -> tuple[pd.DataFrame, list[str], list[str]]:
    """One row per member (id, in bundle, how added, detail, by, when), its missing ids and unreadable lines."""
    entries, problems = coll.entries()
    members = current(entries)
    _, missing = split_missing(members, bundle_ids)
    gone = set(missing)
    rows = [{"id": i, "in bundle": i not in gone, "added as": e.source, "detail": e.detail, "by": e.by,
             "added (UTC)": pd.Timestamp(e.ts_ns, unit="ns", tz="UTC").strftime("%Y-%m-%d %H:%M")}
            for i, e in members.items()]
    return pd.DataFrame(rows, columns=["id", "in bundle", "added as", "detail", "by", "added (UTC)"]), missing, problems


message = st.session_state.pop("k_message", None)
if message:
    (st.success if message[0] == "ok" else st.error)(display.md_escape(message[1]))

with st.form("k_edit", border=True):
    st.markdown("**Add or remove cases**")
    a, b = st.columns([2, 1])
    a.text_input("Collection", key="k_target", value=st.session_state.get("k_name", ""),
                 placeholder="teaching set")
    b.text_input("Your name", key="k_by", placeholder=default_author())
    st.text_area("Case ids (one per line or comma-separated)", key="k_ids", height=80)
    c, d, e = st.columns(3)
    c.form_submit_button("Add", on_click=_act, args=("add",), width="stretch")
    d.form_submit_button("Remove", on_click=_act, args=("remove",), width="stretch")
    e.form_submit_button("Add the Curate page's exclusions", on_click=_act, args=("curate",), width="stretch")

names = list_collections(bundle_dir)
if not names:
    st.info("No collections yet. Add cases here, or from the Search, Map or Curate page's “Add to a collection”.")
    STATE.save()
    st.stop()
if st.session_state.get("k_name") not in names:
    st.session_state["k_name"] = names[0]
left, right = st.columns(2)
left.selectbox("Collection", names, key="k_name")
right.selectbox("Compare with", [NONE, *names], key="k_vs")
coll = Collection(bundle_dir, st.session_state["k_name"])
table, missing, problems = members_table(coll)
st.text(f"{coll.name}: {len(table)} case(s)" + (f", {len(missing)} missing from this bundle" if missing else ""))
if missing:
    st.warning(f"{len(missing)} case id(s) of this collection are not in this bundle (rebuilt without them?); they "
               "stay in the collection and in the ids list, and are left out of the manifest.")
    st.text("Missing: " + ", ".join(missing[:50]))
if problems:
    st.warning(f"{len(problems)} unreadable line(s) skipped (e.g. a write cut off by a crash); every complete change "
               "is kept.")
st.dataframe(table, hide_index=True, width="stretch")

other = st.session_state.get("k_vs", NONE)
if other != NONE and other in names and other != coll.name:
    theirs = set(Collection(bundle_dir, other).members())
    mine = set(table["id"])
    st.subheader("Compare")
    a, b, c = st.columns(3)
    for col, label, ids in ((a, f"only in {coll.name}", mine - theirs), (b, "in both", mine & theirs),
                            (c, f"only in {other}", theirs - mine)):
        col.metric(label, len(ids))
        col.text("\n".join(sorted(ids)[:200]) or "-")

st.subheader("Export")
present = [i for i in table["id"] if i not in set(missing)]
manifest = collection_manifest(engine.cases.metadata, engine.facts.metadata_columns, present)
a, b = st.columns(2)
a.download_button("Manifest CSV", manifest.to_csv(index=False).encode(), f"{coll.name}.csv", "text/csv",
                  key="k_dl_manifest", on_click="ignore", width="stretch")
b.download_button("Ids list", "".join(f"{i}\n" for i in table["id"]).encode(), f"{coll.name}.ids.txt",
                  "text/plain", key="k_dl_ids", on_click="ignore", width="stretch")
st.caption("Rebuild the collection as a bundle of its own with:")
st.code(BUILD_HINT.format(csv=f"{coll.name}.csv"), language="bash", wrap_lines=True)
STATE.save()
