"""Architecture rules (docs/architecture.md) checked over the parsed tree, each with a self-test that plants a
violation and sees the same checker catch it: import directions between retrieval/, index/ and webapp/, no Streamlit
in the engine, no torchvision or timm at runtime, pages reach the bundle through the Engine, no one-letter aliases,
Chromium tests marked, one place that finds the repository, files written atomically."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from tests.repo import rules

INSTALLED = ("retrieval", "index", "webapp", "cxr_explorer")


@dataclass(frozen=True)
class Rule:
    """One rule: its checker over ``folders``, the fix it asks for, and a planted violation with what it must find."""

    name: str
    check: Callable[[str, str], list[str]]
    folders: tuple[str, ...]
    fix: str
    planted: str
    planted_module: str
    expected: list[str]
    exempt: frozenset[str] = field(default_factory=frozenset)


RULES = [
    Rule("retrieval is the engine", rules.retrieval_imports, ("retrieval",),
         "retrieval/ imports neither the job, the app, the CLI nor streamlit; move this out or invert it",
         "import numpy\nfrom cxr_explorer.retrieval.bundle import reader\n"
         "def late() -> None:\n    import streamlit as st\n    from cxr_explorer.index.runner import run_build\n"
         "from cxr_explorer import webapp\nfrom ...webapp import loaders\n",
         "cxr_explorer.retrieval.engine.engine",
         ["4: imports streamlit", "5: imports cxr_explorer.index.runner",
          "5: imports cxr_explorer.index.runner.run_build", "6: imports cxr_explorer.webapp",
          "7: imports cxr_explorer.webapp", "7: imports cxr_explorer.webapp.loaders"]),
    Rule("the job does not use the app", rules.index_imports, ("index",), "index/ must not use webapp/",
         "from cxr_explorer.retrieval import limits\nfrom cxr_explorer.webapp.settings import bundle_dirs\n",
         "cxr_explorer.index.runner",
         ["2: imports cxr_explorer.webapp.settings", "2: imports cxr_explorer.webapp.settings.bundle_dirs"]),
    Rule("the app does not use the job", rules.webapp_imports, ("webapp",), "webapp/ uses retrieval/ only",
         "import streamlit as st\nfrom cxr_explorer.index import decode\nimport cxr_explorer.retrieval\n",
         "cxr_explorer.webapp.loaders", ["2: imports cxr_explorer.index", "2: imports cxr_explorer.index.decode"]),
    Rule("no torchvision or timm", rules.runtime_imports, INSTALLED,
         "torchvision and timm are not runtime dependencies",
         "import torch\ndef f() -> None:\n    from torchvision import transforms\nimport timm.models\n",
         "cxr_explorer.retrieval.models.encoders",
         ["3: imports torchvision", "3: imports torchvision.transforms", "4: imports timm.models"]),
    Rule("pages reach the bundle through the Engine", rules.bundle_attribute, ("webapp",),
         "use engine.cases / engine.facts / an Engine method",
         "meta = engine.bundle.metadata\nrows = loaders.engine(d, *opts).bundle.ids('images')\n"
         "count = engine.cases.count\nb = engine.cases._bundle\nb = getattr(engine, 'bundle')\nbundle = 1\n",
         "cxr_explorer.webapp.views.curate.loaders", ["1: .bundle", "2: .bundle", "4: ._bundle", "5: getattr bundle"]),
    Rule("no one-letter module aliases", rules.single_letter_aliases, rules.TREES, "name the module instead",
         "from cxr_explorer.retrieval import grounding as G\nimport numpy as N\nimport numpy as np\n"
         "from cxr_explorer.retrieval.grounding.maps import PROMPTS as POSITIVE\nimport torch.nn.functional as F\n",
         "tests.x", ["1: cxr_explorer.retrieval.grounding as G", "2: numpy as N"]),
    Rule("Chromium tests are marked browser", rules.unmarked_browser_tests, ("tests",),
         "add pytestmark = [pytest.mark.browser, ...]",
         "import pytest\nfrom benchmarks.browser import CHROMIUM\n", "tests.benchmarks.test_x",
         ["2: drives Chromium, no browser mark"]),
    Rule("tests find the repository in one place", rules.repo_from_file_path, ("tests",),
         "use tests.helpers.paths (REPO, SHARED_DATA, ...)",
         "from pathlib import Path\nREPO = Path(__file__).resolve().parents[2]\nHERE = Path(__file__).parent\n"
         "DATA = Path(__file__).parents[3].parent / 'shared'\n", "tests.x.test_y",
         ["2: Path(__file__).parents[...]", "4: Path(__file__).parents[...]"],
         # generate_fixture.py runs in the reference's own virtualenv, without the tests package
         exempt=frozenset({"tests/helpers/paths.py", "tests/reference/generate_fixture.py"})),
    Rule("files are written atomically", rules.direct_writes, INSTALLED,
         "write through cxr_explorer.retrieval.bundle.store.atomic (writing, write_bytes/text/json, write_set)",
         "import numpy as np\nfrom pathlib import Path\nwith open(p, 'w') as fh:\n    pass\n"
         "Path(p).write_text('x')\nnp.save(p, a)\ntable.to_csv(out / 'pixels.csv', index=False)\n"
         "text = table.to_csv(index=False)\nwith open(p, 'rb') as fh:\n    pass\nimage.save(args.out, format='PNG')\n"
         "image.save(buffer, format='PNG')\nwith Path(p).open(mode='a') as fh:\n    pass\n",
         "cxr_explorer.retrieval.curate.report",
         ["3: open(...) writes in place", "5: write_text(...) writes in place", "6: save(...) writes in place",
          "7: to_csv(...) writes in place", "11: save(...) writes in place", "13: open(...) writes in place"],
         # the owners: atomic writes themselves (files by rename, journals by append_line); the store, whose files go
         # into a build area or a staged version that is installed by one rename; the writer's FAISS indexes (into
         # that staged version); the text cache's scratch file (never read after a crash) and the replicas' process
         # logs (append-only output of the child processes)
         exempt=frozenset({"retrieval/bundle/store", "retrieval/bundle/writer.py", "index/text_cache_store.py",
                           "cxr_explorer/commands/serve.py"})),
]


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.name)
def test_the_tree_keeps_the_rule(rule: Rule) -> None:
    found = [hit for hit in rules.violations(rule.check, *rule.folders)
             if not any(hit.split(":")[0] == e or hit.startswith(e + "/") for e in rule.exempt)]
    assert found == [], f"{rule.fix}:\n" + "\n".join(found)


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.name)
def test_the_rule_catches_a_planted_violation(rule: Rule) -> None:
    assert rule.check(rule.planted, rule.planted_module) == rule.expected


def test_the_browser_rule_accepts_marked_modules() -> None:
    driving = "import pytest\nfrom benchmarks.browser import CHROMIUM\n"
    marked = driving + "pytestmark = [pytest.mark.slow, pytest.mark.browser]\n"
    assert rules.unmarked_browser_tests(marked, "tests.benchmarks.test_x") == []
    assert rules.unmarked_browser_tests(driving, "tests.e2e.test_x") == []  # marked by tests/e2e/conftest.py
