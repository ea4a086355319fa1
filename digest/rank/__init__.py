"""Ranking: the corpus representation, the subscriber model, picking a digest, learning from feedback.

Public API (the contract with the other rooms):
``pick_digest(session, settings, subscriber, *, now=None, k=None) -> list[Pick]`` and
``record_feedback(session, subscriber, paper_id, value, source) -> Feedback``.
"""

from digest.rank.cache import corpus_for, load_profile
from digest.rank.corpus import Corpus
from digest.rank.feedback import record_feedback
from digest.rank.model import Profile
from digest.rank.pick import Pick, pick_digest

__all__ = ["Corpus", "Pick", "Profile", "corpus_for", "load_profile", "pick_digest", "record_feedback"]
