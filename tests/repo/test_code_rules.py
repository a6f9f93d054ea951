"""Architecture rules (docs/architecture.md) checked over the parsed tree, each with a self-test that plants a
violation and sees the same checker catch it: import directions between retrieval/, index/ and webapp/, no Streamlit
in the engine, no torchvision or timm at runtime, pages reach the bundle through the Engine, no one-letter aliases."""

from __future__ import annotations

from tests.repo import rules

INSTALLED = ("retrieval", "index", "webapp", "cxr_explorer")


def test_retrieval_imports_neither_the_job_the_app_the_cli_nor_streamlit() -> None:
    found = rules.violations(rules.retrieval_imports, "retrieval")
    assert found == [], "retrieval/ is the engine; move this out or invert it:\n" + "\n".join(found)


def test_retrieval_rule_catches_a_planted_import() -> None:
    source = ("import numpy\nfrom cxr_explorer.retrieval.bundle import reader\n"
              "def late() -> None:\n    import streamlit as st\n    from cxr_explorer.index.runner import run_build\n"
              "from cxr_explorer import webapp\nfrom ...webapp import loaders\n")
    assert rules.retrieval_imports(source, "cxr_explorer.retrieval.engine.engine") == [
        "4: imports streamlit", "5: imports cxr_explorer.index.runner",
        "5: imports cxr_explorer.index.runner.run_build",
        "6: imports cxr_explorer.webapp", "7: imports cxr_explorer.webapp", "7: imports cxr_explorer.webapp.loaders"]


def test_index_does_not_import_the_app() -> None:
    found = rules.violations(rules.index_imports, "index")
    assert found == [], "index/ must not use webapp/:\n" + "\n".join(found)


def test_index_rule_catches_a_planted_import() -> None:
    source = "from cxr_explorer.retrieval import limits\nfrom cxr_explorer.webapp.settings import bundle_dirs\n"
    assert rules.index_imports(source, "cxr_explorer.index.runner") == [
        "2: imports cxr_explorer.webapp.settings", "2: imports cxr_explorer.webapp.settings.bundle_dirs"]


def test_webapp_does_not_import_the_index_job() -> None:
    found = rules.violations(rules.webapp_imports, "webapp")
    assert found == [], "webapp/ uses retrieval/ only:\n" + "\n".join(found)


def test_webapp_rule_catches_a_planted_import() -> None:
    source = "import streamlit as st\nfrom cxr_explorer.index import decode\nimport cxr_explorer.retrieval\n"
    assert rules.webapp_imports(source, "cxr_explorer.webapp.loaders") == [
        "2: imports cxr_explorer.index", "2: imports cxr_explorer.index.decode"]


def test_no_torchvision_or_timm_at_runtime() -> None:
    found = rules.violations(rules.runtime_imports, *INSTALLED)
    assert found == [], "torchvision and timm are not runtime dependencies:\n" + "\n".join(found)


def test_runtime_rule_catches_a_planted_import() -> None:
    source = "import torch\ndef f() -> None:\n    from torchvision import transforms\nimport timm.models\n"
    assert rules.runtime_imports(source, "cxr_explorer.retrieval.models.encoders") == [
        "3: imports torchvision", "3: imports torchvision.transforms", "4: imports timm.models"]


def test_the_app_reaches_the_bundle_through_the_engine() -> None:
    found = rules.violations(rules.bundle_attribute, "webapp")
    assert found == [], "use engine.cases / engine.facts / an Engine method:\n" + "\n".join(found)


def test_bundle_rule_catches_any_route_to_the_bundle() -> None:
    source = ("meta = engine.bundle.metadata\nrows = loaders.engine(d, *opts).bundle.ids('images')\n"
              "count = engine.cases.count\nb = engine.cases._bundle\nb = getattr(engine, 'bundle')\nbundle = 1\n")
    assert rules.bundle_attribute(source, "cxr_explorer.webapp.views.curate.loaders") == [
        "1: .bundle", "2: .bundle", "4: ._bundle", "5: getattr bundle"]


def test_no_single_letter_module_aliases() -> None:
    found = rules.violations(rules.single_letter_aliases, *rules.TREES)
    assert found == [], "name the module instead:\n" + "\n".join(found)


def test_alias_rule_catches_a_planted_alias() -> None:
    source = ("from cxr_explorer.retrieval import grounding as G\nimport numpy as N\nimport numpy as np\n"
              "from cxr_explorer.retrieval.grounding.maps import PROMPTS as POSITIVE\n"
              "import torch.nn.functional as F\n")
    assert rules.single_letter_aliases(source, "tests.x") == ["1: cxr_explorer.retrieval.grounding as G",
                                                              "2: numpy as N"]


def test_every_chromium_test_is_marked_browser() -> None:
    found = rules.violations(rules.unmarked_browser_tests, "tests")
    assert found == [], 'add pytestmark = [pytest.mark.browser, ...]:\n' + "\n".join(found)


def test_browser_rule_catches_an_unmarked_module() -> None:
    driving = "import pytest\nfrom benchmarks.browser import CHROMIUM\n"
    assert rules.unmarked_browser_tests(driving, "tests.benchmarks.test_x") == ["2: drives Chromium, no browser mark"]
    marked = driving + "pytestmark = [pytest.mark.slow, pytest.mark.browser]\n"
    assert rules.unmarked_browser_tests(marked, "tests.benchmarks.test_x") == []
    assert rules.unmarked_browser_tests(driving, "tests.e2e.test_x") == []  # marked by tests/e2e/conftest.py


def test_tests_find_the_repository_in_one_place() -> None:
    owners = {"tests/helpers/paths.py", "tests/reference/generate_fixture.py"}  # the latter runs in its own venv
    found = [hit for hit in rules.violations(rules.repo_from_file_path, "tests") if hit.split(":")[0] not in owners]
    assert found == [], "use tests.helpers.paths (REPO, SHARED_DATA, ...):\n" + "\n".join(found)


def test_path_rule_catches_a_planted_parents() -> None:
    source = ("from pathlib import Path\nREPO = Path(__file__).resolve().parents[2]\nHERE = Path(__file__).parent\n"
              "DATA = Path(__file__).parents[3].parent / 'shared'\n")
    assert rules.repo_from_file_path(source, "tests.x.test_y") == ["2: Path(__file__).parents[...]",
                                                                  "4: Path(__file__).parents[...]"]
