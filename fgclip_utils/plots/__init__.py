"""Plots: the figure style, each figure family, the figure registry, redrawing, and the explorer widget."""
