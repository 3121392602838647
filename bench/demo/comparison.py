"""Moved to `app.cli.quickstart.comparison`, which the quickstart shares with the benchmarks."""

from app.cli.quickstart.comparison import (
    Datasets,
    Recipe,
    finish_job,
    format_table,
    job_facts,
    job_seconds,
    job_specs,
    report_rows,
    reported_split,
    run_comparison,
    run_three_jobs,
    run_to_end,
    seed_gains,
    summarize,
    upload,
)

__all__ = [
    "Recipe",
    "Datasets",
    "upload",
    "job_specs",
    "run_to_end",
    "finish_job",
    "run_comparison",
    "seed_gains",
    "run_three_jobs",
    "reported_split",
    "summarize",
    "report_rows",
    "job_facts",
    "job_seconds",
    "format_table",
]
