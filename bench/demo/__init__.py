"""The demo: a classifier distilled on real tweets through the embedded service, and its comparison table."""
