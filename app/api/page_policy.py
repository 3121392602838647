"""A Content-Security-Policy on every HTML page: the pages run only same-origin script files.

Swagger UI, ReDoc and the dashboard are served with their assets, but a bundled asset may still point
elsewhere (ReDoc's sidebar shows a logo from its vendor's CDN); the policy makes the browser refuse such
a request instead of sending it. No page has an inline script or event handler (app.docs_pages starts
the documentation pages from script files), so no policy allows one.
"""

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def page_policy(*, style_src: str = "'self'") -> str:
    """The same-origin policy, with the page's style sources."""
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            f"style-src {style_src}",
            "img-src 'self' data: blob:",
            "font-src 'self' data:",
            "worker-src 'self' blob:",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            "frame-ancestors 'self'",
        ]
    )


CONTENT_SECURITY_POLICY = page_policy()
# ReDoc's bundle styles itself through <style> elements it creates as it loads and renders
# (styled-components, and a stylesheet of its scrollbar), with no nonce that reaches them: refused,
# the page stays blank. Its page alone allows inline styles; scripts stay same-origin files.
INLINE_STYLES_POLICY = page_policy(style_src="'self' 'unsafe-inline'")


class SameOriginPages:
    """ASGI middleware: HTML responses carry the same-origin policy, unless the page set its own."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if headers.get("content-type", "").startswith("text/html"):
                    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
            await send(message)

        await self.app(scope, receive, send_with_policy)
