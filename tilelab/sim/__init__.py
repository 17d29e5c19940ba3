"""Simulation backends, Verilog generation, build caching and testbench helpers."""
