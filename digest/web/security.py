"""Browser-facing safety: CSRF tokens, security headers, the subscribe rate limit, a cap on request bodies,
token-free access logs.

CSRF uses the signed double-submit pattern: a random value lives in an HttpOnly cookie and the same value,
signed with the app secret, travels in a hidden form field. A cross-site page can make the browser send the
cookie but cannot read it, so it cannot produce the matching field (OWASP CSRF Prevention Cheat Sheet).
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable

from itsdangerous import BadSignature
from itsdangerous import Signer as ItsSigner
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSRF_COOKIE = "digest_csrf"
CSRF_FIELD = "csrf_token"

# Links carry signed tokens in their paths, so no page may leak its URL to another site through the
# Referer header, load third-party content, or be framed (clickjacking of the vote/unsubscribe buttons).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
# Pages behind signed links show personal data: no shared cache may keep them.
PRIVATE_PREFIXES = (
    "/feedback/", "/preferences/", "/unsubscribe/", "/confirm/", "/subscribe", "/slack/",
    "/archive/", "/feed/",
)  # fmt: skip


class CsrfError(Exception):
    """A browser form arrived without a valid CSRF token (stale page, cookies off, or a forged post)."""


class Csrf:
    """Issue and check signed double-submit tokens."""

    def __init__(self, secret: str, *, secure_cookie: bool) -> None:
        self._signer = ItsSigner(secret, salt="digest.csrf.v1")
        self.secure_cookie = secure_cookie

    def token_for(self, request: Request) -> str:
        """The form token for this browser; creates its cookie value on first use (set by `set_cookie`)."""
        value = request.cookies.get(CSRF_COOKIE) or getattr(request.state, "new_csrf", None)
        if not value:
            value = secrets.token_urlsafe(24)
            request.state.new_csrf = value
        return self._signer.sign(value).decode()

    def set_cookie(self, request: Request, response: Response) -> None:
        value = getattr(request.state, "new_csrf", None)
        if value:
            response.set_cookie(
                CSRF_COOKIE, value, httponly=True, samesite="lax", secure=self.secure_cookie, path="/"
            )

    def check(self, request: Request, submitted: str | None) -> None:
        cookie = request.cookies.get(CSRF_COOKIE)
        if not cookie:
            raise CsrfError("your browser did not send our cookie (are cookies blocked for this site?)")
        try:
            value = self._signer.unsign(submitted or "").decode()
        except BadSignature:
            raise CsrfError("the form was not sent from this site's page") from None
        if not hmac.compare_digest(value, cookie):
            raise CsrfError("the form is out of date")


class RateLimiter:
    """At most `limit` events per key in any `window` seconds (sliding window, kept in this process)."""

    def __init__(self, limit: int, window: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window, self._clock = limit, window, clock
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str) -> float | None:
        """Record one event; None when allowed, else the seconds until the next one would be."""
        now = self._clock()
        with self._lock:
            events = self._events.setdefault(key, deque())
            while events and events[0] <= now - self.window:
                events.popleft()
            if len(events) >= self.limit:
                return events[0] + self.window - now
            events.append(now)
            self._forget_idle(now)
            return None

    def _forget_idle(self, now: float) -> None:
        # Bound memory under many client addresses: drop keys whose newest event left the window.
        if len(self._events) > 10_000:
            stale = [key for key, ev in self._events.items() if not ev or ev[-1] <= now - self.window]
            for key in stale:
                del self._events[key]


class SecurityHeaders:
    """Pure ASGI middleware (cheaper than BaseHTTPMiddleware) adding the headers above to every answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        private = scope["path"].startswith(PRIVATE_PREFIXES)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(n, v) for n, v in SECURITY_HEADERS if n not in present]
                if private and b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyLimit:
    """Refuses a request body over ``limit`` bytes (413) as it arrives: Starlette spools an uploaded file to
    disk whatever its size, so the library upload's own limit alone would not keep a huge one off it."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length", b"0")
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
            if received > self.limit or (declared.isdigit() and int(declared) > self.limit):
                raise HTTPException(413, f"The request is too large (at most {self.limit // 1024} KB)")
            return message

        await self.app(scope, limited, send)


TOKEN_PATH = re.compile(r"/(feedback|preferences|unsubscribe|confirm|archive|feed)/[^/?\s\"]+")


def redact(text: str) -> str:
    """Replace the signed token of any link path with a placeholder."""
    return TOKEN_PATH.sub(lambda m: f"/{m.group(1)}/<token>", text)


class RedactTokens(logging.Filter):
    """Keeps signed tokens out of the access log: anyone reading a token could vote or unsubscribe."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def install_log_redaction(logger_names: tuple[str, ...] = ("uvicorn.access", "uvicorn.error")) -> None:
    for name in logger_names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())
