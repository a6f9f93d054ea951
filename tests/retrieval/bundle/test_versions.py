"""Versioned installs: a reader keeps the version it opened while newer ones are installed, old versions are removed
once no reader holds them, orphans of a crashed install are garbage, and one writer at a time (real processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cxr_explorer.retrieval.bundle import store
from cxr_explorer.retrieval.bundle.reader import Bundle
from cxr_explorer.retrieval.bundle.store import WriterBusyError, WriterLock, versions
from tests.helpers.bundles import random_arrays, write_test_bundle
from tests.helpers.paths import REPO


def test_a_reader_keeps_its_version_while_a_newer_one_is_installed(tmp_path: Path) -> None:
    root = write_test_bundle(tmp_path / "b")
    old = Bundle.open(root)
    v1 = (old.vectors("images").copy(), old.metadata["id"].tolist(), np.asarray(old.patches()).copy())
    assert old.version == 1 and not old.newer_version_available()
    new_arrays = random_arrays(7, seed=3, prefix="new")
    write_test_bundle(root, **new_arrays)  # version 2 while version 1 is held
    assert old.newer_version_available() and store.current_version(root) == 2
    assert versions.listed(root) == [1, 2], "a held version must not be removed"
    np.testing.assert_array_equal(old.vectors("images"), v1[0])  # still version 1, every file of it
    assert old.metadata["id"].tolist() == v1[1] and old.count == 5
    np.testing.assert_array_equal(np.asarray(old.patches()), v1[2])
    assert old.index("images").ntotal == 5 and len(old.thumbnail(4)) > 0
    with Bundle.open(root) as fresh:
        assert fresh.version == 2 and fresh.count == 7 and not fresh.newer_version_available()
        np.testing.assert_allclose(fresh.vectors("images"), new_arrays["image_emb"])
    old.close()
    assert versions.listed(root) == [1, 2], "removal is the next writer's job"
    with WriterLock(root):
        pass
    assert versions.listed(root) == [2]


def test_an_orphan_newer_than_current_is_never_read_and_is_removed(tmp_path: Path) -> None:
    root = write_test_bundle(tmp_path / "b")
    orphan = versions.folder_of(root, 2)
    orphan.mkdir()
    (orphan / "manifest.json").write_text(json.dumps({"format": "garbage"}))
    with Bundle.open(root) as b:
        assert b.version == 1 and b.count == 5
    with WriterLock(root):
        pass
    assert versions.listed(root) == [1]
    write_test_bundle(root)
    assert versions.listed(root) == [2] and store.current_version(root) == 2


@pytest.mark.slow  # a fresh Python process holds the lock
def test_a_second_writer_is_refused_naming_the_first(tmp_path: Path) -> None:
    root = tmp_path / "b"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; "
                               "from retrieval.bundle.store import WriterLock\n"
                               f"with WriterLock(Path({str(root)!r}), command='cxr-explorer build c.csv --out b'):\n"
                               "    print('held', flush=True); time.sleep(600)"],
                              cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(WriterBusyError, match=rf"pid {holder.pid} on .*cxr-explorer build c.csv --out b"):
            with WriterLock(root):
                pass
        assert store.holder(root)["pid"] == holder.pid  # type: ignore[index]
    finally:
        holder.kill()
        holder.wait()
    deadline = time.monotonic() + 10
    while store.holder(root) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    with WriterLock(root):  # released by the OS after kill -9
        assert store.holder(root)["pid"] == os.getpid()  # type: ignore[index]
