"""The curate report folder is written atomically with the summary last: a run killed while writing its tables
leaves every table whole (the old run's or the new one's) and never a summary beside tables of another run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from cxr_explorer.retrieval.curate.base import CheckResult
from cxr_explorer.retrieval.curate.report import SUMMARY, write_report


class Killed(BaseException):
    """Stands for a kill part-way through a write."""


def _result(name: str, rows: int) -> CheckResult:
    table = pd.DataFrame({"id": [f"i{k}" for k in range(rows)], "score": [k / 7 for k in range(rows)],
                          "flagged": [k % 2 == 0 for k in range(rows)]})
    return CheckResult(name, name.title(), table, {"cut": 0.5})


def _partial_to_csv(real: Any, calls: list[int]) -> Any:
    """DataFrame.to_csv whose second call writes half of its rows to the path it was given and then dies."""

    def to_csv(self: pd.DataFrame, path_or_buf: Any = None, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) < 2:
            return real(self, path_or_buf, **kwargs)
        if path_or_buf is not None:
            real(self.head(len(self) // 2), path_or_buf, **kwargs)
        raise Killed

    return to_csv


def test_a_kill_while_writing_tables_leaves_no_summary_of_another_run(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    write_report(tmp_path, [_result("pixels", 648), _result("labels", 648)], bundle="b")
    calls: list[int] = []
    monkeypatch.setattr(pd.DataFrame, "to_csv", _partial_to_csv(pd.DataFrame.to_csv, calls))
    with pytest.raises(Killed):
        write_report(tmp_path, [_result("pixels", 300), _result("labels", 300)], bundle="b")
    monkeypatch.undo()
    for name in ("pixels", "labels"):
        assert len(pd.read_csv(tmp_path / f"{name}.csv")) in (648, 300), f"{name}.csv is a part of a table"
    summary = tmp_path / SUMMARY
    if summary.exists():  # a summary on disk must describe the tables beside it
        checks = json.loads(summary.read_text())["checks"]
        for name, entry in checks.items():
            assert len(pd.read_csv(tmp_path / f"{name}.csv")) == entry["rows"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == []


def test_a_finished_report_is_complete(tmp_path: Path) -> None:
    write_report(tmp_path, [_result("pixels", 648)], bundle="b")
    write_report(tmp_path, [_result("pixels", 12)], bundle="b")
    assert len(pd.read_csv(tmp_path / "pixels.csv")) == 12
    assert len(pd.read_parquet(tmp_path / "pixels.parquet")) == 12
    assert json.loads((tmp_path / SUMMARY).read_text())["checks"]["pixels"]["rows"] == 12
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pixels.csv", "pixels.parquet", SUMMARY]
