"""Benchmarks and the end-to-end demo, run against the real service."""

from bench.moved import install

install()
