"""Distillery's light shared package: the job spec schema, the HTTP client and the command line."""
