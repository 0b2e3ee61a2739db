"""Experiments built on the engine: presets, the four-regime comparison, the lr sweep."""

from dnijax.experiments import compare, lr_sweep, presets

__all__ = ["compare", "lr_sweep", "presets"]
