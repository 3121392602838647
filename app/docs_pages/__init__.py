"""Swagger UI at /docs and ReDoc at /redoc, pages with no inline script.

fastapi-offline installs the libraries' files and serves them; its pages (FastAPI's) start Swagger UI
from an inline script, which the pages' Content-Security-Policy refuses. These pages name their settings
in data attributes instead, read by a same-origin script installed with this package.
"""

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse

from app.api.page_policy import INLINE_STYLES_POLICY
from app.docs_pages.html import PageAssets, oauth2_redirect_page, redoc_page, swagger_ui_page

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
# Where fastapi-offline mounts Swagger UI's and ReDoc's files (its default `static_url`).
LIBRARY_ASSETS_PATH = "/static-offline-docs"
PAGE_ASSETS_PATH = "/docs-static"


def mount_docs_pages(app: FastAPI) -> None:
    """Serve the documentation pages and the scripts that start them (the app's own pages turned off)."""
    app.mount(PAGE_ASSETS_PATH, StaticFiles(packages=[("app.docs_pages", "static")]), name="docs-static")
    openapi_url = app.openapi_url or "/openapi.json"
    redirect_url = app.swagger_ui_oauth2_redirect_url

    def assets(request: Request) -> PageAssets:
        root = request.scope.get("root_path", "")
        return PageAssets(root=root, library=root + LIBRARY_ASSETS_PATH, page=root + PAGE_ASSETS_PATH)

    @app.get(DOCS_URL, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        return HTMLResponse(
            swagger_ui_page(
                assets(request),
                title=f"{app.title} - Swagger UI",
                openapi_url=openapi_url,
                parameters=app.swagger_ui_parameters or {},
                oauth2_redirect_url=redirect_url,
                init_oauth=app.swagger_ui_init_oauth,
            )
        )

    if redirect_url:

        @app.get(redirect_url, include_in_schema=False)
        async def swagger_ui_oauth2_redirect(request: Request) -> HTMLResponse:
            return HTMLResponse(oauth2_redirect_page(assets(request)))

    @app.get(REDOC_URL, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        page = redoc_page(assets(request), title=f"{app.title} - ReDoc", openapi_url=openapi_url)
        return HTMLResponse(page, headers={"Content-Security-Policy": INLINE_STYLES_POLICY})
