"""The periodic jobs of ``digest serve``, wired to APScheduler: inbox, dispatch, maintenance, pulls
(Hugging Face, arXiv), and (with the ``semantic`` extra) the embedding of new papers, a step of its own so
ingest stays fast.

APScheduler runs only these few jobs, in memory, in each ``digest serve`` process; per-subscriber
scheduling state lives in the database (``digest.dispatch`` says why). A run that fails for an
operational reason (database down, disk full, broker gone) logs one line and the next run simply tries
again, so the service recovers by itself; only a bug logs its traceback.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable

from apscheduler.schedulers.background import BackgroundScheduler

from digest.config import Settings
from digest.db import Database
from digest.dispatch import Dispatcher, Queue
from digest.errors import explain
from digest.ingest.arxiv_pull import ArxivPull
from digest.ingest.hf_daily import HfDailyPull
from digest.ingest.inbox import InboxWatcher
from digest.models import utcnow
from digest.rank import encoder
from digest.rank.embeddings import embed_pending
from digest.subscribers import purge_unconfirmed, schedule_unscheduled

log = logging.getLogger(__name__)
EMBED_PER_RUN = 1_024  # papers one run of the embed job embeds at most (a day's are a few hundred)


def maintenance(db: Database, settings: Settings, *, now: dt.datetime | None = None) -> None:
    """Hourly: schedule rows that lack a send time; erase sign-ups whose confirmation link expired."""
    with db.session() as session:
        scheduled = schedule_unscheduled(session, now=now)
    with db.session() as session:
        purged = purge_unconfirmed(session, dt.timedelta(days=settings.token_max_age_days), now=now)
    if scheduled or purged:
        log.info("maintenance: %d scheduled, %d unconfirmed sign-ups erased", scheduled, purged)


def embed_new_papers(
    db: Database,
    settings: Settings,
    *,
    now: dt.datetime | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Embed the candidates (papers first seen within ``recency_days``) that have no embedding yet, newest
    first; until then they rank on TF-IDF alone. Older papers are left to ``digest embed``: a run never
    walks the history. ``stop`` ends the run after the chunk in progress (a shutdown waits seconds, not
    the whole run)."""
    model = encoder.encoder()
    since = (now or utcnow()) - dt.timedelta(days=settings.recency_days)
    done = 0
    if model is not None:
        done = embed_pending(db, model, limit=EMBED_PER_RUN, since=since, stop=stop)
    if done:
        log.info("embed: %d papers embedded", done)


def _queue(settings: Settings) -> Queue | None:
    """With a broker configured, due digests go to Celery workers (``digest worker``) instead."""
    if not settings.celery_broker_url:
        return None
    # Imported only when a broker is configured: Celery is an optional extra (`pip install '.[workers]'`).
    from digest.workers import CeleryQueue

    queue = CeleryQueue(settings)
    queue.ping()  # an unreachable broker stops start-up with one line, before the banner
    return queue


def guarded(name: str, run: Callable[[], object], settings: Settings) -> Callable[[], None]:
    """``run`` as a job whose operational failures are one log line per failed run (traceback at DEBUG)."""

    def job() -> None:
        try:
            run()
        except Exception as exc:
            failure = explain(exc, database_url=settings.db_url, broker_url=settings.celery_broker_url)
            if failure is None:
                log.exception("%s: failed", name)  # a bug: its traceback is the report
            else:
                log.error(
                    "%s: %s (next run will retry)", name, failure, exc_info=log.isEnabledFor(logging.DEBUG)
                )

    return job


def build_scheduler(db: Database, settings: Settings, *, stop: threading.Event) -> BackgroundScheduler:
    """The per-process scheduler: inbox, dispatch, maintenance and (if configured) the HF and arXiv pulls.

    Every job starts once right away, never runs twice at the same time (``max_instances=1``), and
    a run missed while the previous one was still busy is merged into one (``coalesce``).
    """
    scheduler = BackgroundScheduler(
        timezone=dt.UTC,
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
    )
    start = dt.datetime.now(dt.UTC)
    watcher = InboxWatcher(db, settings.inbox, settle_seconds=max(settings.inbox_poll_seconds, 5))
    dispatcher = Dispatcher(db, settings, stop=stop, queue=_queue(settings))
    jobs = [
        ("inbox", watcher.poll, settings.inbox_poll_seconds),
        ("dispatch", dispatcher.run, settings.dispatch_interval_seconds),
        ("maintenance", lambda: maintenance(db, settings), 3600),
    ]
    if settings.hf_daily_url:
        jobs.append(("hf_daily", HfDailyPull(db, settings.hf_daily_url).run, 3600))
    if settings.arxiv_category_list:
        pull = ArxivPull(db, settings.arxiv_feed_url, settings.arxiv_category_list)
        jobs.append(("arxiv", pull.run, 3600))
    if encoder.installed():
        jobs.append(("embed", lambda: embed_new_papers(db, settings, stop=stop), settings.inbox_poll_seconds))
    for name, func, seconds in jobs:
        job = guarded(name, func, settings)
        scheduler.add_job(job, "interval", seconds=seconds, id=name, name=name, next_run_time=start)
    return scheduler
