"""Bit formats shared by RTL and host: commands, descriptors and NoC flits."""
