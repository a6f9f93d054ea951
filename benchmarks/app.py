"""App timings: server-side time of a new search and of a grounding update, and the app's RSS with a 100k bundle.

Measured only when ``webapp/app.py`` exists and a measurement hook is implemented; otherwise the section is an
explicit "not measured yet" entry (never a made-up figure).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

NOT_MEASURED = "not measured yet"


def run_app(repo: Path) -> dict[str, Any]:
    """The app section: currently a marked placeholder (see the README's "what is left")."""
    app = repo / "webapp" / "app.py"
    if not app.is_file():
        return {"status": NOT_MEASURED, "reason": "webapp/app.py does not exist yet"}
    return {"status": NOT_MEASURED,
            "reason": "webapp/app.py exists but the AppTest-based timing of search / grounding and the RSS "
                      "measurement with a 100k bundle are not wired into the benchmark yet"}
