"""The CLI answers --help, --version and argument errors before any model code (torch, transformers) is imported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.paths import REPO

_PROBE = """
import sys
from cxr_explorer.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
heavy = sorted(m for m in ("torch", "transformers", "faiss") if m in sys.modules)
print("HEAVY=" + ",".join(heavy))
raise SystemExit(code)
"""


def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _PROBE, *argv], cwd=REPO, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.slow  # three fresh Python processes
def test_version_and_help_import_no_model_code() -> None:
    for argv in (["--version"], ["--help"], ["build", "--help"], ["search", "--help"]):
        result = _cli(*argv)
        assert result.returncode == 0, result.stderr
        assert "HEAVY=\n" in result.stdout, (argv, result.stdout)


def test_bad_k_is_refused_before_the_bundle_or_model_is_opened(tmp_path: Path) -> None:
    result = _cli("search", str(tmp_path / "no-bundle"), "--text", "effusion", "--k", "0")
    assert result.returncode == 2
    assert "argument --k: must be an integer from 1 to 1000, got 0" in result.stderr
    assert "HEAVY=\n" in result.stdout


def test_output_paths_of_the_wrong_kind_are_one_line_before_any_work(tmp_path: Path) -> None:
    a_file = tmp_path / "taken"
    a_file.write_text("x")
    merged = _cli("merge", str(tmp_path / "shard0"), "--out", str(a_file))
    assert merged.returncode == 2 and "Traceback" not in merged.stderr
    assert f"--out {a_file} exists and is not a folder" in merged.stderr
    grounded = _cli("ground", str(tmp_path / "no-bundle"), "--id", "x", "--text", "effusion", "--out", str(tmp_path))
    assert grounded.returncode == 2 and "Traceback" not in grounded.stderr
    assert f"--out {tmp_path} is a folder; give a PNG file name" in grounded.stderr
    assert "HEAVY=\n" in grounded.stdout


def test_app_without_any_bundle_says_so_and_exits(tmp_path: Path) -> None:
    """The container's command on an empty volume: one line and exit 2, not a restart loop."""
    (tmp_path / "not-a-bundle").mkdir()
    result = _cli("app", "--bundles-in", str(tmp_path))
    assert result.returncode == 2
    assert f"no bundle in {tmp_path}: put folders written by 'cxr-explorer build' there" in result.stderr
    assert "not serving not-a-bundle" in result.stderr and "Traceback" not in result.stderr
