"""Picking digests from the database: the day's window (``digest.rank.window``), each subscriber's stored
weights (``digest.rank.cache``), what they may get (recent, never sent, never rated, not excluded), the
picks (``digest.rank.scoring``) and why each was picked (``digest.rank.explain``).

``pick_many`` picks for many subscribers at once: the window is read once, the subscribers' sent and rated
papers in two queries, their weights in one; ``pick_digest`` is the same for one subscriber.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.config import Settings
from digest.models import DeliveryItem, Feedback, Paper, Subscriber, utcnow
from digest.rank.cache import weights_for
from digest.rank.explain import Vectors, Vocabulary, explain
from digest.rank.library import Deferred, LibraryView, library_for
from digest.rank.scoring import Chosen, Request, pick_block
from digest.rank.weights import Weights
from digest.rank.window import Window, build_window


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
    return pick_many(session, settings, [subscriber], now=now, k=k)[0]


def pick_many(
    session: Session,
    settings: Settings,
    subscribers: Sequence[Subscriber],
    *,
    now: dt.datetime | None = None,
    k: int | None = None,
    window: Window | None = None,
    deferred: Deferred | None = None,
) -> list[list[Pick]]:
    """Each subscriber's picks (``k``, else their digest size, else the default), in order. ``deferred``:
    collect the writes picking makes (derived weights, keyword matches) there instead of making them."""
    since = (now or utcnow()) - dt.timedelta(days=settings.recency_days)
    window = window or build_window(session, since)
    view = library_for(session, deferred)
    fresh = window.fresh(np.datetime64(since))
    seen = _seen(session, [s.id for s in subscribers], window)
    weights = weights_for(view, subscribers)
    requests = [
        Request(
            weights[s.id],
            _allowed(window, s, fresh, seen[s.id]),
            k or s.digest_size or settings.default_digest_size,
        )
        for s in subscribers
    ]
    chosen = pick_block(window, requests, settings.min_score)
    return _picks(view, window, subscribers, weights, chosen)


def _seen(session: Session, ids: list[int], window: Window) -> dict[int, set[int]]:
    """Per subscriber, the window's papers they were sent or rated (two queries for the whole chunk)."""
    seen: dict[int, set[int]] = defaultdict(set)
    if not window.ids:
        return seen
    lowest = min(window.ids)  # papers are stored in order, so the window's are the newest ids
    for table in (DeliveryItem, Feedback):
        query = select(table.subscriber_id, table.paper_id).where(
            table.subscriber_id.in_(ids), table.paper_id >= lowest
        )
        for subscriber_id, paper_id in session.execute(query):
            seen[subscriber_id].add(paper_id)
    return seen


def _allowed(window: Window, subscriber: Subscriber, fresh: np.ndarray, seen: set[int]) -> np.ndarray:
    allowed = fresh.copy()
    for paper_id in seen:
        at = window.position.get(paper_id)
        if at is not None:
            allowed[at] = False
    return allowed & ~window.excluded(tuple(w for w in subscriber.excluded_keywords or [] if w.strip()))


def _picks(
    view: LibraryView,
    window: Window,
    subscribers: Sequence[Subscriber],
    weights: dict[int, Weights],
    chosen: list[Chosen],
) -> list[list[Pick]]:
    wanted = {window.ids[i] for found in chosen for i, _ in found.picks}
    papers = {p.id: p for p in view.session.scalars(select(Paper).where(Paper.id.in_(wanted)))}
    titles, texts = _Titles(view.session), _TextRows(view)
    vocabulary = Vocabulary(view.statistics.terms.df, view.statistics.papers)
    picks = []
    for subscriber, found in zip(subscribers, chosen, strict=True):
        w = weights[subscriber.id]
        reasons = _Reasons(view, window, w, titles, texts, vocabulary, found.semantic_scale)
        with window.vectors(w) as vectors:
            picks.append(
                [Pick(papers[window.ids[i]], score, reasons(i, vectors)) for i, score in found.picks]  # type: ignore[index]
            )
    return picks


class _Reasons:
    """One subscriber's why-lines for their picks: the liked papers (and the library's liked texts) they
    compare, their titles, the pick's place in the embedding space."""

    def __init__(
        self,
        view: LibraryView,
        window: Window,
        weights: Weights,
        titles: _Titles,
        texts: _TextRows,
        vocabulary: Vocabulary,
        scale: float,
    ) -> None:
        self.view, self.window, self.weights = view, window, weights
        self.titles, self.texts, self.vocabulary, self.scale = titles, texts, vocabulary, scale

    def __call__(self, i: int, vectors: Vectors) -> str:
        window = self.window
        return explain(
            self.weights,
            window.entries(i),
            window.own_entries(i),
            window.texts[i],
            self.liked_rows,
            self.title_of,
            vectors=vectors,
            meaning=window.meaning(i, self.scale),
            liked_embeddings=self.view.embeddings_of,
            vocabulary=self.vocabulary,
        )

    def title_of(self, liked: Hashable) -> str:
        text = self.weights.liked_text(liked)
        return text[0] if text is not None else self.titles(liked)

    def liked_rows(self, ids: Sequence[Hashable]) -> sp.csr_matrix:
        """The liked papers' rows, and the library's liked texts' among them (weighed like papers)."""
        found = {liked: text[1] for liked in ids if (text := self.weights.liked_text(liked)) is not None}
        if not found:
            return self.view.rows_of(ids)
        papers = [liked for liked in ids if liked not in found]
        rows = dict(zip(papers, self.view.rows_of(papers), strict=True)) if papers else {}
        rows |= dict(zip(found, self.texts(list(found.values())), strict=True))
        return sp.vstack([rows[liked] for liked in ids], format="csr")


class _TextRows:
    """Liked texts weighed once per run: every pick of a subscriber compares the same ones."""

    def __init__(self, view: LibraryView) -> None:
        self.view = view
        self.known: dict[str, sp.csr_matrix] = {}

    def __call__(self, texts: list[str]) -> list[sp.csr_matrix]:
        missing = [text for text in dict.fromkeys(texts) if text not in self.known]
        if missing:
            self.known.update(zip(missing, self.view.encode(missing), strict=True))
        return [self.known[text] for text in texts]


class _Titles:
    """Titles of liked papers, read as needed."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.known: dict[Hashable, str] = {}

    def __call__(self, paper_id: Hashable) -> str:
        if paper_id not in self.known:
            title = self.session.scalar(select(Paper.title).where(Paper.id == paper_id))
            self.known[paper_id] = title if title is not None else str(paper_id)
        return self.known[paper_id]
