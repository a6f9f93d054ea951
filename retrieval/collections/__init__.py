"""Named case sets kept beside a bundle (append-only logs): see store.py."""
