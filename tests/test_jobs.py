"""The periodic jobs: maintenance, and the scheduler that runs them."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from digest.db import Database
from digest.jobs import build_scheduler, embed_new_papers, maintenance
from digest.models import Paper, Subscriber
from digest.rank import embeddings, encoder
from digest.subscribers import schedule_unscheduled


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args)


def scheduled(db: Database, now: dt.datetime) -> int:
    with db.session() as session:
        return schedule_unscheduled(session, now=now)


def add_subscriber(db: Database, **fields: object) -> int:
    values = {"channel": "email", "email": "ada@example.org", "keywords": ["attention"], **fields}
    with db.session() as session:
        subscriber = Subscriber(**values)
        session.add(subscriber)
        session.flush()
        return subscriber.id


def test_maintenance_schedules_active_subscribers_that_have_no_next_send_time(db):
    active = add_subscriber(db, send_time="09:00")
    paused = add_subscriber(db, email="bo@example.org", status="paused")
    assert scheduled(db, utc(2025, 1, 1, 10)) == 1
    with db.session() as session:
        assert session.get(Subscriber, active).next_send_at == utc(2025, 1, 2, 9)
        assert session.get(Subscriber, paused).next_send_at is None


def test_maintenance_records_an_unusable_schedule_instead_of_failing(db):
    broken = add_subscriber(db, timezone="Mars/Olympus")
    assert scheduled(db, utc(2025, 1, 1)) == 0
    with db.session() as session:
        assert "timezone" in session.get(Subscriber, broken).last_error


def test_maintenance_erases_sign_ups_whose_confirmation_link_has_expired(db, settings):
    max_age = dt.timedelta(days=settings.token_max_age_days)
    now = utc(2025, 6, 1)
    stale = add_subscriber(db, status="pending", created_at=now - max_age - dt.timedelta(minutes=1))
    fresh = add_subscriber(
        db, email="bo@example.org", status="pending", created_at=now - dt.timedelta(days=1)
    )
    old_but_active = add_subscriber(db, email="cy@example.org", created_at=now - 2 * max_age)
    maintenance(db, settings, now=now)
    with db.session() as session:
        assert session.get(Subscriber, stale) is None
        assert session.get(Subscriber, fresh).status == "pending"
        assert session.get(Subscriber, old_but_active).status == "active"


@pytest.mark.usefixtures("without_semantic")
def test_scheduler_has_the_periodic_jobs_and_the_hf_pull_only_when_configured(settings, db):
    stop = threading.Event()
    ids = {job.id for job in build_scheduler(db, settings, stop=stop).get_jobs()}
    assert ids == {"inbox", "dispatch", "maintenance"}
    configured = settings.model_copy(update={"hf_daily_url": "http://127.0.0.1:9/api/daily_papers"})
    ids = {job.id for job in build_scheduler(db, configured, stop=stop).get_jobs()}
    assert ids == {"inbox", "dispatch", "maintenance", "hf_daily"}


@pytest.mark.usefixtures("without_semantic")
def test_the_arxiv_pull_runs_only_when_categories_are_listed(settings, db):
    stop = threading.Event()
    configured = settings.model_copy(update={"arxiv_categories": "cs.IR,cs.CL"})
    ids = {job.id for job in build_scheduler(db, configured, stop=stop).get_jobs()}
    assert ids == {"inbox", "dispatch", "maintenance", "arxiv"}


def test_scheduler_embeds_new_papers_when_the_semantic_part_is_installed(settings, db):
    ids = {job.id for job in build_scheduler(db, settings, stop=threading.Event()).get_jobs()}
    assert ids == {"inbox", "dispatch", "maintenance", "embed"}


@pytest.mark.skipif(not encoder.installed(), reason="needs the `semantic` extra")
def test_the_embed_job_embeds_the_candidates_and_leaves_older_papers_to_digest_embed(settings, db):
    now = utc(2025, 6, 10, 12)
    with db.session() as session:
        old = Paper(key="old", title_key="old", title="Speech recognition", first_seen_at=utc(2025, 5, 1))
        new = Paper(key="new", title_key="new", title="Audio tokenizers", first_seen_at=utc(2025, 6, 9))
        session.add_all([old, new])
        session.flush()
        ids = old.id, new.id
    embed_new_papers(db, settings, now=now)
    with db.session() as session:
        assert set(embeddings.stored(session, ids)) == {ids[1]}
        assert embeddings.pending(session) == 1


@pytest.mark.skipif(not encoder.installed(), reason="needs the `semantic` extra")
def test_the_embed_job_stops_between_chunks_when_the_service_shuts_down(settings, db):
    now = utc(2025, 6, 10, 12)
    with db.session() as session:
        session.add_all(
            Paper(key=f"p{n}", title_key=f"p{n}", title=f"Paper {n}", first_seen_at=utc(2025, 6, 9))
            for n in range(3)
        )
    stop = threading.Event()
    stop.set()  # SIGTERM arrived before the run: nothing is embedded, the shutdown does not wait
    embed_new_papers(db, settings, now=now, stop=stop)
    with db.session() as session:
        assert embeddings.pending(session) == 3
