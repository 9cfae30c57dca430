"""The headers of every portal answer (pure ASGI: one dict merge per response).

- ``Content-Security-Policy``: no script at all, styles and images from the portal only,
  forms posting to the portal only, never framed (``frame-ancestors 'none'``);
- ``X-Frame-Options: DENY`` for older browsers, ``X-Content-Type-Options: nosniff``,
  ``Referrer-Policy: same-origin``, a ``Permissions-Policy`` that turns off what pages
  never use, ``Cross-Origin-Opener-Policy: same-origin``;
- ``Strict-Transport-Security`` when the portal is served beyond the loopback (behind
  TLS, RFC 6797), never on the plain-HTTP loopback listener of development;
- ``Cache-Control: no-store`` on every page (they are personal or hold a CSRF token);
  the stylesheet under ``/static/`` may be cached.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
NO_STORE = (b"cache-control", b"no-store")
STATIC_CACHE = (b"cache-control", b"public, max-age=3600")
HSTS = (b"strict-transport-security", b"max-age=31536000")


class SecurityHeaders:
    """Adds :data:`HEADERS` and the cache policy to every HTTP answer of ``app``."""

    def __init__(self, app: ASGIApp, *, https: bool = False) -> None:
        self.app = app
        self.headers = (*HEADERS, HSTS) if https else HEADERS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cache = STATIC_CACHE if scope["path"].startswith("/static/") else NO_STORE

        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [
                    (name, value)
                    for name, value in message.get("headers", [])
                    if name.lower() != b"cache-control"
                ]
                message["headers"] = [*kept, *self.headers, cache]
            await send(message)

        await self.app(scope, receive, stamped)
