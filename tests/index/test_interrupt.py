"""Ctrl-C during a build: one line and exit 130 from the parent, no traceback from any decode worker, no worker
left behind. The signal goes to the whole process group, as a terminal sends it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers.paths import REPO


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


@pytest.mark.slow  # a build in a fresh process, interrupted
def test_ctrl_c_is_one_line_and_leaves_no_worker(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    ramp = np.add.outer(np.arange(32), np.arange(32))
    for k in range(400):  # not blank (blank images are skipped at once and the build ends before the Ctrl-C)
        Image.fromarray(((ramp + k) % 251).astype(np.uint8)).save(corpus / f"x{k:03d}.png")
    argv = ["cxr-explorer", "build", str(corpus), "--out", str(tmp_path / "b"), "--model", "tiny-random", "--workers",
            "2", "--progress", "log"]
    # the build as a terminal's foreground job has it: Ctrl-C raises KeyboardInterrupt, even where this test runs
    # in the background of a non-interactive shell (which starts it, and so its children, with SIGINT ignored)
    start = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
             f"sys.argv = {argv!r}; runpy.run_module('cxr_explorer', run_name='__main__')")
    proc = subprocess.Popen([sys.executable, "-c", start], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stderr is not None
    lines = []
    for line in proc.stderr:  # the workers are spawned before this line is logged
        lines.append(line)
        if "indexing 400 items" in line:
            break
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    err = "".join(lines) + err
    assert proc.returncode == 130, (proc.returncode, out, err[-2000:])
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert err.rstrip().endswith("cxr-explorer: interrupted")
    deadline = time.monotonic() + 30
    while _group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _group_alive(proc.pid), "a decode worker outlived the interrupted build"
