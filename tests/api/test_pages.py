"""The HTML pages (Swagger UI, ReDoc, the dashboard) come from the installed package and load only it."""

import re
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin

import pytest

from app.api.page_policy import CONTENT_SECURITY_POLICY


class AssetLinks(HTMLParser):
    """Every `src` and `href` of a page (script, stylesheet, icon, link)."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.links += [value for name, value in attrs if name in ("src", "href") and value]


def links_of(html: str) -> list[str]:
    parser = AssetLinks()
    parser.feed(html)
    return parser.links


@pytest.mark.parametrize("page", ["/docs", "/redoc", "/ui/"])
def test_each_page_and_every_asset_it_names_is_served_by_the_service(
    anonymous_client: Any, page: str
) -> None:
    response = anonymous_client.get(page)

    assert response.status_code == 200
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "default-src 'self'" in CONTENT_SECURITY_POLICY
    links = links_of(response.text)
    scripts = re.findall(r"<script[^>]*\bsrc=", response.text)
    assert links and scripts
    for link in links:
        assert not re.match(r"^(https?:)?//", link), f"{page} loads {link} from elsewhere"
        if link.startswith("data:"):
            continue
        asset = anonymous_client.get(urljoin(f"http://testserver{page}", link))
        assert asset.status_code == 200, link
        assert asset.content


def test_redoc_is_told_not_to_fetch_its_fonts(anonymous_client: Any) -> None:
    assert "fonts.googleapis.com" not in anonymous_client.get("/redoc").text


def test_swagger_ui_never_asks_the_online_validator(anonymous_client: Any) -> None:
    assert '"validatorUrl": null' in anonymous_client.get("/docs").text


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
