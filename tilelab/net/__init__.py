"""Whole networks: graph IR, model zoo, lowering, execution, run directories and reports."""
