"""The HTML pages (Swagger UI, ReDoc, the dashboard) come from the installed package and load only it."""

import json
import re
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin

import pytest

from app.api.page_policy import CONTENT_SECURITY_POLICY, INLINE_STYLES_POLICY

PAGES = ["/docs", "/docs/oauth2-redirect", "/redoc", "/ui/"]


class PageParts(HTMLParser):
    """A page's links, scripts, inline script and styles, event-handler attributes, and tags' attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.scripts: list[dict[str, str | None]] = []
        self.inline_script = ""
        self.handlers: list[str] = []
        self.styles: list[str] = []
        self.attributes: dict[str, dict[str, str | None]] = {}
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.links += [value for name, value in attrs if name in ("src", "href") and value]
        self.handlers += [f"{tag} {name}" for name, _ in attrs if name.startswith("on")]
        self.styles += [f"{tag} style" for name, _ in attrs if name == "style"]
        if tag == "style":
            self.styles.append("<style>")
        self.attributes[tag] = dict(attrs)
        if tag == "script":
            self.scripts.append(dict(attrs))
            self._in_script = True

    def handle_endtag(self, tag: str) -> None:
        self._in_script = self._in_script and tag != "script"

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.inline_script += data.strip()


def parts_of(html: str) -> PageParts:
    parser = PageParts()
    parser.feed(html)
    return parser


def directives(policy: str) -> dict[str, list[str]]:
    """A Content-Security-Policy header as {directive: sources}."""
    return {name: sources for name, *sources in (part.split() for part in policy.split(";"))}


@pytest.mark.parametrize("page", PAGES)
def test_each_page_and_every_asset_it_names_is_served_by_the_service(
    anonymous_client: Any, page: str
) -> None:
    response = anonymous_client.get(page)

    assert response.status_code == 200
    parts = parts_of(response.text)
    assert parts.links and parts.scripts
    for link in parts.links:
        assert not re.match(r"^(https?:)?//", link), f"{page} loads {link} from elsewhere"
        if link.startswith("data:"):
            continue
        asset = anonymous_client.get(urljoin(f"http://testserver{page}", link))
        assert asset.status_code == 200, link
        assert asset.content


@pytest.mark.parametrize("page", PAGES)
def test_no_page_has_inline_script_and_the_policy_runs_only_same_origin_script_files(
    anonymous_client: Any, page: str
) -> None:
    response = anonymous_client.get(page)

    parts = parts_of(response.text)
    assert all(script.get("src") for script in parts.scripts), f"{page} has an inline script"
    assert parts.inline_script == ""
    assert parts.handlers == []
    assert parts.styles == []
    policy = directives(response.headers["content-security-policy"])
    assert policy["default-src"] == policy["script-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]


@pytest.mark.parametrize("page", ["/docs", "/docs/oauth2-redirect", "/ui/"])
def test_pages_but_redoc_allow_no_inline_style(anonymous_client: Any, page: str) -> None:
    policy = anonymous_client.get(page).headers["content-security-policy"]

    assert policy == CONTENT_SECURITY_POLICY
    assert directives(policy)["style-src"] == ["'self'"]


def test_redoc_alone_may_style_inline_and_still_runs_only_script_files(anonymous_client: Any) -> None:
    policy = anonymous_client.get("/redoc").headers["content-security-policy"]

    assert policy == INLINE_STYLES_POLICY
    assert directives(policy)["style-src"] == ["'self'", "'unsafe-inline'"]
    assert "unsafe" not in " ".join(directives(policy)["script-src"])


def swagger_settings(html: str) -> dict[str, Any]:
    """The settings the Swagger UI page hands its start-up script."""
    config = parts_of(html).attributes["div"]["data-config"]
    assert config
    settings: dict[str, Any] = json.loads(config)
    return settings


def test_swagger_ui_gets_its_settings_from_the_page_and_never_asks_the_online_validator(
    anonymous_client: Any,
) -> None:
    settings = swagger_settings(anonymous_client.get("/docs").text)

    assert settings["validatorUrl"] is None
    assert settings["url"] == "/openapi.json"
    assert settings["oauth2RedirectUrl"] == "/docs/oauth2-redirect"
    assert settings["dom_id"] == "#swagger-ui" and settings["deepLinking"] is True


def test_the_documentation_pages_follow_the_root_path(api_app: Any) -> None:
    from fastapi.testclient import TestClient

    client = TestClient(api_app, root_path="/api")

    docs = client.get("/docs").text
    assert swagger_settings(docs)["url"] == "/api/openapi.json"
    assert "/api/docs-static/swagger-ui-init.js" in parts_of(docs).links
    assert "/api/openapi.json" in client.get("/redoc").text


def test_redoc_is_told_not_to_fetch_its_fonts(anonymous_client: Any) -> None:
    assert "fonts.googleapis.com" not in anonymous_client.get("/redoc").text


def test_the_dashboard_lives_under_ui(anonymous_client: Any) -> None:
    redirect = anonymous_client.get("/ui", follow_redirects=False)
    assert redirect.status_code in (301, 307, 308)
    assert redirect.headers["location"].endswith("/ui/")
    assert anonymous_client.get("/ui/dashboard.js").headers["content-type"].startswith("text/javascript")
    assert anonymous_client.get("/ui/missing.js").status_code == 404


def test_api_responses_carry_no_page_policy(client: Any) -> None:
    assert "content-security-policy" not in client.get("/v1/jobs").headers


def test_the_openapi_document_declares_the_bearer_key_for_the_authorize_button(anonymous_client: Any) -> None:
    openapi = anonymous_client.get("/openapi.json").json()

    schemes = openapi["components"]["securitySchemes"]
    assert [scheme for scheme in schemes.values() if scheme["type"] == "http"] == [
        {"type": "http", "scheme": "bearer", "description": schemes["HTTPBearer"]["description"]}
    ]
    create = openapi["paths"]["/v1/jobs"]["post"]
    assert create["security"] == [{"HTTPBearer": []}]
