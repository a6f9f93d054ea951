"""The audit log: who searched, grounded, uploaded, exported or decided what, and when (append-only JSON lines)."""
