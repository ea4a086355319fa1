"""The 👍/👎 pages behind every digest link, and the public page of each paper.

A GET only shows: corporate link scanners fetch every link in a mail, and some run its scripts, so the
vote is recorded by the POST of a button on the page and nothing submits by itself.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.models import Feedback, Paper, Subscriber
from digest.rank import record_feedback
from digest.signing import FEEDBACK_ACTIONS
from digest.web.site import Site, get_paper, get_subscriber, page, site_of

router = APIRouter()
VOTE_VALUES = {"up": 1, "down": -1}
# SQLite and PostgreSQL bigint both end here; larger ids can only be typos or probes.
MAX_ID = 2**63 - 1


def current_vote(session: Session, subscriber_id: int, paper_id: int) -> int | None:
    """The latest vote of a subscriber on a paper (history is kept; the newest wins)."""
    query = (
        select(Feedback.value)
        .where(Feedback.subscriber_id == subscriber_id, Feedback.paper_id == paper_id)
        .order_by(Feedback.created_at.desc(), Feedback.id.desc())
        .limit(1)
    )
    return session.scalar(query)


def _feedback_page(
    request: Request, site: Site, session: Session, subscriber: Subscriber, paper: Paper, **extra: object
) -> HTMLResponse:
    vote_urls = {vote: site.links.feedback(subscriber.id, paper.id, vote) for vote in VOTE_VALUES}
    return page(
        request,
        "feedback.html",
        paper=paper,
        vote=current_vote(session, subscriber.id, paper.id),
        vote_paths={vote: url.removeprefix(site.links.base_url) for vote, url in vote_urls.items()},
        preferences_path=site.links.preferences(subscriber.id).removeprefix(site.links.base_url),
        **extra,
    )


@router.get("/feedback/{token}", response_class=HTMLResponse, summary="Show a paper and its vote buttons")
def feedback_page(request: Request, token: str) -> HTMLResponse:
    site = site_of(request)
    link = site.token(token, FEEDBACK_ACTIONS)
    with site.db.session() as session:
        subscriber = get_subscriber(session, link.subscriber_id)
        paper = get_paper(session, link.paper_id or 0)
        return _feedback_page(request, site, session, subscriber, paper, suggested=link.action)


@router.post("/feedback/{token}", response_class=HTMLResponse, summary="Record the vote of this link")
def feedback_vote(request: Request, token: str, csrf_token: Annotated[str, Form()] = "") -> HTMLResponse:
    site = site_of(request)
    link = site.token(token, FEEDBACK_ACTIONS)
    site.csrf.check(request, csrf_token)
    with site.db.session() as session:
        subscriber = get_subscriber(session, link.subscriber_id)
        paper = get_paper(session, link.paper_id or 0)
        record_feedback(session, subscriber, paper.id, VOTE_VALUES[link.action], "web")
        session.flush()
        return _feedback_page(request, site, session, subscriber, paper, recorded=link.action)


@router.get("/papers/{paper_id}", response_class=HTMLResponse, summary="A paper's public page")
def paper_page(request: Request, paper_id: Annotated[int, Path(ge=1, le=MAX_ID)]) -> HTMLResponse:
    site = site_of(request)
    with site.db.session() as session:
        return page(request, "paper.html", paper=get_paper(session, paper_id))
