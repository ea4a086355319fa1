"""Subscriber models between uses: each one's state and derived weights stored (``SubscriberModel``), and the
profiles this process derived kept for the next click (``load_profile`` / ``save_profile``).

A digest reads the stored weights (``weights_for``) and derives nothing, unless they are stale: the state
moved on since (a vote stored without deriving, new keywords) or the corpus grew past
``rated.IDF_DRIFT`` since they were derived; then they are derived again and stored. Subscribers who
never rated anything share one set of weights per keyword list.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from cachetools import LRUCache
from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.models import Feedback, Subscriber, SubscriberModel, utcnow
from digest.rank import store
from digest.rank.library import Deferred, LibraryView
from digest.rank.model import Profile
from digest.rank.rated import IDF_DRIFT
from digest.rank.semantic import model_id
from digest.rank.weights import Weights

_LOCK = threading.Lock()
# Derived subscriber models of this process, by (database, subscriber): the stored state they match and
# the profile, whose rated rows stay ready for the next click. A state written elsewhere (another
# process, a rolled-back transaction) no longer matches and is loaded again. Bounded, as a profile holds
# its rated rows and the classifier's dot products (a few MB at hundreds of ratings).
PROFILE_CACHE_SIZE = 64
_PROFILES: LRUCache[tuple[str, int], tuple[bytes, Profile]] = LRUCache(maxsize=PROFILE_CACHE_SIZE)


def _url(session: Session) -> str:
    return session.get_bind().url.render_as_string(hide_password=True)


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
    keywords = _keywords(subscriber)
    if keywords != profile.keywords:
        profile = profile.copy()
        profile.set_keywords(keywords)
    return profile


def _keywords(subscriber: Subscriber) -> list[str]:
    return [k.strip() for k in subscriber.keywords or [] if k.strip()]


def _remember(key: tuple[str, int], state: bytes, profile: Profile) -> None:
    with _LOCK:
        _PROFILES[key] = (state, profile)


def save_profile(session: Session, subscriber: Subscriber, profile: Profile) -> None:
    """Store the profile's state as the subscriber's model, and keep the profile for this process."""
    save_profile_to(session, subscriber, profile, session.get(SubscriberModel, subscriber.id))


def save_profile_to(
    session: Session,
    subscriber: Subscriber,
    profile: Profile,
    stored: SubscriberModel | None,
    weights: tuple[Weights, int] | None = None,
) -> None:
    """``save_profile`` into the subscriber's stored model (``None``: there is none yet), already read; with
    the ``weights`` derived from this very state (and the corpus size they were derived under), if any."""
    state = profile.to_state()
    if stored is None:
        stored = SubscriberModel(subscriber_id=subscriber.id, version=1, state=state)
        session.add(stored)
    else:
        stored.state = state
        stored.version += 1
        stored.updated_at = utcnow()
    if weights is not None:
        stored.weights, stored.weights_version, stored.weights_basis = (
            weights[0].to_bytes(),
            stored.version,
            weights[1],
        )
    _remember((_url(session), subscriber.id), state, profile)


def _latest_ratings(session: Session, subscriber_id: int) -> dict[int, int]:
    rows = session.execute(
        select(Feedback.paper_id, Feedback.value)
        .where(Feedback.subscriber_id == subscriber_id)
        .order_by(Feedback.created_at, Feedback.id)
    ).all()
    return {paper_id: value for paper_id, value in rows}


# --- the weights a digest uses ------------------------------------------------------------------------


def weights_for(view: LibraryView, subscribers: Sequence[Subscriber]) -> dict[int, Weights]:
    """Each subscriber's weights: stored ones when current, derived (and stored) otherwise."""
    session = view.session
    ids = [s.id for s in subscribers]
    query = select(SubscriberModel).where(SubscriberModel.subscriber_id.in_(ids))
    stored = {m.subscriber_id: m for m in session.scalars(query)}
    rated = set(
        session.scalars(select(Feedback.subscriber_id).where(Feedback.subscriber_id.in_(ids)).distinct())
    )
    found: dict[int, Weights] = {}
    for subscriber in subscribers:
        model = stored.get(subscriber.id)
        if model is None and subscriber.id not in rated:
            found[subscriber.id] = keyword_weights(view, _keywords(subscriber))
            continue
        current = _current(view, subscriber, model)
        found[subscriber.id] = current if current is not None else _derive(view, subscriber, model)
    return found


def keyword_weights(view: LibraryView, keywords: list[str]) -> Weights:
    """The weights of a subscriber who rated nothing: shared by every subscriber with these keywords, and
    derived again only when the corpus grew past ``IDF_DRIFT`` since (as a rated model's are)."""
    key = ("keyword weights", tuple(keywords))
    cached = view.lasting.get(key) or _stored_keyword_weights(view, tuple(keywords))
    if isinstance(cached, tuple) and len(view) <= cached[1] * (1 + IDF_DRIFT):
        view.lasting[key] = cached
        return cached[0]
    weights = Weights.of(Profile(keywords).parts(view), keywords)
    view.lasting[key] = (weights, len(view))
    if view.deferred is not None:
        view.deferred.keyword_weights[tuple(keywords)] = (weights.to_bytes(), len(view))
    else:
        store.store_keyword_weights(view.session, tuple(keywords), weights.to_bytes(), len(view))
    return weights


def _stored_keyword_weights(view: LibraryView, keywords: tuple[str, ...]) -> tuple[Weights, int] | None:
    found = store.stored_keyword_weights(view.session, keywords)
    return None if found is None else (Weights.from_bytes(found[0]), found[1])


def _current(view: LibraryView, subscriber: Subscriber, model: SubscriberModel | None) -> Weights | None:
    """The stored weights, if derived from the stored state, for these keywords, under about this IDF."""
    if model is None or model.weights is None or model.weights_version != model.version:
        return None
    if len(view) > (model.weights_basis or 0) * (1 + IDF_DRIFT):
        return None
    try:
        weights = Weights.from_bytes(bytes(model.weights))
    except ValueError:  # stored by an earlier version (before the semantic part): derived again
        return None
    if weights.model != model_id():  # the `semantic` extra installed or removed since
        return None
    return weights if list(weights.terms) == _keywords(subscriber) else None


def _derive(view: LibraryView, subscriber: Subscriber, model: SubscriberModel | None) -> Weights:
    """Weights derived from the subscriber's model (kept by this process for its next click) and stored
    when there is a stored model to keep them beside."""
    profile = profile_from(view.session, subscriber, model)
    weights = Weights.of(profile.parts(view), profile.keywords)
    if model is not None:
        # Only beside the state they come from: a vote stored meanwhile makes them stale anyway.
        row = {"sid": subscriber.id, "seen": model.version, "blob": weights.to_bytes(), "basis": len(view)}
        if view.deferred is not None:
            view.deferred.weights.append(row)
        else:
            Deferred(weights=[row]).write(view.session)
    return weights
