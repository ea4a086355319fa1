"""Picking one digest: candidates (recent, unseen, unrated, not excluded) → model scores → diversity → why."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import numpy as np
from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from digest.config import Settings
from digest.models import DeliveryItem, Feedback, Paper, Subscriber, utcnow
from digest.rank.corpus import Corpus, paper_text, phrase_pattern
from digest.rank.store import corpus_for, load_profile

# Two picks whose TF-IDF cosine exceeds this are near-copies (the same work under two titles, or a paper
# and its companion); the lower-scoring one is skipped. Papers on the same topic sit well below it.
MAX_SIMILARITY = 0.6


@dataclass(frozen=True)
class Pick:
    paper: Paper
    score: float
    why: str


def pick_digest(
    session: Session,
    settings: Settings,
    subscriber: Subscriber,
    *,
    now: dt.datetime | None = None,
    k: int | None = None,
) -> list[Pick]:
    """The top ``k`` new papers for ``subscriber``, best first; fewer (or none) on a weak day."""
    k = k or subscriber.digest_size or settings.default_digest_size
    since = (now or utcnow()) - dt.timedelta(days=settings.recency_days)
    papers = [p for p in candidates(session, subscriber, since) if not is_excluded(p, subscriber)]
    if not papers:
        return []
    corpus = corpus_for(session)
    profile = load_profile(session, subscriber)
    papers = [p for p in papers if p.id in corpus.index]
    rows = corpus.rows(p.id for p in papers)
    scores = profile.score(corpus, corpus.matrix[rows])
    chosen = diverse_top(corpus, rows, scores, k, floor=settings.min_score)
    titles = _title_lookup(session)
    return [
        Pick(papers[i], float(scores[i]), profile.explain(corpus, papers[i].id, _text(papers[i]), titles))
        for i in chosen
    ]


def candidates(session: Session, subscriber: Subscriber, since: dt.datetime) -> list[Paper]:
    """Papers first seen since ``since`` that this subscriber was never sent and never rated."""
    sent = exists().where(DeliveryItem.subscriber_id == subscriber.id, DeliveryItem.paper_id == Paper.id)
    rated = exists().where(Feedback.subscriber_id == subscriber.id, Feedback.paper_id == Paper.id)
    query = select(Paper).where(Paper.first_seen_at >= since, ~sent, ~rated).order_by(Paper.id)
    return list(session.scalars(query))


def is_excluded(paper: Paper, subscriber: Subscriber) -> bool:
    text = _text(paper)
    words = [w for w in subscriber.excluded_keywords or [] if w.strip()]
    return any(phrase_pattern(word).search(text) for word in words)


def diverse_top(corpus: Corpus, rows: np.ndarray, scores: np.ndarray, k: int, *, floor: float) -> list[int]:
    """Indices of the best scores, skipping near-copies of a pick already made.

    A score of zero means no term in common with the profile at all: such a paper has no true "why",
    so it is never picked, whatever ``floor`` (``DIGEST_MIN_SCORE``) says.
    """
    matrix = corpus.matrix
    chosen: list[int] = []
    for i in np.argsort(-scores, kind="stable"):
        if len(chosen) == k or scores[i] <= 0 or scores[i] < floor:
            break
        if chosen and (matrix[rows[chosen]] @ matrix[rows[i]].T).max() > MAX_SIMILARITY:
            continue
        chosen.append(int(i))
    return chosen


def _text(paper: Paper) -> str:
    return paper_text(paper.title, paper.abstract)


def _title_lookup(session: Session) -> Callable[[Hashable], str]:
    def title(paper_id: Hashable) -> str:
        paper = session.get(Paper, paper_id)
        return paper.title if paper is not None else str(paper_id)

    return title
