"""A chunk of digests, each sent at most once: read what is settled, pick and render the rest from one
window, claim them in the ledger in one transaction, hand each message to its transport, record the sent
ones in one transaction.

A ``TransportError`` (not sent) or ``OutcomeUnknown`` is caught here, and only here: the ledger records it
(``digest.deliver.ledger``). Any other exception from a transport is a bug whose outcome is unknown: the
claim stays ``sending`` with a note, and the error is that subscriber's alone (``send_digest`` raises it).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import select

from digest.compose import RenderedDigest, compose_picks
from digest.config import Settings
from digest.db import Database
from digest.deliver import ledger
from digest.deliver.base import OutcomeUnknown, TransportError
from digest.deliver.ledger import DeliveryOutcome
from digest.deliver.transports import Transports
from digest.dispatch.leases import reschedule_failed
from digest.models import Outcome, Subscriber, utcnow
from digest.rank import pick_many
from digest.rank.library import Deferred

log = logging.getLogger(__name__)


@dataclass
class Phases:
    """Seconds spent in each phase of a run (the daily-run benchmark reads them)."""

    seconds: Counter[str] = field(default_factory=Counter)

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - started

    def merge(self, other: Phases) -> None:
        self.seconds.update(other.seconds)


@dataclass
class ChunkResult:
    outcomes: list[DeliveryOutcome]
    errors: dict[int, Exception] = field(default_factory=dict)  # subscriber → error of unknown outcome


def send_chunk(
    db: Database,
    settings: Settings,
    work: Sequence[tuple[int, dt.date]],
    *,
    now: dt.datetime,
    transports: Transports,
    dry_run: bool = False,
    phases: Phases | None = None,
) -> ChunkResult:
    """Send each (subscriber, digest date) of ``work`` at most once; outcomes in the order of ``work``."""
    phases = phases or Phases()
    outcomes = {sid: DeliveryOutcome(sid, day, Outcome.FAILED) for sid, day in work}
    deferred = Deferred()  # picking writes nothing: many processes pick at once, then write in turn
    with phases.timed("read"), db.session() as session:
        subscribers = {
            s.id: s for s in session.scalars(select(Subscriber).where(Subscriber.id.in_(outcomes)))
        }
        rows = ledger.ledger_rows(session, list(work))
        todo = []
        for sid, _ in work:
            done = ledger.settled_by(subscribers.get(sid), rows.get(sid), outcomes[sid])
            if done is None:
                todo.append(subscribers[sid])
            else:
                outcomes[sid] = done
        with phases.timed("pick"):
            picks = pick_many(session, settings, todo, now=now, deferred=deferred)
    with phases.timed("ledger"), db.write_session() as session:
        deferred.write(session)
    with phases.timed("render"):
        rendered = compose_picks(settings, todo, picks, [outcomes[s.id].digest_date for s in todo], now)
    result = ChunkResult([])
    if rendered:
        _send_rendered(db, settings, rendered, set(rows), outcomes, now, transports, dry_run, phases, result)
    result.outcomes = [outcomes[sid] for sid, _ in work]
    return result


def _send_rendered(
    db: Database,
    settings: Settings,
    rendered: list[RenderedDigest],
    have_rows: set[int],
    outcomes: dict[int, DeliveryOutcome],
    now: dt.datetime,
    transports: Transports,
    dry_run: bool,
    phases: Phases,
    result: ChunkResult,
) -> None:
    for r in rendered:
        outcomes[r.subscriber_id].paper_ids = r.paper_ids
    if dry_run:
        for r in rendered:
            outcomes[r.subscriber_id] = dataclasses.replace(outcomes[r.subscriber_id], status=Outcome.DRY_RUN)
        return
    with phases.timed("ledger"):
        _record_empty(db, settings, [r for r in rendered if not r.paper_ids], have_rows, outcomes, now)
        won = _claim(db, [r for r in rendered if r.paper_ids], have_rows, outcomes, now)
    sent = _deliver(db, settings, won, outcomes, now, transports, phases, result)
    with phases.timed("ledger"):
        for outcome in ledger.record_sent_many(db, sent, now):
            outcomes[outcome.subscriber_id] = outcome


def _record_empty(
    db: Database,
    settings: Settings,
    empty: list[RenderedDigest],
    have_rows: set[int],
    outcomes: dict[int, DeliveryOutcome],
    now: dt.datetime,
) -> None:
    fresh = [(outcomes[r.subscriber_id], r.channel) for r in empty if r.subscriber_id not in have_rows]
    for outcome in ledger.record_empty_many(db, settings, fresh, now):
        outcomes[outcome.subscriber_id] = outcome
    for r in empty:
        if r.subscriber_id in have_rows:  # a failed attempt of that date: its row becomes the skip
            outcome = ledger.record_empty(db, settings, r.subscriber_id, outcomes[r.subscriber_id], now)
            outcomes[r.subscriber_id] = outcome


def _claim(
    db: Database,
    full: list[RenderedDigest],
    have_rows: set[int],
    outcomes: dict[int, DeliveryOutcome],
    now: dt.datetime,
) -> list[RenderedDigest]:
    """Claim the ledger rows (new ones in one transaction, a failed row taken back on its own); the
    digests whose claim this was."""
    fresh = [
        (outcomes[r.subscriber_id], r.channel, _items(r)) for r in full if r.subscriber_id not in have_rows
    ]
    won = ledger.claim_many(db, fresh, now)
    for r in full:
        if r.subscriber_id in have_rows and ledger.claim(
            db, r.channel, _items(r), outcomes[r.subscriber_id], now
        ):
            won.add(r.subscriber_id)
    for r in full:
        if r.subscriber_id not in won:
            reason = "another process claimed it first"
            outcomes[r.subscriber_id] = dataclasses.replace(
                outcomes[r.subscriber_id], status=Outcome.ALREADY_SENT, reason=reason
            )
    return [r for r in full if r.subscriber_id in won]


def _items(rendered: RenderedDigest) -> list[ledger.Item]:
    return [ledger.Item(pick.paper.id, pick.score, pick.why) for pick in rendered.picks]


def _deliver(
    db: Database,
    settings: Settings,
    claimed: list[RenderedDigest],
    outcomes: dict[int, DeliveryOutcome],
    now: dt.datetime,
    transports: Transports,
    phases: Phases,
    result: ChunkResult,
) -> list[tuple[DeliveryOutcome, str]]:
    """Hand each claimed message to its transport; record what did not certainly go (one at a time: the
    rare case); the sent ones with their receipts."""
    sent = []
    for r in claimed:
        outcome = outcomes[r.subscriber_id]
        try:
            with phases.timed("transport"):
                receipt = transports.for_channel(r.channel).send(r.message)
        except TransportError as exc:
            with db.session() as session:
                outcomes[r.subscriber_id] = ledger.record_failure(session, settings, outcome, exc, now)
                reschedule_failed(session, outcomes[r.subscriber_id], now)
        except OutcomeUnknown as exc:
            outcomes[r.subscriber_id] = ledger.record_unknown(db, outcome, exc)
        except Exception as exc:  # a bug: it may have gone out, so the claim stays
            ledger.note_unknown(db, outcome, exc)
            log.exception("sending to subscriber %s failed", r.subscriber_id)
            outcomes[r.subscriber_id] = dataclasses.replace(outcome, reason=f"error: {exc!r}")
            result.errors[r.subscriber_id] = exc
        else:
            sent.append((outcome, receipt))
    return sent


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
    """Send one subscriber's digest for ``digest_date`` at most once: a chunk of one. An error of unknown
    outcome (not a transport's answer) is raised after the claim was noted."""
    own = transports is None
    transports = transports or Transports(settings)
    try:
        result = send_chunk(
            db,
            settings,
            [(subscriber_id, digest_date)],
            now=now or utcnow(),
            transports=transports,
            dry_run=dry_run,
        )
    finally:
        if own:
            transports.close()
    if subscriber_id in result.errors:
        raise result.errors[subscriber_id]
    return result.outcomes[0]
