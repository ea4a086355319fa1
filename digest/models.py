"""The ORM tables (SQLAlchemy 2 typed mappings). ``migrations/`` holds their Alembic history.

Times are stored as naive UTC datetimes (SQLite keeps no zone); ``utcnow()`` is the one clock.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Date,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Stable constraint names so Alembic migrations work the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


# --- statuses and kinds: stored as their string values (VARCHAR, no database enum type) -----------------


class SubscriberStatus(StrEnum):
    PENDING = "pending"  # a web sign-up awaiting its confirmation click
    ACTIVE = "active"
    PAUSED = "paused"
    UNSUBSCRIBED = "unsubscribed"
    DISABLED = "disabled"  # the channel failed permanently too often


LIVE_STATUSES = (SubscriberStatus.PENDING, SubscriberStatus.ACTIVE, SubscriberStatus.PAUSED)


class Channel(StrEnum):
    EMAIL = "email"
    SLACK_WEBHOOK = "slack_webhook"
    SLACK_BOT = "slack_bot"


class Cadence(StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"


class DeliveryStatus(StrEnum):
    """A ledger row's state."""

    SENDING = "sending"  # claimed; the transport call is in progress (or its outcome is unknown)
    SENT = "sent"
    FAILED = "failed"  # certainly not delivered; retried later (up to the ledger's MAX_ATTEMPTS)
    REFUSED = "refused"  # certainly not delivered, refused for good (5xx, channel gone): not retried
    SKIPPED_EMPTY = "skipped_empty"


class Outcome(StrEnum):
    """What one send attempt reports (``already_sent`` and ``dry_run`` are never stored)."""

    SENT = "sent"
    SKIPPED_EMPTY = "skipped_empty"
    FAILED = "failed"
    UNKNOWN = "unknown"  # handed over, reply lost: the claim stays, listed by `digest deliveries stuck`
    ALREADY_SENT = "already_sent"
    DRY_RUN = "dry_run"


class FileStatus(StrEnum):
    INGESTING = "ingesting"  # written in chunks, not finished: offering the file again finishes it
    INGESTED = "ingested"
    REJECTED = "rejected"
    ALREADY_SEEN = "already_seen"  # reported for a file offered again; never stored


class FeedbackSource(StrEnum):
    WEB = "web"
    SLACK = "slack"
    CLI = "cli"
    EVAL = "eval"
    LIBRARY = "library"  # a paper of the library the subscriber imported (``digest.subscribers.library``)


def _stored(kind: type[StrEnum], length: int = 16) -> Enum:
    """A VARCHAR holding the enum's values, read back as members (no CHECK constraint, no native type)."""
    return Enum(
        kind,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda members: [member.value for member in members],
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON, list[int]: JSON}


class Paper(Base):
    """One paper, whichever files listed it. ``key`` is ``arxiv:<id>`` when known, else ``title:<key>``."""

    __tablename__ = "papers"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(512), unique=True)
    arxiv_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    title_key: Mapped[str] = mapped_column(String(512), unique=True)
    title: Mapped[str] = mapped_column(Text)
    abstract: Mapped[str | None] = mapped_column(Text)
    authors: Mapped[list[str]] = mapped_column(default=list)
    published_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    upvotes: Mapped[int | None] = mapped_column(Integer)
    doi: Mapped[str | None] = mapped_column(String(255), index=True)  # lower case, as ``normalise.doi`` gives
    first_seen_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)

    appearances: Mapped[list[Appearance]] = relationship(back_populates="paper", cascade="all, delete-orphan")

    @property
    def url(self) -> str | None:
        return f"https://huggingface.co/papers/{self.arxiv_id}" if self.arxiv_id else None


class DigestFile(Base):
    """One digest file offered to ingestion, accepted or rejected. Files themselves are never touched."""

    __tablename__ = "digest_files"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(1024))
    path: Mapped[str | None] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    size: Mapped[int] = mapped_column(Integer, default=0)
    format: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[FileStatus] = mapped_column(_stored(FileStatus))
    error: Mapped[str | None] = mapped_column(Text)
    digest_date: Mapped[dt.date | None] = mapped_column(Date)
    papers_total: Mapped[int] = mapped_column(Integer, default=0)
    papers_new: Mapped[int] = mapped_column(Integer, default=0)
    papers_duplicate: Mapped[int] = mapped_column(Integer, default=0)
    ingested_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    claimed_by: Mapped[str | None] = mapped_column(String(255))  # the process ingesting it (digest.owner)

    appearances: Mapped[list[Appearance]] = relationship(back_populates="digest_file")


class Appearance(Base):
    """A paper listed by a digest file (for a date, when the file says one)."""

    __tablename__ = "appearances"
    __table_args__ = (UniqueConstraint("paper_id", "digest_file_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    paper_id: Mapped[int] = mapped_column(ForeignKey("papers.id", ondelete="CASCADE"), index=True)
    digest_file_id: Mapped[int] = mapped_column(ForeignKey("digest_files.id", ondelete="CASCADE"), index=True)
    digest_date: Mapped[dt.date | None] = mapped_column(Date)
    position: Mapped[int] = mapped_column(Integer, default=0)

    paper: Mapped[Paper] = relationship(back_populates="appearances")
    digest_file: Mapped[DigestFile] = relationship(back_populates="appearances")


class Subscriber(Base):
    """A subscription: one channel (email, Slack webhook or Slack bot channel) and its preferences.

    ``next_send_at`` (UTC) is the scheduling state that the dispatch job claims with a conditional UPDATE.
    """

    __tablename__ = "subscribers"

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[Channel] = mapped_column(_stored(Channel))
    email: Mapped[str | None] = mapped_column(String(320), index=True)
    slack_webhook_url: Mapped[str | None] = mapped_column(Text)
    slack_channel: Mapped[str | None] = mapped_column(String(64))
    keywords: Mapped[list[str]] = mapped_column(default=list)
    excluded_keywords: Mapped[list[str]] = mapped_column(default=list)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    send_time: Mapped[str] = mapped_column(String(5), default="08:00")  # HH:MM local
    weekdays: Mapped[str] = mapped_column(String(7), default="0123456")  # Monday=0 … Sunday=6
    cadence: Mapped[Cadence] = mapped_column(_stored(Cadence, 8), default=Cadence.DAILY)
    digest_size: Mapped[int] = mapped_column(Integer, default=10)
    status: Mapped[SubscriberStatus] = mapped_column(
        _stored(SubscriberStatus), default=SubscriberStatus.ACTIVE, index=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    confirmed_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    next_send_at: Mapped[dt.datetime | None] = mapped_column(DateTime, index=True)
    claimed_until: Mapped[dt.datetime | None] = mapped_column(DateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(255))  # the lease holder (digest.owner)
    failure_count: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)

    @property
    def address(self) -> str:
        return self.email or self.slack_channel or "slack-webhook"


class Feedback(Base):
    """One 👍 (+1) or 👎 (-1) event. History is kept; the latest per (subscriber, paper) wins."""

    __tablename__ = "feedback"
    __table_args__ = (Index("ix_feedback_subscriber_paper", "subscriber_id", "paper_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    paper_id: Mapped[int] = mapped_column(ForeignKey("papers.id", ondelete="CASCADE"))
    value: Mapped[int] = mapped_column(SmallInteger)
    source: Mapped[FeedbackSource] = mapped_column(_stored(FeedbackSource), default=FeedbackSource.WEB)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class SubscriberModel(Base):
    """A subscriber's relevance model: its inputs (``state``: keywords and the latest rating per paper) and
    the weights derived from them (``weights``), so a digest scores without deriving anything.

    ``weights`` were derived from model ``weights_version`` under a corpus of ``weights_basis`` papers;
    they are derived again when the state moved on (a click) or the corpus grew past a bound.
    """

    __tablename__ = "subscriber_models"

    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, default=1)
    state: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    weights: Mapped[bytes | None] = mapped_column(LargeBinary)
    weights_version: Mapped[int | None] = mapped_column(Integer)
    weights_basis: Mapped[int | None] = mapped_column(Integer)


class PaperTerms(Base):
    """A paper's hashed term counts, stored once at ingest so nothing ever hashes the history again.

    ``neighbours``: for a short paper (a title alone), the papers whose text it borrows (corpus smoothing).
    """

    __tablename__ = "paper_terms"

    paper_id: Mapped[int] = mapped_column(ForeignKey("papers.id", ondelete="CASCADE"), primary_key=True)
    counts: Mapped[bytes] = mapped_column(LargeBinary)
    neighbours: Mapped[list[int] | None] = mapped_column(JSON)


class PaperEmbedding(Base):
    """A paper's sentence embedding (``digest.rank.encoder``), float16, computed once after ingest by
    ``digest embed`` or the service's embed job; ``model`` names the model, as another's vectors do not
    compare."""

    __tablename__ = "paper_embeddings"

    paper_id: Mapped[int] = mapped_column(ForeignKey("papers.id", ondelete="CASCADE"), primary_key=True)
    model: Mapped[str] = mapped_column(String(64))
    vector: Mapped[bytes] = mapped_column(LargeBinary)


class CorpusState(Base):
    """The corpus statistics, one row, updated as papers arrive: document frequencies, the sum of every
    paper's row (the corpus mean) and of the rows of papers older than the candidate window (the
    background), each an encoded array over the hashed columns. ``version`` counts the changes."""

    __tablename__ = "corpus_state"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=0)
    stamp: Mapped[str] = mapped_column(String(32))  # changes with every write: a rolled-back one shows
    papers: Mapped[int] = mapped_column(Integer, default=0)
    df: Mapped[bytes] = mapped_column(LargeBinary)
    mean_sum: Mapped[bytes] = mapped_column(LargeBinary)
    background_sum: Mapped[bytes] = mapped_column(LargeBinary)
    background_papers: Mapped[int] = mapped_column(Integer, default=0)
    background_until: Mapped[dt.datetime | None] = mapped_column(DateTime)  # papers first seen before it
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class KeywordExpansion(Base):
    """The papers that best match one set of keywords, kept up to date as papers arrive and shared by every
    subscriber with that set (``key``: a hash of the normalised keywords)."""

    __tablename__ = "keyword_expansions"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    keywords: Mapped[list[str]] = mapped_column(default=list)
    papers: Mapped[list[int]] = mapped_column(default=list)
    scanned_to: Mapped[int] = mapped_column(Integer, default=0)
    # The weights of a subscriber with these keywords and no rating, derived under a corpus of
    # ``weights_basis`` papers (``digest.rank.cache.keyword_weights``).
    weights: Mapped[bytes | None] = mapped_column(LargeBinary)
    weights_basis: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class Delivery(Base):
    """The ledger: one row per (subscriber, digest date), whatever happened to it."""

    __tablename__ = "deliveries"
    __table_args__ = (UniqueConstraint("subscriber_id", "digest_date"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"), index=True)
    digest_date: Mapped[dt.date] = mapped_column(Date)
    channel: Mapped[Channel] = mapped_column(_stored(Channel))
    status: Mapped[DeliveryStatus] = mapped_column(_stored(DeliveryStatus))
    reason: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str | None] = mapped_column(String(255))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(255))  # the process that claimed it (digest.owner)

    items: Mapped[list[DeliveryItem]] = relationship(
        back_populates="delivery", cascade="all, delete-orphan", order_by="DeliveryItem.position"
    )


class DeliveryItem(Base):
    """A paper listed in a delivery. Unique per (subscriber, paper): no paper is ever sent twice."""

    __tablename__ = "delivery_items"
    __table_args__ = (UniqueConstraint("subscriber_id", "paper_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"), index=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    paper_id: Mapped[int] = mapped_column(ForeignKey("papers.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float, default=0.0)
    why: Mapped[str] = mapped_column(Text, default="")

    delivery: Mapped[Delivery] = relationship(back_populates="items")


class SlackClick(Base):
    """A Slack button click already recorded, so a replayed request (same click) is recorded once.

    Slack signs each request with a timestamp and refuses nothing itself: a captured request stays valid
    for the 5-minute window. Rows older than that window are deleted as new clicks arrive."""

    __tablename__ = "slack_clicks"
    __table_args__ = (UniqueConstraint("action_ts", "user_id", "message_ts"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    action_ts: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(64))
    message_ts: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
