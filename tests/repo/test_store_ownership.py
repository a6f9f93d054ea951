"""One owner per format: only ``retrieval/bundle/store/`` spells the name of a bundle's file or folder. Everything else
(index job, engine, app, CLI, benchmarks, tests) goes through :mod:`retrieval.bundle.store` and :class:`Bundle`;
dedicated format tests of the store are the exception."""

from __future__ import annotations

import ast
from pathlib import Path

from cxr_explorer.retrieval.bundle.store import names
from tests.helpers.paths import REPO

OWNER = REPO / "retrieval" / "bundle" / "store"
FORMAT_TESTS = {"tests/retrieval/bundle/test_bundle.py", "tests/retrieval/bundle/test_integrity.py",
                "tests/cli/test_damaged_bundles.py", "tests/webapp/test_damaged_bundle.py",
                "tests/retrieval/bundle/test_versions.py", "tests/repo/test_store_ownership.py"}
GENERIC = {names.TEMPORAL_DIR}  # also a manifest key and an everyday word: its files are named instead


def bundle_names() -> set[str]:
    """Every file and folder name the store owns (and the names format 1 used)."""
    found = {v for k, v in vars(names).items() if k.isupper() and isinstance(v, str)}
    found |= set(names.INDEX_FILES.values()) | set(names.LEGACY_MARKERS)
    return {n for n in found if n and n not in GENERIC and n != names.TMP_PREFIX}


def _exempt(tree: ast.AST) -> set[int]:
    """Docstrings, dict keys and subscripts (``manifest["temporal"]``, ``META["versions"]`` are keys, not files)."""
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
        elif isinstance(node, ast.Subscript):
            ids.add(id(node.slice))
        elif isinstance(node, ast.Dict):
            ids.update(id(k) for k in node.keys if k is not None)
    return ids


def offenders(path: Path, owned: set[str]) -> list[str]:
    """String literals of ``path`` that look like a path and name a bundle file (prose, keys excluded)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _exempt(tree)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            text = node.value.strip()
            if text and " " not in text and any(part in owned for part in text.replace("\\", "/").split("/")):
                out.append(f"{path.name}:{node.lineno}: {text!r}")
    return out


def python_files() -> list[Path]:
    files = []
    for top in ("retrieval", "index", "webapp", "cxr_explorer", "benchmarks", "tests", "scripts"):
        for path in (REPO / top).rglob("*.py"):
            rel = str(path.relative_to(REPO))
            if OWNER in path.parents or rel in FORMAT_TESTS:
                continue
            files.append(path)
    return files


def test_only_the_store_names_bundle_files() -> None:
    owned = bundle_names()
    assert {"manifest.json", "build.json", "chunks", "CURRENT", "versions", "writer.lock"} <= owned
    found = [hit for path in python_files() for hit in offenders(path, owned)]
    assert not found, "bundle file names outside retrieval/bundle/store (use it or Bundle):\n" + "\n".join(found)


def test_the_check_catches_a_file_name(tmp_path: Path) -> None:
    fake = tmp_path / "x.py"
    fake.write_text('"""Reads manifest.json (prose is fine)."""\nPATH = "out/manifest.json"\nOK = "a manifest"\n'
                    'KEY = m["versions"]\nCHUNK = root / "chunks"\n')
    assert offenders(fake, bundle_names()) == ["x.py:2: 'out/manifest.json'", "x.py:5: 'chunks'"]
