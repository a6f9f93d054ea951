"""The Grounding page."""
