"""umap-learn, imported so that its numba functions keep their compiled machine code on disk.

umap-learn compiles most of its numba functions afresh in every process (only a few are marked ``cache=True``): ~4 s
of a fresh build's map step on a 2-core CPU, 0.6 s once cached. :func:`import_umap` turns numba's disk cache on for
them, and keeps ``import umap`` working where numba has no writable cache folder at all.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any

log = logging.getLogger(__name__)

_JIT_CACHE_LOCK = threading.Lock()
_jit_cache_done = False


def import_umap() -> Any | None:
    """The ``umap`` module with its numba functions caching their machine code on disk, or None without umap-learn.

    umap-learn leaves most of its numba functions uncached, so every process that fits a map compiled them again:
    ~4 s of a fresh build's map step on this 2-core CPU (0.6 s once cached). Numba keeps the cache as for functions
    marked ``cache=True`` (next to umap's source when that is writable, else the user's cache folder, or
    ``NUMBA_CACHE_DIR``) and recompiles when umap's source or numba changes; the compiled code is the same."""
    global _jit_cache_done
    with _JIT_CACHE_LOCK:
        try:
            umap = _import_umap_module()
        except ImportError:
            return None
        if not _jit_cache_done:
            _jit_cache_done = True
            log.debug("umap-learn: %d numba functions cache their machine code", _cache_jit_functions("umap"))
    return umap


def _import_umap_module() -> Any:
    """``import umap``. Where numba has no writable cache folder (a read-only install and no writable home, as for
    the container's app user), umap's and pynndescent's ``cache=True`` functions make that import raise; numba then
    gets a private temporary folder for this process (removed at exit) and the import is retried."""
    try:
        import umap
    except RuntimeError as exc:
        if "no locator available" not in str(exc):
            raise
        import atexit
        import shutil
        import tempfile

        from numba.core import config

        folder = tempfile.mkdtemp(prefix="cxr-explorer-numba-")  # private (0700): cached code is loaded by pickle
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        config.CACHE_DIR = folder  # type: ignore[attr-defined]  # numba sets its config names dynamically
        log.info("numba has no writable cache folder (read-only install, no writable home): using %s", folder)
        for name in [n for n in sys.modules if n.split(".")[0] in ("umap", "pynndescent")]:
            del sys.modules[name]  # the half-imported modules
        import umap
    return umap


def _cache_jit_functions(package: str) -> int:
    """Turn on numba's disk cache for the numba functions defined in ``package``'s loaded modules; how many."""
    from numba.core.registry import CPUDispatcher

    found = {id(f): f for name, module in list(sys.modules.items()) if name == package or name.startswith(package + ".")
             for f in vars(module).values() if isinstance(f, CPUDispatcher)}
    for f in found.values():
        try:
            f.enable_caching()
        except RuntimeError:  # numba found no writable cache folder: the functions compile per process, as before
            return 0
    return len(found)
