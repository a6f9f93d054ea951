"""benchmarks/gpu.sh refuses clearly, before installing anything, on a machine without an NVIDIA GPU."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers.paths import REPO


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has nvidia-smi: run gpu.sh itself")
def test_gpu_script_stops_without_a_gpu(tmp_path: Path) -> None:
    run = subprocess.run(["bash", str(REPO / "benchmarks/gpu.sh")], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PATH": "/usr/bin:/bin"})
    assert run.returncode == 2 and "no NVIDIA GPU" in run.stderr
    assert not (REPO / ".venv-gpu").exists()
