"""Packaging: one ``cxr_explorer`` namespace mapped onto the repository's folders by setuptools' ``package-dir``
(no links), built as a wheel and an sdist that each install into a clean virtualenv and import every module."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

import cxr_explorer
from tests.helpers.paths import REPO

SCRIPTS = {"app", "page"}  # Streamlit scripts (webapp/app.py, views/*/page.py): they draw when imported
IMPORT_ALL = f"""
import importlib, pkgutil, sys, cxr_explorer
from importlib.metadata import version
names = [m.name for m in pkgutil.walk_packages(cxr_explorer.__path__, "cxr_explorer.")]
skip = {sorted(SCRIPTS)!r}
for name in names:
    if name.endswith(".__main__") or (name.rsplit(".", 1)[-1] in skip and name.startswith("cxr_explorer.webapp")):
        continue
    module = importlib.import_module(name)
    assert module.__file__.startswith(sys.prefix), (name, module.__file__)
assert version("cxr-explorer") == cxr_explorer.__version__
print(len(names))
"""


def package_dirs() -> dict[str, str]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    return dict(config["tool"]["setuptools"]["package-dir"])


def tracked(pattern: str = "*") -> set[str]:
    out = subprocess.run(["git", "ls-files", pattern], cwd=REPO, capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_no_symlinks_are_tracked() -> None:
    modes = subprocess.run(["git", "ls-files", "-s"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    links = [line.split()[-1] for line in modes.splitlines() if line.startswith("120000")]
    assert links == []


def test_the_version_is_written_once() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in config["project"] and "version" in config["project"]["dynamic"]
    assert config["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "cxr_explorer.__version__"}


def test_every_package_folder_is_mapped() -> None:
    mapping = package_dirs()
    assert mapping == {"cxr_explorer": "cxr_explorer", "cxr_explorer.retrieval": "retrieval",
                       "cxr_explorer.index": "index", "cxr_explorer.webapp": "webapp"}
    for folder in mapping.values():
        for sub in (REPO / folder).rglob("*"):
            if sub.is_dir() and sub.name != "__pycache__" and any(sub.glob("*.py")):
                assert (sub / "__init__.py").is_file(), f"{sub.relative_to(REPO)} lacks __init__.py"


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(REPO)], check=True,
                   capture_output=True, cwd=out)
    return out


def wheel_files(dist: Path) -> set[str]:
    (wheel,) = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


@pytest.mark.slow
def test_the_wheel_holds_every_module_at_its_import_path(dist: Path) -> None:
    names = wheel_files(dist)
    for package, folder in package_dirs().items():
        prefix = package.replace(".", "/")
        for path in tracked(f"{folder}/*.py"):
            inside = prefix + path[len(folder):]
            assert inside in names, f"{path} missing from the wheel as {inside}"


@pytest.mark.slow
def test_the_sdist_tree_is_the_repository_tree(dist: Path) -> None:
    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        members = [m.name.split("/", 1)[1] for m in archive.getmembers() if m.isfile() and "/" in m.name]
    generated = {"PKG-INFO", "setup.cfg"}
    strays = [m for m in members if m not in tracked() and m not in generated and ".egg-info/" not in m]
    assert strays == []
    for folder in package_dirs().values():
        assert tracked(f"{folder}/*.py") <= set(members), folder


def clean_venv(where: Path) -> Path:
    """A new virtualenv that sees this environment's installed dependencies but not the editable checkout."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    (site,) = where.glob("lib/python*/site-packages")
    deps = [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]
    (site / "dependencies.pth").write_text("\n".join(deps) + "\n")
    return where / "bin" / "python"


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["*.whl", "*.tar.gz"])
def test_each_artefact_installs_and_imports_cleanly(dist: Path, tmp_path: Path, kind: str) -> None:
    (artefact,) = dist.glob(kind)
    python = clean_venv(tmp_path / "venv")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                    str(artefact)], check=True, capture_output=True, cwd=tmp_path)
    done = subprocess.run([str(python), "-W", "error::DeprecationWarning:cxr_explorer", "-c", IMPORT_ALL],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert int(done.stdout.split()[-1]) > 100
    cli = subprocess.run([str(tmp_path / "venv" / "bin" / "cxr-explorer"), "--help"], capture_output=True, text=True,
                         cwd=tmp_path)
    assert cli.returncode == 0 and "build" in cli.stdout, cli.stderr
    assert cxr_explorer.__version__
