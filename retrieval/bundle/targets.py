"""The search targets of a bundle, one source for the engine, the bundle reader, the CLI and the app.

Plain constants: no heavy imports, so the CLI can build its parser and the app its widgets from them.
"""

from __future__ import annotations

from typing import Literal, get_args

Target = Literal["images", "reports", "sentences"]
"""What a query searches: item images, item reports, or single report sentences."""
TARGETS: tuple[Target, ...] = get_args(Target)
"""All search targets, in display order."""
ITEM_TARGETS: tuple[Target, ...] = ("images", "reports")
"""Targets with one vector per item (the ones with near-duplicate hiding and a 2-D map)."""
