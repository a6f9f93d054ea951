"""The Collections page."""
