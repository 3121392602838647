"""The distillation engine: a plain library that knows nothing of Celery, HTTP or SQL.

Entry point: `engine.run.run_job(spec, ...)`, which trains a student from a `JobSpec`
and writes it in `save_pretrained` form with a `report.json` beside it.
"""
