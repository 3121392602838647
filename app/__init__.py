"""Distillery's HTTP API and persistence; never imports torch."""
