"""A subscriber's own history, as their pages and feed show it: the digests delivered to them, each one's
picks with the subscriber's current vote, and every paper they rated (the newest vote per paper wins).

Every query is by the subscriber's id, which only their signed link gives: nothing here reads another
subscriber's rows. A digest counts as delivered once it was sent, or handed over with its outcome unknown
(``sending``: it may well have arrived); a failed one released its papers and shows nowhere.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest.models import Delivery, DeliveryItem, DeliveryStatus, Feedback, FeedbackSource, Paper

DELIVERED = (DeliveryStatus.SENT, DeliveryStatus.SENDING)


@dataclasses.dataclass(frozen=True)
class DeliveredDigest:
    digest_date: dt.date
    status: DeliveryStatus
    sent_at: dt.datetime | None
    papers: int


@dataclasses.dataclass(frozen=True)
class Listed:
    """A pick as delivered, with the subscriber's vote on it now (None: not rated)."""

    paper: Paper
    position: int
    why: str
    vote: int | None
    sent_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class Rating:
    paper: Paper
    vote: int
    source: FeedbackSource
    at: dt.datetime


def delivered_digests(session: Session, subscriber_id: int, *, limit: int = 366) -> list[DeliveredDigest]:
    """The subscriber's delivered digests, newest first."""
    papers = func.count(DeliveryItem.id)
    query = (
        select(Delivery.digest_date, Delivery.status, Delivery.sent_at, papers)
        .join(DeliveryItem, DeliveryItem.delivery_id == Delivery.id)
        .where(Delivery.subscriber_id == subscriber_id, Delivery.status.in_(DELIVERED))
        .group_by(Delivery.id, Delivery.digest_date, Delivery.status, Delivery.sent_at)
        .order_by(Delivery.digest_date.desc())
        .limit(limit)
    )
    return [DeliveredDigest(*row) for row in session.execute(query).tuples()]


def digest_picks(session: Session, subscriber_id: int, digest_date: dt.date) -> list[Listed] | None:
    """The picks of the subscriber's digest of ``digest_date``, in order; None when none was delivered."""
    delivery = session.scalar(
        select(Delivery).where(
            Delivery.subscriber_id == subscriber_id,
            Delivery.digest_date == digest_date,
            Delivery.status.in_(DELIVERED),
        )
    )
    if delivery is None or not delivery.items:
        return None
    return _listed(session, subscriber_id, [(item, delivery) for item in delivery.items])


def recent_picks(session: Session, subscriber_id: int, *, limit: int = 100) -> list[Listed]:
    """The subscriber's latest delivered picks, newest digest first (the feed's entries)."""
    query = (
        select(DeliveryItem, Delivery)
        .join(Delivery, DeliveryItem.delivery_id == Delivery.id)
        .where(DeliveryItem.subscriber_id == subscriber_id, Delivery.status.in_(DELIVERED))
        .order_by(Delivery.digest_date.desc(), DeliveryItem.position)
        .limit(limit)
    )
    return _listed(session, subscriber_id, list(session.execute(query).tuples()))


def _listed(session: Session, subscriber_id: int, rows: list[tuple[DeliveryItem, Delivery]]) -> list[Listed]:
    ids = [item.paper_id for item, _ in rows]
    papers = {p.id: p for p in session.scalars(select(Paper).where(Paper.id.in_(ids)))}
    votes = current_votes(session, subscriber_id, ids)
    return [
        Listed(
            papers[item.paper_id],
            item.position,
            item.why,
            votes.get(item.paper_id),
            delivery.sent_at or delivery.created_at,
        )
        for item, delivery in rows
        if item.paper_id in papers
    ]


def current_votes(session: Session, subscriber_id: int, paper_ids: list[int]) -> dict[int, int]:
    """paper id → the subscriber's current vote on it, for the given papers."""
    if not paper_ids:
        return {}
    query = (
        select(Feedback.paper_id, Feedback.value)
        .where(Feedback.subscriber_id == subscriber_id, Feedback.paper_id.in_(paper_ids))
        .order_by(Feedback.created_at, Feedback.id)
    )
    return dict(session.execute(query).tuples().all())


def ratings(session: Session, subscriber_id: int) -> list[Rating]:
    """Every paper the subscriber rated, with their current vote, the most recently rated first."""
    query = (
        select(Feedback, Paper)
        .join(Paper, Paper.id == Feedback.paper_id)
        .where(Feedback.subscriber_id == subscriber_id)
        .order_by(Feedback.created_at, Feedback.id)
    )
    latest: dict[int, Rating] = {}
    for vote, paper in session.execute(query).tuples():
        latest.pop(paper.id, None)  # re-inserted: the dict keeps the order of each paper's latest vote
        latest[paper.id] = Rating(paper, vote.value, vote.source, vote.created_at)
    return list(reversed(latest.values()))
