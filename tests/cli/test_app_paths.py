"""``cxr-explorer app`` hands its bundle folders to the app whatever characters their paths hold (a ``:`` is a
legal character in a POSIX path, and ``;`` on Windows's ``os.pathsep`` side)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from cxr_explorer.cli import main
from cxr_explorer.webapp import settings
from tests.helpers.bundles import write_test_bundle


@pytest.mark.parametrize("name", ["co:lon", "semi;colon", "plain"])
def test_the_app_serves_the_folder_it_was_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                name: str) -> None:
    bundle = tmp_path / name
    write_test_bundle(bundle)
    started: dict[str, Any] = {}

    class Replaced(Exception):
        """Where the real execve replaces this process with Streamlit."""

    def execve(_exe: str, cmd: list[str], env: dict[str, str]) -> None:
        started.update(cmd=cmd, env=env)
        raise Replaced

    monkeypatch.setattr(os, "execve", execve)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(Replaced):
        main(["app", name])
    monkeypatch.setenv(settings.BUNDLES_ENV, started["env"][settings.BUNDLES_ENV])
    monkeypatch.setattr("sys.argv", ["app.py"])
    assert settings.bundle_dirs() == [str(bundle.resolve())]
