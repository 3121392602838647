"""Causal-LM benchmarks: the chat demo, cross-tokenizer distillation, and the token-level loss's memory."""
