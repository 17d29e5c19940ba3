"""The driver: one run pipeline for every simulated unit (image, simulator, bench, dump, counters)."""
