"""Compute tiles and processing elements built from :mod:`tilelab.hdl` blocks."""
