"""Host runtime: layer description, lowering, golden models and the run API."""
