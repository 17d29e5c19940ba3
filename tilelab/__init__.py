"""tilelab: cycle-accurate, bit-exact RTL simulation of CNN accelerator tiles and meshes."""

__version__ = "0.1.0"
