"""Celery workers: the path past one machine for sending (``DIGEST_CELERY_BROKER_URL``, e.g. Redis).

Without a broker, ``digest serve`` claims and sends every due digest itself. With one, the dispatcher
still claims each due subscription with its conditional UPDATE (``digest.dispatch``), and hands the
claim to a queue; any number of ``digest worker`` processes, on any machine that reaches the database
and the broker, build, send, record and release it. Nothing about the guarantees changes:

* the claim is still taken once, by the dispatcher, so two dispatchers never queue the same slot;
* a worker releases with the same ``claimed_until`` check, so a claim that outlived its lease (a long
  queue) and was taken again cannot move the schedule twice;
* the ledger's unique (subscriber, digest date) row turns a redelivered task (a worker killed mid-task:
  ``acks_late`` puts the message back) into ``already_sent``, never a second mail.

Only JSON crosses the broker (no pickle): a claim is a few ids, times and schedule fields.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from celery import Celery

from digest.config import Settings
from digest.db import Database
from digest.dispatch import Claim, Dispatcher, DispatchReport, Due

log = logging.getLogger(__name__)
TASK = "digest.send_claimed"
BROKER_CHECK_SECONDS = 5.0


def claim_to_json(claim: Claim) -> dict[str, Any]:
    due = {**asdict(claim.due), "slot": claim.due.slot.isoformat()}
    return {
        "due": due,
        "until": claim.until.isoformat(),
        "digest_date": claim.digest_date.isoformat(),
        "following": claim.following.isoformat(),
    }


def claim_from_json(data: dict[str, Any]) -> Claim:
    due = Due(**{**data["due"], "slot": dt.datetime.fromisoformat(data["due"]["slot"])})
    return Claim(
        due=due,
        until=dt.datetime.fromisoformat(data["until"]),
        digest_date=dt.date.fromisoformat(data["digest_date"]),
        following=dt.datetime.fromisoformat(data["following"]),
    )


def create_celery(settings: Settings) -> Celery:
    """The Celery app for this configuration, with the one task registered."""
    app = Celery("digest", broker=settings.celery_broker_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_default_queue=settings.celery_queue,  # installations sharing one broker keep apart
        # A worker that dies mid-send gives the message back; the ledger makes the retry harmless.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # One message at a time per worker process: a digest takes a while, and a prefetched one would
        # sit behind it while another worker is idle.
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    state: dict[str, Any] = {}

    @app.task(name=TASK)
    def send_claimed(data: list[dict[str, Any]] | dict[str, Any]) -> dict[str, int]:
        # A chunk of claims (one product, one ledger transaction); a single claim from an older sender.
        claims = [claim_from_json(one) for one in (data if isinstance(data, list) else [data])]
        return _dispatcher(state, settings).deliver_now(claims)

    return app


def ping_broker(app: Celery) -> None:
    """Connect to the broker once (a few seconds at most); its error is raised for the caller to report."""
    with app.connection_for_write() as connection:
        connection.ensure_connection(
            max_retries=1, interval_start=0, interval_step=0.5, timeout=BROKER_CHECK_SECONDS
        )


def _dispatcher(state: dict[str, Any], settings: Settings) -> Dispatcher:
    # Built lazily inside the worker process: a database engine must not cross a fork.
    if "dispatcher" not in state:
        state["dispatcher"] = Dispatcher(Database(settings), settings)
    return state["dispatcher"]


class CeleryQueue:
    """What the dispatcher calls instead of sending when a broker is configured."""

    def __init__(self, settings: Settings) -> None:
        self.app = create_celery(settings)

    def ping(self) -> None:
        ping_broker(self.app)

    def put(self, claims: Sequence[Claim], report: DispatchReport) -> None:
        """One task for the whole chunk: a worker sends it as ``digest send`` would."""
        self.app.send_task(TASK, args=[[claim_to_json(claim) for claim in claims]])
        report.outcomes["queued"] += len(claims)


def run_worker(settings: Settings, concurrency: int) -> None:
    """Run a Celery worker in this process until SIGTERM (Celery's warm shutdown finishes the task)."""
    app = create_celery(settings)
    ping_broker(app)  # an unreachable broker is one line from `digest worker`, not an endless retry log
    options = [
        f"--concurrency={concurrency}",
        f"--loglevel={settings.log_level}",
        f"--queues={settings.celery_queue}",
    ]
    app.worker_main(["worker", *options])
