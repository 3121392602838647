"""Distillery's engine against the plain Hugging Face pipeline a user would write, on the same job."""
