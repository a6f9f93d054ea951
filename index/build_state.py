"""Resumable progress of a build: which settings it was started with and whether this command may continue it.

The chunks themselves, the settings file and the writer lock belong to the bundle store
(:class:`retrieval.bundle.store.BuildArea`, :class:`retrieval.bundle.store.ChunkStore`,
:class:`retrieval.bundle.store.WriterLock`).
"""

from __future__ import annotations

from typing import Any

from cxr_explorer.retrieval.bundle.store import BuildArea, ChunkStore

__all__ = ["SETTINGS_THAT_MATTER", "BuildStateError", "ChunkStore", "check_state"]

# Settings that change the vectors: a resumed or appended build must use the same ones.
SETTINGS_THAT_MATTER = ("model", "precision", "shard")


class BuildStateError(ValueError):
    """The output folder holds a build that this command may not continue (other settings, not a bundle)."""


def check_state(area: BuildArea, settings: dict[str, Any], check_corpus: bool, verb: str = "continue",
                installed: dict[str, Any] | None = None) -> None:
    """Refuse to continue (or append to) a build with settings that change the vectors, naming the difference.

    Compared with the unfinished build's settings, else with ``installed`` (the installed version's build record)."""
    previous = area.state() or installed
    if previous is None:
        return
    root = area.root
    for key in SETTINGS_THAT_MATTER:
        if previous.get(key) != settings.get(key):
            raise BuildStateError(f"cannot {verb} the build in {root}: it was made with {key}={previous.get(key)!r}, "
                                  f"this command has {key}={settings.get(key)!r}; use the same {key} or a new --out")
    if check_corpus:
        for key in ("corpus", "columns", "hash_ids"):
            if previous.get(key) != settings.get(key):
                raise BuildStateError(f"the build in {root} was started with {key}={previous.get(key)!r}, this "
                                      f"command has {key}={settings.get(key)!r}; rerun the same command, or pass "
                                      "--append to add a different corpus, or use a new --out")
