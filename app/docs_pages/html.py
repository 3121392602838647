"""The HTML of the documentation pages: every script is a file, every setting a data attribute."""

import json
from dataclasses import dataclass
from html import escape
from typing import Any

from fastapi.encoders import jsonable_encoder
from fastapi.openapi.docs import swagger_ui_default_parameters


@dataclass(frozen=True)
class PageAssets:
    """Where a page finds things: the app's root path, the libraries' files and the pages' own."""

    root: str
    library: str
    page: str


def data_json(value: Any) -> str:
    """A value as JSON, escaped for a double-quoted HTML attribute."""
    return escape(json.dumps(jsonable_encoder(value)), quote=True)


def swagger_ui_page(
    assets: PageAssets,
    *,
    title: str,
    openapi_url: str,
    parameters: dict[str, Any],
    oauth2_redirect_url: str | None,
    init_oauth: dict[str, Any] | None,
) -> str:
    """Swagger UI: its settings (FastAPI's defaults, then the app's) on the element it renders into."""
    config = {**swagger_ui_default_parameters, **parameters, "url": assets.root + openapi_url}
    if oauth2_redirect_url:
        # A path: the script puts the page's origin in front, as FastAPI's inline script does.
        config["oauth2RedirectUrl"] = assets.root + oauth2_redirect_url
    oauth = f' data-init-oauth="{data_json(init_oauth)}"' if init_oauth else ""
    return _page(
        title,
        stylesheet=f"{assets.library}/swagger-ui.css",
        icon=f"{assets.library}/favicon.png",
        body=f"""<div id="swagger-ui" data-config="{data_json(config)}"{oauth}></div>
<script src="{assets.library}/swagger-ui-bundle.js"></script>
<script src="{assets.page}/swagger-ui-init.js"></script>""",
    )


def redoc_page(assets: PageAssets, *, title: str, openapi_url: str) -> str:
    """ReDoc: its bundle starts itself on the `redoc` element; no web fonts, so nothing from elsewhere."""
    return _page(
        title,
        stylesheet=f"{assets.page}/redoc.css",
        icon=f"{assets.library}/favicon.png",
        body=f"""<noscript>ReDoc needs JavaScript to show the documentation.</noscript>
<redoc spec-url="{escape(assets.root + openapi_url, quote=True)}"></redoc>
<script src="{assets.library}/redoc.standalone.js"></script>""",
    )


def oauth2_redirect_page(assets: PageAssets) -> str:
    """Where an OAuth2 provider sends the browser back to Swagger UI."""
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Swagger UI: OAuth2 Redirect</title>
<script src="{assets.page}/oauth2-redirect.js"></script>
</head>
<body></body>
</html>
"""


def _page(title: str, *, stylesheet: str, icon: str, body: str) -> str:
    """A page's skeleton: its title, one stylesheet, an icon and the body's markup."""
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<link rel="stylesheet" href="{stylesheet}">
<link rel="icon" href="{icon}">
</head>
<body>
{body}
</body>
</html>
"""
