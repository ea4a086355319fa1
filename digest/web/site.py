"""What every route of the web app shares: settings, database, links, templates, CSRF, and page rendering."""

from __future__ import annotations

import dataclasses
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session

from digest.config import Settings
from digest.db import Database
from digest.models import Paper, Subscriber
from digest.render import TEMPLATES_DIR as ALL_TEMPLATES
from digest.signing import Links, Token, links_for
from digest.web.security import Csrf, RateLimiter

TEMPLATES_DIR = ALL_TEMPLATES / "web"


class NotFound(Exception):
    """A signed link or URL names a paper or subscriber we do not have (any more)."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


@dataclasses.dataclass
class Site:
    settings: Settings
    db: Database
    links: Links
    templates: Jinja2Templates
    csrf: Csrf
    subscribe_limiter: RateLimiter

    @classmethod
    def build(cls, settings: Settings, db: Database) -> Site:
        return cls(
            settings=settings,
            db=db,
            links=links_for(settings),
            templates=Jinja2Templates(env=_environment()),
            csrf=Csrf(settings.secret, secure_cookie=settings.base_url.startswith("https://")),
            subscribe_limiter=RateLimiter(settings.subscribe_rate_limit),
        )

    def token(self, token: str, allowed: frozenset[str] | set[str]) -> Token:
        """Check a link token (raises BadToken, shown as a 400 page)."""
        return self.links.signer.loads(token, allowed)


def _environment() -> jinja2.Environment:
    """Starlette's default environment, without auto_reload: templates ship with the code, so pages
    need not stat() every template file they use on each render."""
    loader = jinja2.FileSystemLoader(str(TEMPLATES_DIR))
    return jinja2.Environment(loader=loader, autoescape=jinja2.select_autoescape(), auto_reload=False)


def site_of(request: Request) -> Site:
    return request.app.state.site


def page(
    request: Request,
    template: str,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """Render a page with a CSRF token for its forms (setting the cookie on first visit)."""
    site = site_of(request)
    context.setdefault("csrf_token", site.csrf.token_for(request))
    response = site.templates.TemplateResponse(
        request, template, context, status_code=status_code, headers=headers
    )
    site.csrf.set_cookie(request, response)
    return response


def message(
    request: Request,
    title: str,
    text: str,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> HTMLResponse:
    """A one-paragraph page: confirmations, and every error page (never a stack trace)."""
    return page(request, "message.html", status_code, headers, title=title, text=text, **extra)


def get_subscriber(session: Session, subscriber_id: int) -> Subscriber:
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None:
        raise NotFound("subscription")
    return subscriber


def get_paper(session: Session, paper_id: int) -> Paper:
    paper = session.get(Paper, paper_id)
    if paper is None:
        raise NotFound("paper")
    return paper
