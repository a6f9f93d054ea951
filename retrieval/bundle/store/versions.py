"""Immutable installed versions of a bundle, the ``CURRENT`` pointer, reader holds and clean-up.

Install protocol (:func:`install`): the caller writes every file of the new version into a staging folder, manifest
last; here each file and the folder are fsynced, the folder is renamed to ``versions/NNNNNN`` (atomic) and
``CURRENT`` is replaced (write + fsync + ``os.replace``). A crash before the rename leaves the old version current
and a staging folder; between the rename and the pointer flip, an orphan version newer than ``CURRENT`` that the
next writer removes (:func:`tidy`). A reader resolves ``CURRENT`` once and holds a shared ``flock`` on its version's
``.readers`` file for as long as it is open (:func:`hold_current`); a writer removes an older version only when it
can take that lock exclusively, so nothing a reader uses is ever removed or modified.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from pathlib import Path
from typing import IO, Any

from cxr_explorer.retrieval.bundle.store.errors import DamagedBundleError
from cxr_explorer.retrieval.bundle.store.names import (
    BUILD_AREA,
    BUILD_STATE,
    CURRENT,
    INSTALLING,
    MANIFEST,
    READERS_LOCK,
    STAGING,
    VERSIONS,
)

RETIRED = BUILD_AREA + ".retired"


def name_of(version: int) -> str:
    """Folder name of a version number."""
    return f"{version:06d}"


def folder_of(root: Path, version: int) -> Path:
    """The folder of installed version ``version`` of ``root``."""
    return Path(root) / VERSIONS / name_of(version)


def current(root: Path) -> int | None:
    """The installed version named by ``root/CURRENT``, None when there is none; ValueError when unreadable."""
    try:
        text = (Path(root) / CURRENT).read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    if not text.isdigit():
        raise ValueError(f"{CURRENT} holds {text[:40]!r}, not a version number")
    return int(text)


def listed(root: Path) -> list[int]:
    """Version numbers present under ``root/versions`` (installed or orphaned), ascending."""
    folder = Path(root) / VERSIONS
    if not folder.is_dir():
        return []
    return sorted(int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit())


def manifest_path(folder: Path) -> Path:
    """The manifest of a version (or staging) folder."""
    return Path(folder) / MANIFEST


def _fsync(path: Path, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(folder: Path) -> None:
    for dirpath, _, files in os.walk(folder):
        for name in files:
            _fsync(Path(dirpath) / name)
        _fsync(Path(dirpath), directory=True)


def add_reader_lock(staging: Path) -> None:
    """Create the (empty) file readers of the new version will hold a shared lock on."""
    (Path(staging) / READERS_LOCK).touch()


def install(root: Path, staging: Path) -> int:
    """Install the complete ``staging`` folder as the next version of ``root`` and make it current; returns it.

    The caller holds the writer lock."""
    root = Path(root)
    add_reader_lock(staging)
    _fsync_tree(staging)
    number = max([current(root) or 0, *listed(root)]) + 1
    (root / VERSIONS).mkdir(exist_ok=True)
    _write_number(root / INSTALLING, number)  # so a crash before the flip leaves a version provably unfinished
    rename_version(staging, folder_of(root, number))
    _fsync(root / VERSIONS, directory=True)
    write_current(root, number)
    (root / INSTALLING).unlink(missing_ok=True)
    return number


def rename_version(staging: Path, target: Path) -> None:
    """Move a staged version into place (one ``os.rename``)."""
    os.rename(staging, target)


def write_current(root: Path, version: int) -> None:
    """Point ``root/CURRENT`` at ``version`` atomically (temporary file, fsync, ``os.replace``)."""
    _write_number(Path(root) / CURRENT, version)


def _write_number(path: Path, version: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="ascii") as fh:
        fh.write(name_of(version) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync(path.parent, directory=True)


def installing(root: Path) -> int | None:
    """The version an unfinished install renamed into place before it could flip ``CURRENT`` (its number recorded
    in ``INSTALLING`` first), or None."""
    try:
        text = (Path(root) / INSTALLING).read_text(encoding="ascii").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def hold_current(root: Path, attempts: int = 200) -> tuple[int, Path, IO[bytes] | None] | None:
    """Resolve ``CURRENT`` and take a shared lock on that version: (version, folder, held file), or None when the
    folder has no installed version. The held file is None only when the named version's folder is missing.
    DamagedBundleError when ``CURRENT`` is missing beside installed versions or unreadable, or when the version it
    names stays without a manifest."""
    for _ in range(attempts):
        number = check_pointer(root, need_manifest=False)
        if number is None:
            return None
        folder = folder_of(root, number)
        try:
            fh = open(folder / READERS_LOCK, "rb")
        except FileNotFoundError:
            if current(root) == number:
                return number, folder, None
            continue
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:  # a writer is removing this (now old) version right now
            fh.close()
            time.sleep(0.01)
            continue
        if manifest_path(folder).is_file():
            return number, folder, fh
        fh.close()
        if current(root) == number:  # not being replaced: the installed version lost its manifest
            raise _damaged(root, f"{VERSIONS}/{name_of(number)}/{MANIFEST}", "missing from the current version")
    raise DamagedBundleError(root, CURRENT, "keeps changing while it is read")


def _damaged(root: Path, file: str, problem: str) -> DamagedBundleError:
    older = [n for n in listed(root) if (folder_of(root, n) / MANIFEST).is_file()]
    fix = (f"nothing was changed; point {CURRENT} at the newest complete version ("
           f"`echo {name_of(older[-1])} > {Path(root) / CURRENT}`) or rebuild" if older else
           "nothing was changed; rebuild it into a new folder")
    return DamagedBundleError(root, file, problem, fix)


def check_pointer(root: Path, need_manifest: bool = True) -> int | None:
    """The version ``CURRENT`` names, None when the folder has no version at all; DamagedBundleError (nothing
    changed) when ``CURRENT`` is missing although versions exist, is unreadable, names a version that is not there,
    or (``need_manifest``) one without a manifest. Every reader and writer resolves the pointer through this."""
    root = Path(root)
    try:
        number = current(root)
    except (OSError, ValueError) as exc:
        raise _damaged(root, CURRENT, f"unreadable ({exc})") from None
    present = listed(root)
    if number is None:
        unfinished = installing(root)
        proven = [n for n in present if n != unfinished]  # a version an install did not finish is garbage
        if proven:
            raise _damaged(root, CURRENT, f"missing although {VERSIONS}/ holds "
                           f"{', '.join(name_of(n) for n in proven)}")
        return None
    if number not in present:
        raise _damaged(root, CURRENT, f"names version {name_of(number)}, which is not in {VERSIONS}/")
    if need_manifest and not manifest_path(folder_of(root, number)).is_file():
        raise _damaged(root, f"{VERSIONS}/{name_of(number)}/{MANIFEST}", "missing from the current version")
    return number


def release(fh: IO[bytes] | None) -> None:
    """Drop a reader's hold (idempotent)."""
    if fh is not None and not fh.closed:
        fh.close()


def _remove_if_unread(folder: Path) -> bool:
    """Remove a version folder unless a reader holds it; True when removed."""
    try:
        fh = open(folder / READERS_LOCK, "rb")
    except FileNotFoundError:
        shutil.rmtree(folder, ignore_errors=True)
        return True
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        shutil.rmtree(folder, ignore_errors=True)
    return True


def read_json_file(path: Path) -> Any:
    """Parse a JSON file of the store."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def tidy(root: Path) -> list[int]:
    """Under the writer lock: remove orphan versions (newer than an intact CURRENT: a crash between the rename and
    the pointer flip), older versions no reader holds, a stale staging folder, and a build area whose build is
    already the current version (crash after the pointer flip). Returns the versions still kept because readers hold
    them. DamagedBundleError, nothing removed, when the pointer is damaged (:func:`check_pointer`)."""
    root = Path(root)
    now = check_pointer(root)
    (root / (CURRENT + ".tmp")).unlink(missing_ok=True)
    (root / (INSTALLING + ".tmp")).unlink(missing_ok=True)
    shutil.rmtree(root / RETIRED, ignore_errors=True)
    shutil.rmtree(root / BUILD_AREA / STAGING, ignore_errors=True)
    kept = []
    unfinished = installing(root)
    for number in listed(root):
        if now is None:
            if number == unfinished:  # renamed into place, pointer never flipped (check_pointer proved it)
                shutil.rmtree(folder_of(root, number), ignore_errors=True)
            continue
        if number > now:
            shutil.rmtree(folder_of(root, number), ignore_errors=True)
        elif number < now and not _remove_if_unread(folder_of(root, number)):
            kept.append(number)
    (root / INSTALLING).unlink(missing_ok=True)
    if now is not None:
        _retire_if_installed(root, now)
    return kept


def _retire_if_installed(root: Path, now: int) -> None:
    state = root / BUILD_AREA / BUILD_STATE
    manifest = manifest_path(folder_of(root, now))
    if not state.is_file() or not manifest.is_file():
        return
    try:
        build_id = read_json_file(state).get("build_id")
        installed = read_json_file(manifest).get("build_id")
    except (OSError, ValueError):
        return
    if build_id and build_id == installed:
        retire_build_area(root)


def retire_build_area(root: Path) -> None:
    """Remove ``root/_build`` (state, chunks, temporal chunks): renamed away first, so a crash mid-removal never
    leaves a build area with some of its chunks."""
    area = Path(root) / BUILD_AREA
    if area.exists():
        shutil.rmtree(Path(root) / RETIRED, ignore_errors=True)
        os.rename(area, Path(root) / RETIRED)
    shutil.rmtree(Path(root) / RETIRED, ignore_errors=True)
