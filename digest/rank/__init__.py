"""Ranking: the corpus representation, the subscriber model, picking digests, learning from feedback.

Public API (the contract with the other rooms):
``pick_many(session, settings, subscribers, *, now=None, k=None, window=None) -> list[list[Pick]]``,
``pick_digest(...)`` for one subscriber, and
``record_feedback(session, subscriber, paper_id, value, source) -> Feedback``, and
``record_library(session, subscriber, paper_ids, texts)`` for an imported library.
"""

from digest.rank.cache import load_profile
from digest.rank.corpus import Corpus
from digest.rank.feedback import record_feedback, record_library
from digest.rank.library import library_for
from digest.rank.model import LikedText, Profile
from digest.rank.pick import Pick, pick_digest, pick_many

__all__ = [
    "Corpus",
    "LikedText",
    "Pick",
    "Profile",
    "library_for",
    "load_profile",
    "pick_digest",
    "pick_many",
    "record_feedback",
    "record_library",
]
