"""A subscriber's archive, reached through signed links: past digests (each one's page is the "view in
browser" of its mail), "my ratings", and the Atom feed of their picks.

Every page reads only the rows of the subscriber the link was signed for (``digest.subscribers.history``).
A GET only shows: a vote is the POST of a button, to the same feedback route a digest's links open, which
comes back here afterwards (``back``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import types
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from digest.models import FeedbackSource, Paper, Subscriber
from digest.render import PickView, pick_view
from digest.subscribers.history import Listed, delivered_digests, digest_picks, ratings
from digest.web.feed import atom_feed
from digest.web.site import NotFound, Site, get_subscriber, page, site_of

router = APIRouter()
ARCHIVE = frozenset({"archive"})
RATINGS_SHOWN = 500  # per kind (liked, disliked): the page stays readable; the oldest are left off


@dataclasses.dataclass(frozen=True)
class Shown:
    """A paper on one of these pages: as a digest shows it, the current vote, and where its votes post."""

    view: PickView
    vote: int | None
    up_path: str
    down_path: str
    note: str = ""


def _shown(site: Site, subscriber_id: int, paper: Paper, why: str, vote: int | None, note: str = "") -> Shown:
    view = pick_view(types.SimpleNamespace(paper=paper, score=0.0, why=why), subscriber_id, site.links)
    base = site.links.base_url
    return Shown(view, vote, view.up_url.removeprefix(base), view.down_url.removeprefix(base), note)


def _paths(site: Site, subscriber_id: int) -> dict[str, str]:
    links, base = site.links, site.links.base_url
    return {
        "archive_path": links.archive(subscriber_id).removeprefix(base),
        "ratings_path": links.ratings(subscriber_id).removeprefix(base),
        "preferences_path": links.preferences(subscriber_id).removeprefix(base),
        "feed_url": links.feed(subscriber_id),
    }


def _subscriber(session: Session, site: Site, token: str) -> Subscriber:
    return get_subscriber(session, site.token(token, ARCHIVE).subscriber_id)


@router.get("/archive/{token}", response_class=HTMLResponse, summary="A subscriber's past digests")
def archive_page(request: Request, token: str) -> HTMLResponse:
    site = site_of(request)
    with site.db.session() as session:
        subscriber = _subscriber(session, site, token)
        digests = delivered_digests(session, subscriber.id)
        return page(
            request,
            "archive.html",
            subscriber=subscriber,
            digests=digests,
            token=token,
            **_paths(site, subscriber.id),
        )


@router.get("/archive/{token}/ratings", response_class=HTMLResponse, summary="A subscriber's 👍 and 👎")
def ratings_page(request: Request, token: str) -> HTMLResponse:
    site = site_of(request)
    with site.db.session() as session:
        subscriber = _subscriber(session, site, token)
        rated = ratings(session, subscriber.id)
        kinds = {
            kind: [
                _shown(site, subscriber.id, r.paper, "", r.vote, _source_note(r.source))
                for r in rated
                if r.vote == kind
            ][:RATINGS_SHOWN]
            for kind in (1, -1)
        }
        return page(
            request,
            "ratings.html",
            subscriber=subscriber,
            liked=kinds[1],
            disliked=kinds[-1],
            counts={kind: sum(r.vote == kind for r in rated) for kind in (1, -1)},
            shown_at_most=RATINGS_SHOWN,
            back=request.url.path,
            **_paths(site, subscriber.id),
        )


def _source_note(source: FeedbackSource) -> str:
    return "from your library" if source == FeedbackSource.LIBRARY else ""


@router.get("/archive/{token}/{day}", response_class=HTMLResponse, summary="One delivered digest")
def digest_page(request: Request, token: str, day: Annotated[dt.date, Path()]) -> HTMLResponse:
    site = site_of(request)
    with site.db.session() as session:
        subscriber = _subscriber(session, site, token)
        listed = digest_picks(session, subscriber.id, day)
        if listed is None:
            raise NotFound("digest of that day")
        picks = [_shown(site, subscriber.id, item.paper, item.why, item.vote) for item in listed]
        return page(
            request,
            "archive_digest.html",
            subscriber=subscriber,
            day=day,
            date_label=f"{day:%A} {day.day} {day:%B %Y}",
            picks=picks,
            sent_at=_sent_at(listed),
            back=request.url.path,
            **_paths(site, subscriber.id),
        )


def _sent_at(listed: list[Listed]) -> dt.datetime | None:
    return listed[0].sent_at if listed else None


@router.get("/feed/{token}", summary="A subscriber's picks as an Atom feed", response_class=Response)
def feed(request: Request, token: str) -> Response:
    site = site_of(request)
    link = site.token(token, {"feed"})
    with site.db.session() as session:
        subscriber = get_subscriber(session, link.subscriber_id)
        body = atom_feed(session, site.links, subscriber, site.links.base_url + request.url.path)
    return Response(body, media_type="application/atom+xml; charset=utf-8")
