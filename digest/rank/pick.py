"""Picking one digest: candidates (recent, unseen, unrated, not excluded) → model scores → diversity → why."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from digest.config import Settings
from digest.models import DeliveryItem, Feedback, Paper, Subscriber, utcnow
from digest.rank.cache import corpus_for, load_profile
from digest.rank.corpus import paper_text
from digest.rank.explain import explain
from digest.rank.tfidf import phrase_pattern
from digest.rank.vectors import sparse_dot

# Two picks whose TF-IDF cosine exceeds this are near-copies (the same work under two titles, or a paper
# and its companion); the lower-scoring one is skipped. Papers on the same topic sit well below it: over
# the 30 days of the arXiv dev file (5,504 papers) no two distinct papers reach 0.6, a resubmitted copy
# sits near 1.
MAX_SIMILARITY = 0.8


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
    """The top ``k`` new papers for ``subscriber``, best first; fewer (or none) on a weak day.

    Per subscriber this loads candidate ids only (the papers' rows are already in the per-process corpus,
    ``cache.corpus_for``) and then the ``k`` chosen papers; the keyword expansion is shared by every
    subscriber with the same keywords until the corpus changes.
    """
    k = k or subscriber.digest_size or settings.default_digest_size
    since = (now or utcnow()) - dt.timedelta(days=settings.recency_days)
    ids = candidate_ids(session, subscriber, since)
    if not ids:
        return []
    corpus = corpus_for(session, settings.recency_days)
    profile = load_profile(session, subscriber)
    ids = [i for i in ids if i in corpus.index]
    rows = corpus.rows(ids)
    own = corpus.own(rows)
    scores = profile.score(corpus, corpus.matrix[rows])
    chosen = diverse_top(own, scores, k, floor=settings.min_score, eligible=profile.evidence(corpus, own))
    papers = {p.id: p for p in session.scalars(select(Paper).where(Paper.id.in_([ids[i] for i in chosen])))}
    titles = _title_lookup(session)
    picks = []
    for i in chosen:
        paper = papers[ids[i]]
        picks.append(Pick(paper, float(scores[i]), explain(profile, corpus, paper.id, _text(paper), titles)))
    return picks


def candidate_ids(session: Session, subscriber: Subscriber, since: dt.datetime) -> list[int]:
    """Ids of papers first seen since ``since`` that this subscriber was never sent, never rated, and
    that mention none of the subscriber's excluded keywords (texts are read only when there are some)."""
    sent = exists().where(DeliveryItem.subscriber_id == subscriber.id, DeliveryItem.paper_id == Paper.id)
    rated = exists().where(Feedback.subscriber_id == subscriber.id, Feedback.paper_id == Paper.id)
    fresh = (Paper.first_seen_at >= since, ~sent, ~rated)
    patterns = [phrase_pattern(w) for w in subscriber.excluded_keywords or [] if w.strip()]
    if not patterns:
        return list(session.scalars(select(Paper.id).where(*fresh).order_by(Paper.id)))
    rows = session.execute(select(Paper.id, Paper.title, Paper.abstract).where(*fresh).order_by(Paper.id))
    return [r.id for r in rows if not any(p.search(paper_text(r.title, r.abstract)) for p in patterns)]


def diverse_top(
    own: sp.csr_matrix,
    scores: np.ndarray,
    k: int,
    *,
    floor: float,
    eligible: np.ndarray | None = None,
) -> list[int]:
    """Indices of the best scores, skipping near-copies of a pick already made: by the papers' ``own``
    rows (``Corpus.own``), not by what a short paper borrowed from its neighbours.

    ``eligible`` (``Profile.evidence``) marks the papers that share at least one feature with what the
    subscriber asked for or liked; the others have no true "why" and are never picked. Scores themselves
    may be negative (the 👎 and corpus-mean parts subtract), which says nothing against a paper on a day
    when every paper is below zero, so ``floor`` (``DIGEST_MIN_SCORE``) only applies when it is above 0.
    """
    chosen: list[int] = []
    for i in np.argsort(-scores, kind="stable"):
        if len(chosen) == k or (floor > 0 and scores[i] < floor):
            break
        if eligible is not None and not eligible[i]:
            continue
        if chosen and sparse_dot(own[chosen], own[i]).max() > MAX_SIMILARITY:
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
