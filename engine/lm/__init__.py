"""Causal language models: data formats, report section, side-by-side generations, token alignment."""
