"""Plots and reports (matplotlib is imported lazily, inside the plotting functions)."""

__all__ = ["html", "plots"]
