"""Code rules a reviewer would otherwise check by eye: no single-letter module aliases, and the app's pages reach
the bundle through the Engine (``engine.cases``, ``engine.facts``, Engine methods), never ``engine.bundle``."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("retrieval", "index", "webapp", "cxr_explorer", "benchmarks", "tests", "scripts")
SINGLE_LETTER_ALIAS = re.compile(r"^\s*(?:from\s+\S+\s+)?import\s+(\S+)\s+as\s+([A-Za-z])\s*$", re.MULTILINE)
ALLOWED_ALIASES = {("torch.nn.functional", "F")}  # the PyTorch convention
BUNDLE_ACCESS = re.compile(r"\b(?:engine|eng)\.bundle\b")


def python_files(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py") if ".venv" not in p.parts)


def test_no_single_letter_module_aliases() -> None:
    found = []
    for path in python_files(*PACKAGES):
        for match in SINGLE_LETTER_ALIAS.finditer(path.read_text(encoding="utf-8")):
            line = match.group(0).strip()
            module = line.split(" import ")[0].removeprefix("from ") + "." + match.group(1) \
                if line.startswith("from ") else match.group(1)
            if (module, match.group(2)) not in ALLOWED_ALIASES:
                found.append(f"{path.relative_to(ROOT)}: {line}")
    assert found == [], "name the module instead:\n" + "\n".join(found)


def test_the_app_reaches_the_bundle_through_the_engine() -> None:
    found = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}" for p in python_files("webapp")
             for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if BUNDLE_ACCESS.search(line)]
    assert found == [], "use engine.cases / engine.facts / an Engine method:\n" + "\n".join(found)


def test_the_rules_see_what_they_forbid() -> None:
    """Guard against rules that cannot fail: each pattern matches a violating line."""
    assert SINGLE_LETTER_ALIAS.search("from retrieval import grounding as G\n")
    assert SINGLE_LETTER_ALIAS.search("import numpy as N\n")
    assert not SINGLE_LETTER_ALIAS.search("from retrieval.grounding.maps import PROMPTS as POSITIVE\n")
    assert BUNDLE_ACCESS.search("meta = engine.bundle.metadata") and not BUNDLE_ACCESS.search("engine.cases.count")
