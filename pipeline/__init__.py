"""Pipeline stages: one module per DVC stage, plus the shared config and data code."""
