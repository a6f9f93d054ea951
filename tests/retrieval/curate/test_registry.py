"""The check registry: one registration makes a check listed and run; needs, skips and settings decide what runs."""

from __future__ import annotations

import pytest

from cxr_explorer.retrieval.curate import CurateConfig, run_checks
from cxr_explorer.retrieval.curate.labels import LabelConfig
from cxr_explorer.retrieval.curate.leakage import LeakageConfig
from cxr_explorer.retrieval.curate.registry import CheckInputs, Need, checks, get, register
from cxr_explorer.retrieval.curate.report import config_dict
from tests.helpers.curate_bundle import ParityConfig, register_parity
from tests.helpers.curate_faults import Planted, synthetic_faults

BUILT_IN = ["mismatch", "labels", "outliers", "pixels", "leakage_split", "leakage_bundles"]


@pytest.fixture(scope="module")
def planted() -> Planted:
    return synthetic_faults(400, rate=0.02, seed=5)


def test_built_in_checks_in_order_with_their_page_titles() -> None:
    assert [s.name for s in checks()] == BUILT_IN
    assert get("outliers").page_title == "Outliers" and get("outliers").title == "Outliers (image space)"
    assert get("labels").needs == {Need.LABEL_COLUMN} and get("pixels").needs == {Need.THUMBNAILS}
    assert all(s.help and s.columns and s.looks_for for s in checks())
    with pytest.raises(KeyError, match="no curation check 'nope'"):
        get("nope")


def test_a_name_is_registered_once(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = register_parity(monkeypatch)
    assert [s.name for s in checks()] == [*BUILT_IN, "parity"]
    with pytest.raises(ValueError, match="already registered"):
        register(spec)


def test_run_checks_runs_what_the_inputs_allow(planted: Planted, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    results = run_checks(planted.data, progress=seen.append)  # no columns, no thumbnails, no second bundle
    assert [r.name for r in results] == seen == ["mismatch", "outliers"]
    register_parity(monkeypatch)
    config = CurateConfig(label_col="labels", split_col="split", skip=frozenset({"outliers"}),
                          settings={"parity": ParityConfig(modulus=3), "labels": LabelConfig(k=4)})
    results = run_checks(planted.data, config, other=planted.data)
    assert [r.name for r in results] == ["mismatch", "labels", "leakage_split", "leakage_bundles", "parity"]
    assert results[1].thresholds["k"] == 4 and results[-1].thresholds == {"modulus": 3}
    assert config_dict(config)["settings"]["leakage_split"] == {"k": 5, "min_cosine": 0.95, "max_hash_distance": 40,
                                                                "min_report_chars": 20, "max_report_group": 3}
    with pytest.raises(ValueError, match="no curation check named 'pixel'"):
        run_checks(planted.data, CurateConfig(skip=frozenset({"pixel"})))


def test_settings_are_typed_and_tuned_only_where_a_check_takes_the_option() -> None:
    leak = get("leakage_split")
    assert leak.tuned({"k": 3, "dup_threshold": 0.9}) == LeakageConfig(k=5, min_cosine=0.9)
    assert get("mismatch").tuned({"k": 3, "dup_threshold": 0.9}).k == 3
    with pytest.raises(TypeError, match="must be LeakageConfig"):
        leak.settings_from(LabelConfig())
    assert leak.missing(synthetic_faults(50).data, CheckInputs()) == [Need.SPLIT_COLUMN]
