"""The workers registry: what each job worker has, refreshed by its heartbeat, and GET /v1/workers."""
