"""The full-disk line gives sizes in the unit that reads (a 10 MB need is not "0.01 GB")."""

from __future__ import annotations

from pathlib import Path

import pytest

from cxr_explorer.retrieval.bundle.store.space import full_disk_message


@pytest.mark.parametrize(("need", "free", "says"), [
    (1.2e7, 3e6, "about 12.0 MB, 3.00 MB free"),
    (5e8, 4.5e5, "about 500 MB, 450 kB free"),
    (2.5e9, 1.1e9, "about 2.50 GB, 1.10 GB free"),
    (3e11, 0, "about 300 GB, 0 kB free"),
])
def test_sizes_are_in_sensible_units(need: float, free: float, says: str) -> None:
    line = full_disk_message(Path("/b"), need, free)
    assert f"needs {says};" in line
    assert "\n" not in line
