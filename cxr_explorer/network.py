"""One quick "is the network there?" check for the commands that download (``demo``).

Without it an offline machine spends about 90 s inside the hub client's retries before any useful message. The
probe opens one TCP connection to the download host with a short timeout; it sends nothing.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

HUB_URL = "https://huggingface.co"
SMOKE_RUN = "bash scripts/run.sh --corpus ../shared/data/covid_chestxray --model tiny-random"


def hub_url() -> str:
    """The hub endpoint the download client will use (``HF_ENDPOINT`` honoured)."""
    return os.environ.get("HF_ENDPOINT", HUB_URL)


def reachable(url: str, timeout_s: float = 3.0) -> bool:
    """True when a TCP connection to ``url``'s host and port opens within ``timeout_s`` seconds."""
    parts = urlsplit(url)
    if not parts.hostname:
        return False
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def offline_message(what: str, url: str) -> str:
    """The first line an offline user sees: what failed, and the two ways forward."""
    host = urlsplit(url).hostname or url
    return (f"no network: {host} cannot be reached, so {what} cannot be downloaded. Offline, pass --weights-dir DIR "
            f"and --corpus DIR, or make a smoke run with a synthetic model (not BioViL): {SMOKE_RUN}")
