"""Analytical cycle estimates of layers on the compute tile, without simulating it."""

from .tile import BOUNDS, TileEstimate, estimate_conv, estimate_linear, estimate_streams

__all__ = ["BOUNDS", "TileEstimate", "estimate_conv", "estimate_linear", "estimate_streams"]
