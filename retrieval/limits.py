"""Limits shared by the engine and its front ends (CLI, app), one source each. Plain constants: no heavy imports."""

from __future__ import annotations

MAX_K = 1000
"""The most hits one query returns."""
