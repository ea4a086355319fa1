"""The delivery service: pick → render → claim → send → record, for one subscriber and one digest date.

This is the single place a :class:`TransportError` is caught.

**The ledger.** ``deliveries`` holds one row per (subscriber, digest date), unique in the database;
``delivery_items`` one row per paper sent, unique per (subscriber, paper), so no paper is ever sent to
the same subscriber twice (the ranker also skips them). An empty digest is not sent: its row says
``skipped_empty`` with the reason, and that day is done.

**Claim first, then send: at most once.** Before any transport is called, one transaction inserts the
``Delivery`` row with status ``sending`` together with its items. Only then is the message handed to
SMTP / Slack / the outbox, and a second transaction marks the row ``sent``. So:

* a second run for the same day (another process, a retry of the scheduler's lease, ``digest send``
  again) finds the row and does nothing (``already_sent``); two racing processes cannot both insert it;
* if the process dies between the claim and the ``sent`` mark (SMTP server already has the mail, or
  Slack already posted — Slack's ``chat.postMessage`` has no idempotency key to make a resend safe),
  the row stays ``sending``. It is **never resent automatically**: a lost digest is better than a
  duplicate, and its papers stay recorded, so they are not offered again. ``digest send`` reports such
  rows as ``already_sent`` with the reason "claimed … never confirmed", and ``stuck_claims()`` lists
  them for an operator, who can delete the row to let the day be sent again;
* an exception other than TransportError escaping a transport (a bug, a timeout of unknown outcome) is
  treated the same way: the claim stays.

**Errors.** A :class:`TransportError` means "certainly not delivered": the row becomes ``failed`` with
the error, its items are released (those papers may be picked again), and:

* transient (network, 4xx/5xx of a server, Slack rate limit after retries): retried with exponential
  backoff — the outcome carries ``retry_at`` and the subscriber's ``next_send_at`` is pulled forward to
  it, so the dispatch loop comes back for the same digest date; after ``MAX_ATTEMPTS`` it gives up;
* permanent (address refused with 5xx, channel gone): not retried that day; the subscriber's
  ``failure_count`` goes up, and after ``DIGEST_MAX_FAILURES`` permanent failures in a row the
  subscription is ``disabled`` (a success resets the count).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from digest.config import Settings
from digest.db import Database
from digest.deliver.base import Outgoing, Transport, TransportError
from digest.deliver.mime import email_message, unsubscribe_headers
from digest.deliver.outbox import OutboxTransport
from digest.models import Delivery, DeliveryItem, Subscriber, utcnow
from digest.render import EmailContent, digest_context, make_message, slack_message
from digest.schedule import digest_date_for
from digest.signing import links_for

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
BACKOFF_FIRST = dt.timedelta(minutes=5)
BACKOFF_MAX = dt.timedelta(hours=2)
STATUSES = ("sent", "skipped_empty", "failed", "already_sent", "dry_run")


@dataclasses.dataclass
class DeliveryOutcome:
    subscriber_id: int
    digest_date: dt.date
    status: str  # sent | skipped_empty | failed | already_sent | dry_run
    reason: str | None = None
    paper_ids: list[int] = dataclasses.field(default_factory=list)
    receipt: str | None = None  # Message-ID, Slack ts, or outbox file
    retry_at: dt.datetime | None = None  # transient failure: when to try this digest date again

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class RenderedDigest:
    """A digest ready to send: picks, the template context, and the message for the subscriber's channel."""

    subscriber_id: int
    channel: str
    paper_ids: list[int]
    picks: list[Any]
    context: dict[str, Any]
    email: EmailContent
    slack: dict[str, Any]
    message: Outgoing


# --- transports -----------------------------------------------------------------------------------------


def mail_transport(settings: Settings) -> Transport:
    """SMTP when DIGEST_SMTP_HOST is set, else the file outbox (the embedded default)."""
    if settings.uses_smtp:
        from digest.deliver.smtp import SmtpTransport

        return SmtpTransport(settings)
    return OutboxTransport(settings.outbox)


class Transports:
    """The transports of one batch, created on first use: one SMTP connection serves the whole batch."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._open: dict[str, Transport] = {}

    def use(self, channel: str, transport: Transport) -> None:
        """Serve ``channel`` with this transport (a relay of your own, or a test's)."""
        self._open[channel] = transport

    def for_channel(self, channel: str) -> Transport:
        if channel not in self._open:
            self._open[channel] = self._make(channel)
        return self._open[channel]

    def _make(self, channel: str) -> Transport:
        from digest.deliver.slack import SlackBotTransport, SlackWebhookTransport

        if channel == "email":
            return mail_transport(self.settings)
        if channel == "slack_webhook":
            return SlackWebhookTransport()
        if channel == "slack_bot" and self.settings.slack_bot_token:
            return SlackBotTransport(self.settings)
        return OutboxTransport(self.settings.outbox)

    def close(self) -> None:
        for transport in self._open.values():
            transport.close()
        self._open.clear()


def send_email(
    settings: Settings, to: str, content: EmailContent, headers: dict[str, str] | None = None
) -> str:
    """Send one email (e.g. the sign-up confirmation) by SMTP or to the outbox; return its receipt.

    Raises TransportError (``.permanent`` says whether retrying can help).
    """
    message = Outgoing("email", to, email=email_message(settings, to, content, headers), label="email")
    with mail_transport(settings) as transport:
        return transport.send(message)


# --- rendering a subscriber's digest --------------------------------------------------------------------


def render_digest(
    session: Session, settings: Settings, subscriber: Subscriber, digest_date: dt.date, now: dt.datetime
) -> RenderedDigest:
    """Pick and render (no ledger writes): what ``send_digest`` would send, and what ``preview`` shows."""
    from digest.rank import pick_digest  # rank loads numpy/scipy; keep `digest --help` fast

    picks = pick_digest(session, settings, subscriber, now=now, k=subscriber.digest_size)
    context = digest_context(subscriber, picks, links_for(settings), digest_date)
    content = make_message("digest", context)
    slack = slack_message(context)
    return RenderedDigest(
        subscriber_id=subscriber.id,
        channel=subscriber.channel,
        paper_ids=[pick.paper.id for pick in picks],
        picks=list(picks),
        context=context,
        email=content,
        slack=slack,
        message=_outgoing(settings, subscriber, content, slack, context, now),
    )


def _outgoing(
    settings: Settings,
    subscriber: Subscriber,
    content: EmailContent,
    slack: dict[str, Any],
    context: dict[str, Any],
    now: dt.datetime,
) -> Outgoing:
    label = f"digest-{subscriber.id}-{context['digest_date']}"
    if subscriber.channel == "email":
        headers = unsubscribe_headers(context["unsubscribe_url"])
        mail = email_message(settings, subscriber.email or "", content, headers, now=now)
        return Outgoing("email", subscriber.email or "", email=mail, label=label)
    destination = (
        subscriber.slack_webhook_url if subscriber.channel == "slack_webhook" else subscriber.slack_channel
    )
    return Outgoing(subscriber.channel, destination or "", slack=slack, label=label)


# --- sending one digest ---------------------------------------------------------------------------------


def send_digest(
    db: Database,
    settings: Settings,
    subscriber_id: int,
    digest_date: dt.date,
    *,
    now: dt.datetime | None = None,
    dry_run: bool = False,
    transports: Transports | None = None,
) -> DeliveryOutcome:
    """Send ``subscriber_id``'s digest for ``digest_date`` at most once; see the module docstring."""
    now = now or utcnow()
    own = transports is None
    transports = transports or Transports(settings)
    try:
        return _send(db, settings, subscriber_id, digest_date, now, dry_run, transports)
    finally:
        if own:
            transports.close()


def _send(
    db: Database,
    settings: Settings,
    subscriber_id: int,
    digest_date: dt.date,
    now: dt.datetime,
    dry_run: bool,
    transports: Transports,
) -> DeliveryOutcome:
    outcome = DeliveryOutcome(subscriber_id, digest_date, "failed")
    with db.session() as session:
        subscriber = session.get(Subscriber, subscriber_id)
        settled = _settled(session, subscriber, outcome)
        if settled is not None:
            return settled
        assert subscriber is not None
        rendered = render_digest(session, settings, subscriber, digest_date, now)
    outcome.paper_ids = rendered.paper_ids
    if dry_run:
        return dataclasses.replace(outcome, status="dry_run")
    if not rendered.paper_ids:
        return _record_empty(db, settings, subscriber_id, outcome, now)
    if not _claim(db, rendered, outcome, now):
        return dataclasses.replace(outcome, status="already_sent", reason="another process claimed it first")
    try:
        receipt = transports.for_channel(rendered.channel).send(rendered.message)
    except TransportError as exc:
        return _record_failure(db, settings, outcome, exc, now)
    except Exception as exc:
        _note_unknown(db, outcome, exc)
        raise
    return _record_sent(db, outcome, receipt, now)


def _note_unknown(db: Database, outcome: DeliveryOutcome, exc: Exception) -> None:
    """Not a TransportError: it may have gone out. The claim stays ``sending`` (at most once), with a note."""
    with db.session() as session:
        row = _ledger_row(session, outcome.subscriber_id, outcome.digest_date)
        if row is not None:
            row.reason = f"outcome unknown: {exc!r}"[:1000]


def _settled(
    session: Session, subscriber: Subscriber | None, outcome: DeliveryOutcome
) -> DeliveryOutcome | None:
    """An outcome when nothing is to be sent: unknown or inactive subscriber, or the day already settled."""
    if subscriber is None:
        return dataclasses.replace(outcome, reason="no such subscriber")
    if subscriber.status != "active":
        return dataclasses.replace(outcome, reason=f"subscription is {subscriber.status}, not active")
    row = _ledger_row(session, subscriber.id, outcome.digest_date)
    if row is None or (row.status == "failed" and row.attempts < MAX_ATTEMPTS):
        return None
    paper_ids = [item.paper_id for item in row.items]
    if row.status == "failed":
        reason = f"gave up after {row.attempts} attempts: {row.reason}"
        return dataclasses.replace(outcome, reason=reason)
    if row.status == "sending":
        reason = f"claimed at {row.created_at:%Y-%m-%d %H:%M} UTC, never confirmed (stopped mid-send?)"
        return dataclasses.replace(outcome, status="already_sent", reason=reason, paper_ids=paper_ids)
    reason = row.status if row.status != "skipped_empty" else f"skipped_empty: {row.reason}"
    return dataclasses.replace(outcome, status="already_sent", reason=reason, paper_ids=paper_ids)


def _ledger_row(session: Session, subscriber_id: int, digest_date: dt.date) -> Delivery | None:
    return session.scalar(
        select(Delivery).where(Delivery.subscriber_id == subscriber_id, Delivery.digest_date == digest_date)
    )


def _record_empty(
    db: Database, settings: Settings, subscriber_id: int, outcome: DeliveryOutcome, now: dt.datetime
) -> DeliveryOutcome:
    reason = f"no new paper for your keywords in the last {settings.recency_days} days"
    try:
        with db.session() as session:
            channel = session.get(Subscriber, subscriber_id).channel  # type: ignore[union-attr]
            row = _ledger_row(session, subscriber_id, outcome.digest_date)
            if row is None:
                row = Delivery(subscriber_id=subscriber_id, digest_date=outcome.digest_date, created_at=now)
                session.add(row)
            row.channel, row.status, row.reason, row.sent_at = channel, "skipped_empty", reason, None
    except IntegrityError:
        return dataclasses.replace(outcome, status="already_sent", reason="another process settled it first")
    return dataclasses.replace(outcome, status="skipped_empty", reason=reason)


def _claim(db: Database, rendered: RenderedDigest, outcome: DeliveryOutcome, now: dt.datetime) -> bool:
    """Insert (or take back a failed) ledger row as ``sending``, with its items, in one transaction."""
    try:
        with db.session() as session:
            row = _ledger_row(session, rendered.subscriber_id, outcome.digest_date)
            if row is None:
                row = Delivery(
                    subscriber_id=rendered.subscriber_id, digest_date=outcome.digest_date, attempts=0
                )
                session.add(row)
            elif not _take_back(session, row):
                return False
            row.channel, row.status, row.reason, row.created_at = rendered.channel, "sending", None, now
            row.attempts = (row.attempts or 0) + 1
            session.flush()
            session.add_all(_items(row.id, rendered))
    except IntegrityError:
        return False
    return True


def _take_back(session: Session, row: Delivery) -> bool:
    # Conditional UPDATE: of two processes retrying the same failed row, exactly one wins.
    won = session.execute(
        update(Delivery)
        .where(Delivery.id == row.id, Delivery.status == "failed")
        .values(status="sending")
        .execution_options(synchronize_session=False)
    ).rowcount
    return won == 1


def _items(delivery_id: int, rendered: RenderedDigest) -> list[DeliveryItem]:
    return [
        DeliveryItem(
            delivery_id=delivery_id,
            subscriber_id=rendered.subscriber_id,
            paper_id=pick.paper.id,
            position=position,
            score=float(pick.score),
            why=pick.why,
        )
        for position, pick in enumerate(rendered.picks)
    ]


def _record_sent(db: Database, outcome: DeliveryOutcome, receipt: str, now: dt.datetime) -> DeliveryOutcome:
    with db.session() as session:
        row = _ledger_row(session, outcome.subscriber_id, outcome.digest_date)
        assert row is not None
        row.status, row.sent_at, row.message_id, row.reason = "sent", now, receipt[:255], None
        subscriber = session.get(Subscriber, outcome.subscriber_id)
        if subscriber is not None:
            subscriber.failure_count, subscriber.last_error = 0, None
    return dataclasses.replace(outcome, status="sent", receipt=receipt)


def _record_failure(
    db: Database, settings: Settings, outcome: DeliveryOutcome, exc: TransportError, now: dt.datetime
) -> DeliveryOutcome:
    kind = "permanent" if exc.permanent else "transient"
    reason = f"{kind}: {exc.message}"
    log.warning("delivery to subscriber %s failed (%s)", outcome.subscriber_id, reason)
    with db.session() as session:
        row = _ledger_row(session, outcome.subscriber_id, outcome.digest_date)
        assert row is not None
        row.status, row.reason = "failed", reason
        # Not delivered, so these papers were not sent: release them for a retry or a later digest.
        session.execute(delete(DeliveryItem).where(DeliveryItem.delivery_id == row.id))
        subscriber = session.get(Subscriber, outcome.subscriber_id)
        assert subscriber is not None
        retry_at = _after_failure(settings, subscriber, row.attempts, exc, reason, now)
    return dataclasses.replace(outcome, reason=reason, retry_at=retry_at)


def _after_failure(
    settings: Settings,
    subscriber: Subscriber,
    attempts: int,
    exc: TransportError,
    reason: str,
    now: dt.datetime,
) -> dt.datetime | None:
    """Count a permanent failure (disabling the channel after too many); schedule a transient one's retry."""
    subscriber.last_error = reason
    if exc.permanent:
        subscriber.failure_count = (subscriber.failure_count or 0) + 1
        if subscriber.failure_count >= settings.max_failures:
            subscriber.status, subscriber.next_send_at = "disabled", None
            log.warning(
                "subscriber %s disabled after %s permanent failures", subscriber.id, subscriber.failure_count
            )
        return None
    if attempts >= MAX_ATTEMPTS:
        return None
    retry_at = now + min(BACKOFF_FIRST * 2 ** (attempts - 1), BACKOFF_MAX)
    # Pull the schedule forward so the dispatch loop comes back for this digest date (it keeps a
    # next_send_at that was moved while it held the lease).
    upcoming = subscriber.next_send_at
    if upcoming is None or upcoming <= now or retry_at < upcoming:
        subscriber.next_send_at = retry_at
    return retry_at


# --- batches and reports --------------------------------------------------------------------------------


@dataclasses.dataclass
class BatchReport:
    outcomes: list[DeliveryOutcome] = dataclasses.field(default_factory=list)

    def counts(self) -> dict[str, int]:
        counter = Counter(outcome.status for outcome in self.outcomes)
        return {status: counter.get(status, 0) for status in STATUSES}


def send_many(
    db: Database,
    settings: Settings,
    subscriber_ids: Iterable[int],
    *,
    digest_date: dt.date | None = None,
    now: dt.datetime | None = None,
    dry_run: bool = False,
) -> BatchReport:
    """Send each subscriber's digest over shared transports; one subscriber's error never stops the batch.

    Without ``digest_date`` each subscriber gets the digest of their own local date at ``now``.
    """
    now = now or utcnow()
    report = BatchReport()
    transports = Transports(settings)
    try:
        for subscriber_id in subscriber_ids:
            day = digest_date or local_date(db, subscriber_id, now)
            try:
                outcome = send_digest(
                    db, settings, subscriber_id, day, now=now, dry_run=dry_run, transports=transports
                )
            except Exception as exc:  # a bug or an unknown-outcome error: this subscriber's alone
                log.exception("sending to subscriber %s failed", subscriber_id)
                outcome = DeliveryOutcome(subscriber_id, day, "failed", reason=f"error: {exc!r}")
            report.outcomes.append(outcome)
    finally:
        transports.close()
    return report


def local_date(db: Database, subscriber_id: int, now: dt.datetime) -> dt.date:
    """The subscriber's own calendar date at ``now`` (UTC date for an unknown subscriber)."""
    with db.session() as session:
        subscriber = session.get(Subscriber, subscriber_id)
        return digest_date_for(subscriber, now) if subscriber is not None else now.date()


def active_subscriber_ids(session: Session) -> list[int]:
    return list(
        session.scalars(select(Subscriber.id).where(Subscriber.status == "active").order_by(Subscriber.id))
    )


def stuck_claims(session: Session) -> list[Delivery]:
    """Ledger rows left ``sending`` (the process stopped between claim and record); never resent by itself."""
    return list(session.scalars(select(Delivery).where(Delivery.status == "sending").order_by(Delivery.id)))


def find_subscriber_ids(session: Session, reference: str | None) -> list[int]:
    """``None``: every active subscriber. Else an id, an email address or a Slack channel id (any status)."""
    if reference is None:
        return active_subscriber_ids(session)
    text = reference.strip()
    if text.isdigit():
        match = select(Subscriber.id).where(Subscriber.id == int(text))
    else:
        match = select(Subscriber.id).where(
            (func.lower(Subscriber.email) == text.lower()) | (Subscriber.slack_channel == text)
        )
    return list(session.scalars(match.order_by(Subscriber.id)))


def write_preview(rendered: RenderedDigest, folder: Path) -> list[Path]:
    """The digest as files to look at (nothing recorded): HTML, text, the .eml and the Slack payload."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"digest-{rendered.subscriber_id}-{rendered.context['digest_date']}"
    files = {
        f"{stem}.html": rendered.email.html,
        f"{stem}.txt": f"Subject: {rendered.email.subject}\n\n{rendered.email.text}",
        f"{stem}.slack.json": json.dumps(rendered.slack, ensure_ascii=False, indent=2),
    }
    paths = []
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
        paths.append(folder / name)
    if rendered.message.email is not None:
        (folder / f"{stem}.eml").write_bytes(rendered.message.email.as_bytes())
        paths.append(folder / f"{stem}.eml")
    return paths


def preview_digest(
    db: Database,
    settings: Settings,
    subscriber_id: int,
    digest_date: dt.date | None = None,
    *,
    now: dt.datetime | None = None,
) -> RenderedDigest:
    """Render a subscriber's digest as it would go out now, whatever their status; nothing is recorded."""
    now = now or utcnow()
    with db.session() as session:
        subscriber = session.get(Subscriber, subscriber_id)
        if subscriber is None:
            raise LookupError(f"no subscriber {subscriber_id}")
        return render_digest(
            session, settings, subscriber, digest_date or digest_date_for(subscriber, now), now
        )
