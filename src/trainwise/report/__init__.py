"""Plots and reports (matplotlib is imported lazily)."""

__all__: list[str] = []
