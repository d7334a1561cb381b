"""Lazy matplotlib import with a headless backend: :func:`trainwise._optional.pyplot` (kept for old imports)."""

from trainwise._optional import pyplot

__all__ = ["pyplot"]
