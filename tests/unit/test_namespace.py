"""Packaging contract: the distribution installs one top-level package, ``cxr_explorer``; the top-level folders
``retrieval/``, ``index/`` and ``webapp/`` are its subpackages (reached through the links in ``cxr_explorer/``), and no
code imports them as top-level packages (which would load every module twice, under two names)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import setuptools

ROOT = Path(__file__).resolve().parents[2]
SUBPACKAGES = ("retrieval", "index", "webapp")


def test_one_top_level_package_is_installed() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    found = setuptools.find_packages(str(ROOT), include=include)
    assert {name.split(".")[0] for name in found} == {"cxr_explorer"}
    for sub in SUBPACKAGES:
        assert f"cxr_explorer.{sub}" in found, sub
    assert "cxr_explorer.retrieval.models" in found and "cxr_explorer.commands" in found


def test_subpackages_are_the_top_level_folders() -> None:
    for sub in SUBPACKAGES:
        link = ROOT / "cxr_explorer" / sub
        assert link.is_symlink() and link.resolve() == (ROOT / sub).resolve(), sub


def test_nothing_imports_a_subpackage_as_top_level() -> None:
    pattern = re.compile(rf"^\s*(from|import)\s+({'|'.join(SUBPACKAGES)})(\.|\s|$)", re.M)
    offenders = []
    for folder in ("cxr_explorer", *SUBPACKAGES, "benchmarks", "tests", "scripts"):
        for path in (ROOT / folder).rglob("*.py"):
            if ".venv" in path.parts:
                continue
            if pattern.search(path.read_text(encoding="utf-8")):
                offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, offenders


def test_the_loaded_modules_live_under_the_namespace() -> None:
    import cxr_explorer.retrieval.bundle as bundle

    assert bundle.__name__ == "cxr_explorer.retrieval.bundle"
    assert Path(bundle.__file__).resolve() == (ROOT / "retrieval" / "bundle.py").resolve()
