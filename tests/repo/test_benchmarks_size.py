"""The benchmarks stay the product's: benchmarks/ is at most a fifth of the product's Python lines, and no test
outside tests/benchmarks/ imports from benchmarks/ (test helpers live in tests/helpers/)."""

from __future__ import annotations

import ast
import subprocess

from tests.helpers.paths import REPO

PRODUCT = ("retrieval", "index", "webapp", "cxr_explorer")
MAX_SHARE = 0.20


def tracked_lines(*folders: str) -> int:
    """Lines (as ``wc -l`` counts them: newline characters) of the git-tracked .py files under ``folders``."""
    out = subprocess.run(["git", "ls-files", "-z", "--", *(f"{f}/*.py" for f in folders)], cwd=REPO,
                         capture_output=True, check=True)
    files = [REPO / name for name in out.stdout.decode().split("\0") if name]
    return sum(p.read_bytes().count(b"\n") for p in files if p.is_file())


def imports_benchmarks(source: str) -> list[int]:
    """Line numbers of ``import benchmarks[...]`` and ``from benchmarks[...] import ...`` statements in ``source``
    (anywhere: module level or inside a function)."""
    hits = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        if any(n == "benchmarks" or n.startswith("benchmarks.") for n in names):
            hits.append(node.lineno)
    return hits


def test_benchmarks_are_at_most_a_fifth_of_the_product() -> None:
    bench, product = tracked_lines("benchmarks"), tracked_lines(*PRODUCT)
    assert product > 0
    assert bench / product <= MAX_SHARE, f"benchmarks/ {bench:,} lines vs product {product:,}: {bench / product:.3f}"


def test_no_test_outside_tests_benchmarks_imports_benchmarks() -> None:
    offenders = []
    for path in sorted((REPO / "tests").rglob("*.py")):
        rel = path.relative_to(REPO)
        if rel.parts[:2] == ("tests", "benchmarks"):
            continue
        offenders += [f"{rel}:{line}" for line in imports_benchmarks(path.read_text(encoding="utf-8"))]
    assert not offenders, f"tests importing benchmarks/ (move what they need to tests/helpers/): {offenders}"


def test_the_import_check_sees_every_form() -> None:
    planted = ("import os\nimport benchmarks.x\nfrom benchmarks import y\n"
               "def f():\n    from benchmarks.common import z\n    import benchmarks\n")
    assert imports_benchmarks(planted) == [2, 3, 5, 6]
    clean = ("import benchmarksuite\nfrom mybenchmarks import b\nfrom . import benchmarks\n"
             "text = 'import benchmarks'\n# from benchmarks import y\n")
    assert imports_benchmarks(clean) == []
