"""Benchmarks and the end-to-end demo, run against the real service."""
