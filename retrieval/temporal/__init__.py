"""Interval change with BioViL-T: prompts and margins (``interval``) and current-vs-prior queries (``compare``)."""
