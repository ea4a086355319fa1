"""The 👍/👎 pages behind every digest link, and the public page of each paper.

A GET only shows: corporate link scanners fetch every link in a mail, and some run its scripts, so the
vote is recorded by the POST of a button on the page and nothing submits by itself.

Speed (``python -m benchmarks.bench_feedback``): these two routes are ``async``. They check the signed
token and the CSRF field on the event loop (microseconds), then do their database work: one statement
for the page; one for the vote's lookups, then record_feedback's writes. On PostgreSQL that work runs in
a worker thread, like every sync route, so network round trips and row locks never stall the loop. On
the embedded SQLite it runs on the loop itself: a library call of a fraction of a millisecond, where a
read in WAL mode never waits for a lock, and the vote takes the write lock only if it is free at once
(``write_session(wait=False)``), else retries from a worker thread where waiting is harmless. That
saves two thread hand-offs per request, which cost more than the work (measured: ~0.5 ms of CPU per
vote, and GIL convoys that stretch the one-writer-at-a-time section). A vote is a write session: votes
queue in the process instead of polling SQLite's lock, and a subscriber's model is never updated by two
votes at once.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Form, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import bindparam, select, true
from sqlalchemy.orm import Session

from digest.db import WriterBusy
from digest.models import Feedback, FeedbackSource, Paper, Subscriber, SubscriberModel
from digest.rank import record_feedback
from digest.signing import FEEDBACK_ACTIONS, Token
from digest.web.site import Site, get_paper, get_subscriber, page, site_of

router = APIRouter()
VOTE_VALUES = {"up": 1, "down": -1}
# SQLite and PostgreSQL bigint both end here; larger ids can only be typos or probes.
MAX_ID = 2**63 - 1
# Where a vote from an archive page goes back to: one of this site's archive pages, nothing else (no open
# redirect through a forged form).
BACK = re.compile(r"^/archive/[A-Za-z0-9_.-]+(?:/(?:ratings|\d{4}-\d{2}-\d{2}))?$")

# Built once: SQLAlchemy caches a statement's compiled form by its structure, and a module-level
# statement also keeps its cache key, so each request only binds the ids.
_BOTH = (Subscriber.id == bindparam("subscriber_id"), Paper.id == bindparam("paper_id"))
_LATEST_VOTE = (
    select(Feedback.value)
    .where(Feedback.subscriber_id == Subscriber.id, Feedback.paper_id == Paper.id)
    .order_by(Feedback.created_at.desc(), Feedback.id.desc())
    .limit(1)
    .correlate(Subscriber, Paper)
    .scalar_subquery()
)
# The feedback page in one round trip: the subscriber exists, the paper, and the current vote (history
# is kept; the newest wins). The join on true() puts two primary-key lookups side by side: one row or none.
_PAGE = select(Subscriber.id, Paper, _LATEST_VOTE).join(Paper, true()).where(*_BOTH)
# A vote's lookups: subscriber and paper in one round trip. On PostgreSQL the subscriber's row is locked
# (FOR UPDATE), so two votes of one subscriber update the model one after the other; record_feedback then
# reads the model in a statement of its own, which sees the model the previous vote committed (a row
# joined into the locking statement would come from that statement's older snapshot). On SQLite the
# transaction already holds the write lock (BEGIN IMMEDIATE), so the stored model comes along in the
# same round trip and record_feedback finds it in the session's identity map without a query (the
# identity map holds rows weakly; the result row keeps it alive until the vote is stored).
_VOTE_LOCKING = select(Subscriber, Paper).join(Paper, true()).where(*_BOTH).with_for_update(of=Subscriber)
_VOTE_WITH_MODEL = (
    select(Subscriber, Paper, SubscriberModel)
    .select_from(Subscriber)
    .join(Paper, true())
    .outerjoin(SubscriberModel, SubscriberModel.subscriber_id == Subscriber.id)
    .where(*_BOTH)
)


def _not_found(session: Session, link: Token) -> None:
    """Raise the NotFound that says which of the two is missing (the rare path: two plain lookups)."""
    get_subscriber(session, link.subscriber_id)
    get_paper(session, link.paper_id or 0)
    raise AssertionError("a joined lookup found nothing, but both rows exist")  # pragma: no cover


def _ids(link: Token) -> dict[str, int]:
    return {"subscriber_id": link.subscriber_id, "paper_id": link.paper_id or 0}


def _load_page(site: Site, link: Token) -> tuple[Paper, int | None]:
    with site.db.session() as session:
        row = session.execute(_PAGE, _ids(link)).first()
        if row is None:
            _not_found(session, link)
        return row[1], row[2]


def record_vote(
    site: Site,
    link: Token,
    source: FeedbackSource,
    *,
    wait: bool = True,
    before: Callable[[Session], None] | None = None,
) -> Paper:
    """Store the vote of a checked feedback token and update the model (NotFound for unknown ids).

    ``before`` runs first in the same transaction (the Slack endpoint stores the click there, so a replay
    fails on its unique key and records nothing)."""
    with site.db.write_session(wait=wait) as session:
        if before is not None:
            before(session)
        statement = _VOTE_WITH_MODEL if site.db.embedded else _VOTE_LOCKING
        row = session.execute(statement, _ids(link)).first()
        if row is None:
            _not_found(session, link)
        subscriber, paper = row[0], row[1]
        # The stored model (keywords + latest rating per paper) changes in this transaction, so every
        # later digest scores with the vote. Its derived weights are brought up to date where they are
        # next used (incrementally, about 9 ms p50 with 300 ratings), not here: doing it inline cost votes
        # 0.58x the throughput (490 -> 286 req/s, p99 56 -> 83 ms on SQLite; bench_feedback.py, same run).
        record_feedback(session, subscriber, paper.id, VOTE_VALUES[link.action], source, update=False)
        return paper


def _feedback_page(
    request: Request, site: Site, link: Token, paper: Paper, vote: int | None, **extra: object
) -> HTMLResponse:
    links, base = site.links, site.links.base_url
    vote_urls = {vote: links.feedback(link.subscriber_id, paper.id, vote) for vote in VOTE_VALUES}
    return page(
        request,
        "feedback.html",
        paper=paper,
        vote=vote,
        vote_paths={v: url.removeprefix(base) for v, url in vote_urls.items()},
        preferences_path=links.preferences(link.subscriber_id).removeprefix(base),
        **extra,
    )


@router.get("/feedback/{token}", response_class=HTMLResponse, summary="Show a paper and its vote buttons")
async def feedback_page(request: Request, token: str, recorded: bool = False) -> HTMLResponse:
    site = site_of(request)
    link = site.token(token, FEEDBACK_ACTIONS)
    if site.db.embedded:
        paper, vote = _load_page(site, link)
    else:
        paper, vote = await run_in_threadpool(_load_page, site, link)
    if recorded:  # the result page of a vote (the POST redirects here)
        return _feedback_page(request, site, link, paper, vote, recorded=link.action)
    return _feedback_page(request, site, link, paper, vote, suggested=link.action)


@router.post("/feedback/{token}", response_class=HTMLResponse, summary="Record the vote of this link")
async def feedback_vote(
    request: Request, token: str, csrf_token: Annotated[str, Form()] = "", back: Annotated[str, Form()] = ""
) -> RedirectResponse:
    site = site_of(request)
    link = site.token(token, FEEDBACK_ACTIONS)
    site.csrf.check(request, csrf_token)
    try:
        if not site.db.embedded:
            raise WriterBusy  # PostgreSQL: always from a worker thread
        record_vote(site, link, FeedbackSource.WEB, wait=False)
    except WriterBusy:
        await run_in_threadpool(record_vote, site, link, FeedbackSource.WEB)
    # The result page is a GET, so reloading it cannot vote again.
    if BACK.match(back):  # a vote from an archive page: back to it, at the paper voted on
        return RedirectResponse(f"{back}?voted={link.action}#paper-{link.paper_id}", 303)
    return RedirectResponse(f"/feedback/{token}?recorded=1", 303)


@router.get("/papers/{paper_id}", response_class=HTMLResponse, summary="A paper's public page")
def paper_page(request: Request, paper_id: Annotated[int, Path(ge=1, le=MAX_ID)]) -> HTMLResponse:
    site = site_of(request)
    with site.db.session() as session:
        return page(request, "paper.html", paper=get_paper(session, paper_id))
