"""Moved to `app.cli.quickstart.service`, which the quickstart shares with the benchmarks."""

from app.cli.quickstart.service import embedded_service, install_model

__all__ = ["embedded_service", "install_model"]
