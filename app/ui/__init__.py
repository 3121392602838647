"""The dashboard: static HTML, JavaScript and CSS installed with the package and served at /ui/.

The page calls the API from the browser with the key the user types in, so it needs no route of its own.
"""

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

DASHBOARD_PATH = "/ui"


def mount_dashboard(app: FastAPI) -> None:
    """Serve the dashboard's files at /ui/ (a request for /ui is redirected there)."""
    files = StaticFiles(packages=[("app.ui", "static")], html=True)
    app.mount(DASHBOARD_PATH, files, name="ui")
