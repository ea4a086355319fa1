"""What each process keeps between requests: the corpus of every paper, and subscribers' derived models
checked against their stored state (``load_profile`` / ``save_profile``)."""

from __future__ import annotations

import datetime as dt
import threading

from cachetools import LRUCache
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest.models import Feedback, Paper, Subscriber, SubscriberModel, utcnow
from digest.rank.corpus import DAY, Corpus, paper_text
from digest.rank.model import Profile

_LOCK = threading.Lock()
_CORPORA: dict[str, Corpus] = {}
# Derived subscriber models of this process, by (database, subscriber): the stored state they match and
# the profile, whose parts stay derived for the current corpus. A click updates the cached parts instead
# of re-deriving them; a state written elsewhere (another process, a rolled-back transaction) no longer
# matches and is loaded again. Bounded, as a profile holds its rated rows and the classifier's dot
# products (a few MB at hundreds of ratings).
PROFILE_CACHE_SIZE = 64
_PROFILES: LRUCache[tuple[str, int], tuple[bytes, Profile]] = LRUCache(maxsize=PROFILE_CACHE_SIZE)


def corpus_for(session: Session, recency_days: float | None = None) -> Corpus:
    """All papers of this database as a corpus, cached per process and refreshed when papers arrive.

    New papers (higher ids) are hashed and appended; a shrunk or reshuffled table is rebuilt from scratch.
    ``recency_days`` (the digest's candidate window) makes papers first seen that long before the newest
    the classifiers' background (``Corpus.background_mean``): no paper that is still a candidate is in it.
    """
    url = _url(session)
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
        if recency_days is not None:
            corpus.set_background_age(float(recency_days))
        _CORPORA[url] = corpus
        return corpus


def _url(session: Session) -> str:
    return session.get_bind().url.render_as_string(hide_password=True)


def _add_papers(session: Session, corpus: Corpus, after_id: int) -> None:
    rows = session.execute(
        select(Paper.id, Paper.title, Paper.abstract, Paper.first_seen_at)
        .where(Paper.id > after_id)
        .order_by(Paper.id)
    ).all()
    seen = [_days(r.first_seen_at) for r in rows]
    corpus.extend([r.id for r in rows], [paper_text(r.title, r.abstract) for r in rows], seen)


def _days(moment: dt.datetime) -> float:
    """A stored (naive UTC) time as days since the epoch, the scale ``Corpus.extend`` is given."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    return aware.timestamp() / DAY


def load_profile(session: Session, subscriber: Subscriber) -> Profile:
    """The stored model; rebuilt from the feedback history when there is none yet.

    The profile may be shared with other callers of this process (its derived parts are cached): read
    it, or ``copy()`` it before rating.
    """
    return profile_from(session, subscriber, session.get(SubscriberModel, subscriber.id))


def profile_from(session: Session, subscriber: Subscriber, stored: SubscriberModel | None) -> Profile:
    """``load_profile`` from the subscriber's stored model (``None``: there is none yet), already read."""
    key = (_url(session), subscriber.id)
    profile = None
    if stored is not None:
        state = bytes(stored.state)
        with _LOCK:
            cached = _PROFILES.get(key)
            if cached is not None and cached[0] == state:  # the state must match the stored bytes
                profile = cached[1]
        if profile is None:
            profile = Profile.from_state(state)
            _remember(key, state, profile)
    else:
        profile = Profile(subscriber.keywords, _latest_ratings(session, subscriber.id))
    keywords = [k.strip() for k in subscriber.keywords or [] if k.strip()]
    if keywords != profile.keywords:
        profile = profile.copy()
        profile.set_keywords(keywords)
    return profile


def _remember(key: tuple[str, int], state: bytes, profile: Profile) -> None:
    with _LOCK:
        _PROFILES[key] = (state, profile)


def save_profile(session: Session, subscriber: Subscriber, profile: Profile) -> None:
    """Store the profile's state as the subscriber's model, and keep the profile for this process."""
    save_profile_to(session, subscriber, profile, session.get(SubscriberModel, subscriber.id))


def save_profile_to(
    session: Session, subscriber: Subscriber, profile: Profile, stored: SubscriberModel | None
) -> None:
    """``save_profile`` into the subscriber's stored model (``None``: there is none yet), already read."""
    state = profile.to_state()
    if stored is None:
        session.add(SubscriberModel(subscriber_id=subscriber.id, version=1, state=state))
    else:
        stored.state = state
        stored.version += 1
        stored.updated_at = utcnow()
    _remember((_url(session), subscriber.id), state, profile)


def _latest_ratings(session: Session, subscriber_id: int) -> dict[int, int]:
    rows = session.execute(
        select(Feedback.paper_id, Feedback.value)
        .where(Feedback.subscriber_id == subscriber_id)
        .order_by(Feedback.created_at, Feedback.id)
    ).all()
    return {paper_id: value for paper_id, value in rows}


def cached_corpus(session: Session) -> Corpus | None:
    """This process' corpus of the session's database as it is, without looking for new papers (None
    before ``corpus_for`` built one)."""
    return _CORPORA.get(_url(session))
