"""The API as deployed plus one route that fails unexpectedly, for tests against a real server."""

from fastapi import FastAPI

from app.main import create_app

FAILING_PATH = "/test-only/explode"


def explode() -> None:
    """A handler with a bug: its exception escapes every handler."""
    raise RuntimeError("a bug in a handler")


def create() -> FastAPI:
    """`uvicorn --factory api.failing_app:create`."""
    app = create_app()
    app.add_api_route(FAILING_PATH, explode)
    return app
