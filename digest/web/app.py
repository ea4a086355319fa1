"""The FastAPI application: `create_app(settings, db)` wires routes, error pages and security headers.

`digest serve` runs it with uvicorn. Interactive API docs are off (their CDN scripts would break the
Content-Security-Policy); the OpenAPI document is served at /openapi.json only with DIGEST_OPENAPI=true
(for fuzzing and API clients): it lists every route, which a public site need not advertise.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import Receive, Scope, Send

from digest import __version__
from digest.config import Settings
from digest.db import Database
from digest.errors import explain
from digest.signing import BadToken
from digest.web import account, archive, feedback, slack, subscribe
from digest.web.notices import NoticeFailed
from digest.web.security import BodyLimit, CsrfError, SecurityHeaders, install_log_redaction, redact
from digest.web.site import NotFound, Site, message, site_of

STATIC_DIR = Path(str(resources.files("digest.web") / "static"))
FORM_BYTES = 1024 * 1024  # a request body may hold a library file and this much besides
log = logging.getLogger(__name__)


@asynccontextmanager
async def _lifespan(_app: FastAPI) -> AsyncIterator[None]:
    install_log_redaction()  # again after uvicorn configured its loggers
    _freeze_startup_objects()
    yield


def _freeze_startup_objects() -> None:
    """Keep the garbage collector's full passes off the request path.

    After start-up the process holds ~200,000 long-lived objects (numpy, scipy, scikit-learn,
    SQLAlchemy, FastAPI). Each full collection walked them all, pausing the event loop for 50-100 ms
    whenever enough request objects had survived to trigger one: the slowest votes of the benchmark.
    ``gc.freeze()`` moves them to a permanent generation that collections skip; they live as long as
    the process anyway (Python docs, gc.freeze).
    """
    gc.collect()
    gc.freeze()


def create_app(settings: Settings, db: Database) -> FastAPI:
    install_log_redaction()
    app = FastAPI(
        title="digest",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.openapi else None,
        lifespan=_lifespan,
    )
    app.state.site = Site.build(settings, db)
    for module in (subscribe, feedback, account, archive, slack):
        app.include_router(module.router)
    app.add_api_route("/healthz", healthz, methods=["GET"], summary="Database ping")
    app.add_api_route("/favicon.ico", favicon, methods=["GET"], include_in_schema=False)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    _add_error_pages(app)
    _redirect_slashes(app, settings.base_url)
    app.add_middleware(BodyLimit, limit=settings.max_library_bytes + FORM_BYTES)
    app.add_middleware(SecurityHeaders)
    return app


def _redirect_slashes(app: FastAPI, base_url: str) -> None:
    """``/subscribe/`` → ``/subscribe`` (and the reverse) at ``DIGEST_BASE_URL``.

    Starlette's own redirect builds the new URL from the request's Host header, which any client sets: a
    forged Host made our site redirect to another one. This one keeps the path and query, nothing else."""
    router = app.router
    router.redirect_slashes = False
    not_found = router.default

    async def default(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "/")
        other = path.rstrip("/") if path.endswith("/") else path + "/"
        if (
            scope["type"] == "http"
            and path != "/"
            and other
            and _routed(router.routes, {**scope, "path": other})
        ):
            query = scope.get("query_string", b"").decode("latin-1")
            await RedirectResponse(base_url + other + (f"?{query}" if query else ""))(scope, receive, send)
            return
        await not_found(scope, receive, send)

    router.default = default


def _routed(routes: list, scope: Scope) -> bool:  # type: ignore[type-arg]
    return any(route.matches(scope)[0] != Match.NONE for route in routes)


def healthz(request: Request) -> JSONResponse:
    try:
        with site_of(request).db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:  # any driver error means "not healthy"; the type says enough for a probe
        return JSONResponse({"status": "error", "database": type(exc).__name__}, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok", "version": __version__})


def favicon() -> FileResponse:
    """Browsers ask for /favicon.ico whatever the page links; the pages link the SVG."""
    return FileResponse(STATIC_DIR / "favicon.ico", media_type="image/x-icon")


def _add_error_pages(app: FastAPI) -> None:
    """Every failure is a short page saying what was wrong; never a stack trace."""

    @app.exception_handler(DBAPIError)
    async def database_down(request: Request, exc: DBAPIError) -> HTMLResponse:
        # One log line, not a traceback per request, while the database is away.
        failure = explain(exc, database_url=site_of(request).db.url)
        log.error("%s %s: %s", request.method, redact(request.url.path), failure)
        return message(
            request,
            "Temporarily unavailable",
            "We cannot reach our database just now. Nothing was changed; please try again in a few minutes.",
            503,
            headers={"Retry-After": "60"},
        )

    @app.exception_handler(BadToken)
    async def bad_token(request: Request, exc: BadToken) -> HTMLResponse:
        return message(
            request,
            "This link can't be used",
            f"{_sentence(exc.reason)} Links in your latest digest are fresh; use one of those.",
            400,
        )

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> HTMLResponse:
        text = f"We have no {exc.what} for this link (any more)."
        return message(request, f"No such {exc.what}", text, 404)

    @app.exception_handler(CsrfError)
    async def csrf_failed(request: Request, exc: CsrfError) -> HTMLResponse:
        return message(
            request,
            "Please try again",
            f"We could not accept this form: {exc}. Go back, reload the page and submit it again.",
            403,
        )

    @app.exception_handler(NoticeFailed)
    async def notice_failed(request: Request, _exc: NoticeFailed) -> HTMLResponse:
        return message(
            request,
            "We could not send the message",
            "Your request is saved, but the "
            "confirmation could not be sent just now. Please try again in a few minutes.",
            503,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> HTMLResponse:
        title = "Page not found" if exc.status_code == 404 else str(exc.detail)
        text = "Check the address, or start from the home page."
        if exc.status_code == 413:
            title, text = "Too large", f"{exc.detail}. Nothing was stored; go back and choose a smaller file."
        return message(
            request,
            title,
            text,
            exc.status_code,
            headers=getattr(exc, "headers", None),
            action_path="/",
            action_label="Home",
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> HTMLResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][1:]) or 'request'}: {e['msg']}" for e in exc.errors()
        )
        return message(request, "Bad request", f"The request was not understood ({problems}).", 422)

    @app.exception_handler(Exception)
    async def server_error(request: Request, _exc: Exception) -> HTMLResponse:
        return message(
            request,
            "Something went wrong",
            "Sorry, that failed on our side. Nothing was changed; please try again.",
            500,
        )


def _sentence(reason: str) -> str:
    return reason[:1].upper() + reason[1:] + ("" if reason.endswith(".") else ".")
