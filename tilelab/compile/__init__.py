"""Compilers: layers into programs and memory images for the tile, the element-wise unit and the mesh."""
