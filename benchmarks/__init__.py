"""Benchmarks: scripts that print a figure (run each with python benchmarks/<name>.py)."""
