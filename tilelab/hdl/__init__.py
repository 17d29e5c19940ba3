"""Reusable Amaranth building blocks and the single definition of every bit format."""
