"""``cxr-explorer collection list|show|add|remove|export``: named case sets kept beside a bundle."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from cxr_explorer.commands.search import add_engine_options, hit_count
from cxr_explorer.errors import CliError
from cxr_explorer.retrieval.bundle.store import atomic

ACTIONS = ("list", "show", "add", "remove", "export")


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the subcommand."""
    p = sub.add_parser("collection", help="named case sets of a bundle: list, show, add, remove, export",
                       description="Collections live beside the bundle in <bundle>.collections/<name>.jsonl "
                       "(append-only; every change keeps how the case was added and by whom).")
    p.add_argument("action", choices=ACTIONS)
    p.add_argument("bundle", metavar="DIR", help="bundle folder")
    p.add_argument("name", nargs="?", default=None, help="collection name (all but list)")
    p.add_argument("--id", dest="ids", action="append", default=[], metavar="CASE", help="a case id; repeat")
    p.add_argument("--ids-file", default=None, metavar="PATH", help="a text file of case ids, one per line")
    p.add_argument("--text", default=None, metavar="PHRASE", help="add: the top --k hits of this text query")
    p.add_argument("--k", type=hit_count, default=10, help="add --text: how many hits (default 10)")
    p.add_argument("--where", action="append", default=[], metavar="COL=VALUE", help="add --text: metadata filter")
    p.add_argument("--by", default=None, help="who adds or removes (default: the login name)")
    p.add_argument("--out", default=None, metavar="CSV", help="export: the manifest CSV to write (plus CSV.ids.txt)")
    p.add_argument("--json", action="store_true", help="list / show: JSON")
    add_engine_options(p)
    p.set_defaults(func=run)


def _bundle(path: str) -> Any:
    from cxr_explorer.retrieval.bundle.reader import Bundle

    if not Path(path).is_dir():
        raise CliError(f"bundle folder {path} does not exist")
    return Bundle.open(path)


def _ids(args: argparse.Namespace) -> list[str]:
    ids = [i.strip() for i in args.ids if i.strip()]
    if args.ids_file is not None:
        try:
            text = Path(args.ids_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"cannot read --ids-file {args.ids_file}: {exc}") from None
        ids += [line.strip() for line in text.splitlines() if line.strip()]
    return list(dict.fromkeys(ids))


def run(args: argparse.Namespace) -> int:
    """Run one collection action."""
    from cxr_explorer.retrieval.collections import store
    from cxr_explorer.retrieval.engine.filters import QueryError

    try:
        if args.action == "list":
            return _list(args, store)
        if args.name is None:
            raise CliError(f"collection {args.action} needs a collection name")
        coll = store.Collection(args.bundle, args.name)
        by = store.check_by(args.by) if args.by is not None else store.default_author()
        if args.action == "add":
            return _add(args, coll, by)
        if args.action == "remove":
            ids = _ids(args)
            if not ids:
                raise CliError("collection remove needs --id or --ids-file")
            members = coll.members()
            absent = [i for i in ids if i not in members]
            if absent:
                raise CliError(f"not in collection {coll.name!r}: {', '.join(absent[:10])}"
                               + (f" and {len(absent) - 10} more" if len(absent) > 10 else ""))
            coll.remove(ids, by=by)
            print(f"removed {len(ids)} case(s) from {coll.name!r} ({len(members) - len(ids)} left)")
            return 0
        if args.action == "show":
            return _show(args, coll, store)
        return _export(args, coll, store)
    except QueryError as exc:
        raise CliError(str(exc)) from None


def _list(args: argparse.Namespace, store: Any) -> int:
    _bundle(args.bundle).close()
    rows = []
    for name in store.list_collections(args.bundle):
        coll = store.Collection(args.bundle, name)
        rows.append({"name": name, "cases": len(coll.members())})
    if args.json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print("no collections")
    else:
        for r in rows:
            print(f"{r['name']}\t{r['cases']} case(s)")
    return 0


def _add(args: argparse.Namespace, coll: Any, by: str) -> int:
    ids = _ids(args)
    if args.text is not None:
        from cxr_explorer.commands.search import open_engine
        from cxr_explorer.retrieval.engine.filters import parse_where

        if not args.text.strip():
            raise CliError("--text is empty")
        engine = open_engine(args)
        hits = engine.search_text(args.text, k=args.k, where=parse_where(args.where))
        entries = coll.add([h.id for h in hits], source="query", detail=f"text {args.text!r} k={args.k}", by=by)
        print(f"added {len(entries)} hit(s) of {args.text!r} to {coll.name!r}")
    if not ids:
        if args.text is None:
            raise CliError("collection add needs --id, --ids-file or --text")
        return 0
    bundle = _bundle(args.bundle)
    known = set(bundle.metadata["id"].astype(str))
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise CliError(f"no case with id {', '.join(repr(i) for i in unknown[:10])} in bundle {args.bundle}"
                       + (f" (and {len(unknown) - 10} more)" if len(unknown) > 10 else "") + "; nothing added")
    entries = coll.add(ids, source="id", detail="cxr-explorer collection add", by=by)
    print(f"added {len(entries)} case(s) to {coll.name!r}")
    return 0


def _show(args: argparse.Namespace, coll: Any, store: Any) -> int:
    entries, problems = coll.entries()
    members = store.current(entries)
    bundle = _bundle(args.bundle)
    _, missing = store.split_missing(members, bundle.metadata["id"].astype(str))
    for p in problems:
        print(f"cxr-explorer: warning: {p}", file=sys.stderr)
    rows = [{"id": i, "in_bundle": i not in set(missing), "source": e.source, "detail": e.detail, "by": e.by,
             "added_at": _iso(e.ts_ns)} for i, e in members.items()]
    if args.json:
        print(json.dumps({"name": coll.name, "cases": rows, "missing": missing}, indent=2, ensure_ascii=False))
        return 0
    print(f"{coll.name}: {len(rows)} case(s)" + (f", {len(missing)} missing from this bundle" if missing else ""))
    for r in rows:
        flag = "" if r["in_bundle"] else "  MISSING from this bundle"
        print(f"{r['id']}\t{r['source']}\t{r['by']}\t{r['added_at']}\t{r['detail']}{flag}")
    return 0


def _export(args: argparse.Namespace, coll: Any, store: Any) -> int:
    from cxr_explorer.retrieval.curate.export import BUILD_HINT

    if args.out is None:
        raise CliError("collection export needs --out MANIFEST.csv")
    members = coll.members()
    bundle = _bundle(args.bundle)
    present, missing = store.split_missing(members, bundle.metadata["id"].astype(str))
    manifest = store.collection_manifest(bundle.metadata, bundle.metadata_columns, present)
    out = Path(args.out)
    ids_path = out.with_name(out.name + ".ids.txt")
    atomic.write_text(out, manifest.to_csv(index=False))
    atomic.write_text(ids_path, "".join(f"{i}\n" for i in members))
    if missing:
        print(f"cxr-explorer: warning: {len(missing)} case(s) of {coll.name!r} are not in this bundle and are left "
              f"out of the manifest (kept in the ids list): {', '.join(missing[:20])}", file=sys.stderr)
    print(f"wrote {out} ({len(manifest)} case(s)) and {ids_path}")
    print("rebuild: " + BUILD_HINT.format(csv=out))
    return 0


def _iso(ts_ns: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts_ns / 1e9, tz=dt.UTC).isoformat(timespec="seconds")
