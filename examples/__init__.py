"""Example games built with pygase; each runs with ``python -m examples.<game>.<part>``."""
