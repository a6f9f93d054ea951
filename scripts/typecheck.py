"""Type-check the project with mypy as it is installed: one ``cxr_explorer`` namespace over several folders.

setuptools maps ``cxr_explorer.retrieval`` to ``retrieval/`` (and index, webapp) through ``package-dir`` in
pyproject.toml; an editable install resolves that with an import hook, which mypy cannot follow. So the packages are
copied into ``build/typecheck/`` under their import names, beside copies of the folders in CHECKED, mypy checks that
tree with the options of ``[tool.mypy]``, and every path in its report is mapped back to the source file.

Usage: ``python scripts/typecheck.py [MYPY ARGS...]``; exits with mypy's status.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import tomllib
from pathlib import Path

from mypy import api

ROOT = Path(__file__).resolve().parents[1]
VIEW = ROOT / "build" / "typecheck"
CHECKED = ("benchmarks", "tests")


def package_dirs() -> dict[str, Path]:
    """The import name -> source folder mapping of pyproject.toml's ``[tool.setuptools.package-dir]``."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return {name: ROOT / folder for name, folder in config["tool"]["setuptools"]["package-dir"].items()}


def mirror(mapping: dict[str, Path]) -> dict[str, str]:
    """Copy the ``.py`` files of the packages and of CHECKED into VIEW; returns copy -> source, relative paths."""
    shutil.rmtree(VIEW, ignore_errors=True)
    back: dict[str, str] = {}
    folders = [(VIEW.joinpath(*name.split(".")), folder) for name, folder in mapping.items()]
    folders += [(VIEW / name, ROOT / name) for name in CHECKED]
    for target, folder in folders:
        for source in folder.rglob("*.py"):
            if any(part.startswith(".") or part == "__pycache__" for part in source.relative_to(folder).parts):
                continue
            copy = target / source.relative_to(folder)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy)
            back[str(copy.relative_to(VIEW))] = str(source.relative_to(ROOT))
    return back


def main(argv: list[str]) -> int:
    mapping = package_dirs()
    back = mirror(mapping)
    roots = [name for name in mapping if "." not in name] + list(CHECKED)
    config = ["--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(ROOT / ".mypy_cache")]
    with contextlib.chdir(VIEW):
        out, err, status = api.run([*config, *argv, *roots])
    for copy, source in sorted(back.items(), key=lambda kv: -len(kv[0])):
        out = out.replace(copy, source)
    sys.stdout.write(out)
    sys.stderr.write(err)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
