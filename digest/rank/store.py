"""Where the rank room meets the database: the per-process corpus cache and subscriber model persistence."""

from __future__ import annotations

import threading

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest.models import Feedback, Paper, Subscriber, SubscriberModel, utcnow
from digest.rank.corpus import Corpus, paper_text
from digest.rank.model import Profile

_LOCK = threading.Lock()
_CORPORA: dict[str, Corpus] = {}


def corpus_for(session: Session) -> Corpus:
    """All papers of this database as a corpus, cached per process and refreshed when papers arrive.

    New papers (higher ids) are hashed and appended; a shrunk or reshuffled table is rebuilt from scratch.
    """
    url = session.get_bind().url.render_as_string(hide_password=True)
    count, max_id = session.execute(select(func.count(Paper.id), func.max(Paper.id))).one()
    with _LOCK:
        corpus = _CORPORA.get(url) or Corpus()
        if len(corpus) == count and (not count or corpus.ids[-1] == max_id):
            return corpus
        last = corpus.ids[-1] if len(corpus) else 0
        if len(corpus) > count:
            corpus, last = Corpus(), 0
        _add_papers(session, corpus, after_id=last)
        if len(corpus) != count:  # papers were deleted below the cached range: start again
            corpus = Corpus()
            _add_papers(session, corpus, after_id=0)
        _CORPORA[url] = corpus
        return corpus


def _add_papers(session: Session, corpus: Corpus, after_id: int) -> None:
    rows = session.execute(
        select(Paper.id, Paper.title, Paper.abstract).where(Paper.id > after_id).order_by(Paper.id)
    ).all()
    corpus.extend([r.id for r in rows], [paper_text(r.title, r.abstract) for r in rows])


def load_profile(session: Session, subscriber: Subscriber) -> Profile:
    """The stored model; rebuilt from the feedback history when there is none yet."""
    stored = session.get(SubscriberModel, subscriber.id)
    if stored is not None:
        profile = Profile.from_state(stored.state)
    else:
        profile = Profile(subscriber.keywords, _latest_ratings(session, subscriber.id))
    profile.set_keywords(subscriber.keywords or [])
    return profile


def save_profile(session: Session, subscriber: Subscriber, profile: Profile) -> None:
    stored = session.get(SubscriberModel, subscriber.id)
    if stored is None:
        session.add(SubscriberModel(subscriber_id=subscriber.id, version=1, state=profile.to_state()))
        return
    stored.state = profile.to_state()
    stored.version += 1
    stored.updated_at = utcnow()


def _latest_ratings(session: Session, subscriber_id: int) -> dict[int, int]:
    rows = session.execute(
        select(Feedback.paper_id, Feedback.value)
        .where(Feedback.subscriber_id == subscriber_id)
        .order_by(Feedback.created_at, Feedback.id)
    ).all()
    return {paper_id: value for paper_id, value in rows}


def record_feedback(
    session: Session, subscriber: Subscriber, paper_id: int, value: int, source: str
) -> Feedback:
    """Store one 👍 (+1) / 👎 (-1) event and update the subscriber's model in the same transaction."""
    if value not in (1, -1):
        raise ValueError(f"value: must be +1 or -1, got {value!r}")
    if session.get(Paper, paper_id) is None:
        raise LookupError(f"paper_id: no paper with id {paper_id}")
    profile = load_profile(session, subscriber)
    feedback = Feedback(subscriber_id=subscriber.id, paper_id=paper_id, value=value, source=source)
    session.add(feedback)
    profile.rate(paper_id, value)
    save_profile(session, subscriber, profile)
    session.flush()
    return feedback
