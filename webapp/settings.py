"""How ``cxr-explorer app`` configures the Streamlit server process: environment-variable names and defaults.

One owner for both sides: the CLI (``cxr_explorer/commands/app.py``) sets these variables, the app
(``webapp/loaders.py``) reads them. No Streamlit import here, so the CLI can use it before starting the server.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

BUNDLES_ENV = "CXR_EXPLORER_BUNDLES"
"""Bundle folders to serve: a JSON list of paths (:func:`bundles_value`), so any character may be in a path; a value
that is not a JSON list is one folder."""
WEIGHTS_ENV = "CXR_EXPLORER_WEIGHTS_DIR"
"""Folder with the released model files (unset: the hub cache)."""
DEVICE_ENV = "CXR_EXPLORER_DEVICE"
"""Where the model runs: auto, cpu or cuda."""
MAX_UPLOAD_ENV = "CXR_EXPLORER_MAX_UPLOAD_MB"
"""Largest accepted upload in MB (also given to Streamlit as ``--server.maxUploadSize``)."""
DEFAULT_MAX_UPLOAD_MB = 50
AUTH_ENV = "CXR_EXPLORER_AUTH"
"""The operator's auth file (see ``webapp/access.py``); unset: no sign-in (loopback only unless ``--no-auth``)."""
AUDIT_ENV = "CXR_EXPLORER_AUDIT"
"""The audit log as JSON: ``{"path": ..., "max_bytes": ..., "keep": ..., "redact_queries": ...}``; unset: none."""


def bundles_value(dirs: list[str]) -> str:
    """The value of ``$CXR_EXPLORER_BUNDLES`` that serves ``dirs``: a JSON list."""
    return json.dumps([str(d) for d in dirs])


def _bundles_from_env(value: str) -> list[str]:
    """The folders of a ``$CXR_EXPLORER_BUNDLES`` value (see :data:`BUNDLES_ENV`)."""
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = None
    if isinstance(parsed, list) and all(isinstance(d, str) for d in parsed):
        return parsed
    return [value]


def bundle_dirs() -> list[str]:
    """Bundle folders the server was started with: ``$CXR_EXPLORER_BUNDLES`` (a JSON list) + script args."""
    dirs = [d for d in _bundles_from_env(os.environ.get(BUNDLES_ENV, "")) if d.strip()]
    dirs += [a for a in sys.argv[1:] if not a.startswith("-")]
    return list(dict.fromkeys(str(Path(d).absolute()) for d in dirs))


def max_upload_bytes() -> int:
    """The upload limit the server was started with, in bytes."""
    try:
        return int(float(os.environ.get(MAX_UPLOAD_ENV, DEFAULT_MAX_UPLOAD_MB)) * 1024 * 1024)
    except ValueError:
        return DEFAULT_MAX_UPLOAD_MB * 1024 * 1024


def engine_options() -> tuple[str | None, str]:
    """(weights_dir, device) the server was started with."""
    return os.environ.get(WEIGHTS_ENV) or None, os.environ.get(DEVICE_ENV, "auto")
