"""Prometheus metrics: HTTP requests counted by a middleware, jobs and workers read from the database."""
