"""2D-mesh network-on-chip: routers, meshes, traffic and collectives."""
