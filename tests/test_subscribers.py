from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from click.testing import CliRunner
from common import TEST_SECRET
from sqlalchemy import func, select

from digest.cli import main
from digest.config import load_settings
from digest.models import Delivery, DeliveryItem, Feedback, Paper, Subscriber, SubscriberModel
from digest.subscribers import InvalidSubscription, create_subscriber, delete_subscriber, update_preferences

WEBHOOK = "https://hooks.slack.com/services/T000/B000/XXXXXXXX"


def count(session, table) -> int:  # type: ignore[no-untyped-def]
    return session.scalar(select(func.count()).select_from(table))


@time_machine.travel(dt.datetime(2025, 6, 30, 12, 0, tzinfo=dt.UTC), tick=False)
def test_create_subscriber_cleans_fields_and_schedules_the_first_digest(db, settings):
    with db.session() as session:
        sub = create_subscriber(
            session,
            settings,
            email="Ada@Example.ORG",
            keywords="diffusion,  Speech  synthesis , DIFFUSION, ",
            excluded_keywords=["robotics"],
            send_time="7:30",
            timezone="Europe/Paris",
            digest_size="5",
        )
    assert sub.channel == "email" and sub.email == "Ada@example.org"
    assert sub.keywords == ["diffusion", "Speech synthesis"] and sub.excluded_keywords == ["robotics"]
    assert (sub.send_time, sub.digest_size, sub.status) == ("07:30", 5, "active")
    # 07:30 in Paris (CEST, UTC+2) on the next day, since today's 07:30 has passed.
    assert sub.next_send_at == dt.datetime(2025, 7, 1, 5, 30)


def test_digest_size_defaults_to_the_setting(db, settings):
    with db.session() as session:
        sub = create_subscriber(session, settings, slack_channel="C0123ABCD", keywords=["rag"])
    assert (sub.channel, sub.digest_size) == ("slack_bot", settings.default_digest_size)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"email": "not-an-address"}, "email"),
        ({"email": "ada@localhost"}, "email"),
        ({"email": "ada @example.org"}, "email"),
        ({"email": "ada@exa_mple.org"}, "email"),
        ({}, "email"),
        ({"email": "a@example.org", "slack_channel": "C0123ABCD"}, "slack_channel"),
        ({"slack_channel": "#general"}, "slack_channel"),
        ({"slack_channel": "c0123abcd"}, "slack_channel"),
        ({"slack_webhook_url": "http://hooks.slack.com/services/T/B/X"}, "slack_webhook_url"),
        ({"slack_webhook_url": "https://evil.example.org/services/T/B/X"}, "slack_webhook_url"),
        ({"slack_webhook_url": "https://hooks.slack.com/"}, "slack_webhook_url"),
        ({"slack_webhook_url": "ftp://hooks.slack.com/services/T/B/X"}, "slack_webhook_url"),
        ({"email": "a@example.org", "keywords": " , ,"}, "keywords"),
        ({"email": "a@example.org", "keywords": ["x" * 101]}, "keywords"),
        ({"email": "a@example.org", "timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"email": "a@example.org", "timezone": "../etc/passwd"}, "timezone"),
        ({"email": "a@example.org", "send_time": "24:00"}, "send_time"),
        ({"email": "a@example.org", "send_time": "8 am"}, "send_time"),
        ({"email": "a@example.org", "digest_size": 0}, "digest_size"),
        ({"email": "a@example.org", "digest_size": 51}, "digest_size"),
        ({"email": "a@example.org", "digest_size": "ten"}, "digest_size"),
        ({"email": "a@example.org", "weekdays": "7"}, "weekdays"),
        ({"email": "a@example.org", "weekdays": ""}, "weekdays"),
        ({"email": "a@example.org", "cadence": "hourly"}, "cadence"),
        ({"email": "a@example.org", "status": "vip"}, "status"),
    ],
)
def test_invalid_fields_are_named_and_nothing_is_stored(db, settings, fields, field):
    fields = {"keywords": "diffusion", **fields}
    with db.session() as session:
        with pytest.raises(InvalidSubscription) as caught:
            create_subscriber(session, settings, **fields)
        assert caught.value.field == field
        assert count(session, Subscriber) == 0


def test_webhook_urls_must_point_at_an_allowed_host_and_http_only_on_loopback(db, data_dir):
    settings = load_settings(
        data_dir=data_dir, slack_webhook_hosts="hooks.slack.com,127.0.0.1,relay.example.org"
    )
    with db.session() as session:
        assert (
            create_subscriber(session, settings, slack_webhook_url=WEBHOOK, keywords="a").channel
            == "slack_webhook"
        )
        create_subscriber(session, settings, slack_webhook_url="http://127.0.0.1:9/hook", keywords="a")
        with pytest.raises(InvalidSubscription, match="https"):
            create_subscriber(
                session, settings, slack_webhook_url="http://relay.example.org/hook", keywords="a"
            )


def test_a_live_address_cannot_subscribe_twice_but_an_unsubscribed_one_can_again(db, settings):
    with db.session() as session:
        first = create_subscriber(session, settings, email="ada@example.org", keywords="a")
        with pytest.raises(InvalidSubscription) as caught:
            create_subscriber(session, settings, email="ADA@example.org", keywords="b")
        assert caught.value.field == "email"
        first.status = "unsubscribed"
        again = create_subscriber(session, settings, email="ada@example.org", keywords="b")
    assert again.id != first.id


def test_pending_subscribers_are_not_scheduled_until_activated(db, settings):
    with db.session() as session:
        sub = create_subscriber(session, settings, email="ada@example.org", keywords="a", status="pending")
        assert sub.next_send_at is None
        update_preferences(session, sub, status="active")
        assert sub.next_send_at is not None


def test_update_preferences_validates_all_fields_before_changing_any(db, settings):
    with db.session() as session:
        sub = create_subscriber(session, settings, email="ada@example.org", keywords="a", send_time="08:00")
        before = sub.next_send_at
        with pytest.raises(InvalidSubscription) as caught:
            update_preferences(session, sub, keywords="new, words", timezone="Nowhere/Land")
        assert caught.value.field == "timezone" and sub.keywords == ["a"]
        with pytest.raises(InvalidSubscription):
            update_preferences(session, sub, email="other@example.org")
        update_preferences(session, sub, keywords="new, words", send_time="23:59", digest_size=3)
        assert (sub.keywords, sub.digest_size) == (["new", "words"], 3)
        assert sub.next_send_at != before


def test_reactivating_a_disabled_channel_resets_its_failure_count(db, settings):
    with db.session() as session:
        sub = create_subscriber(session, settings, email="ada@example.org", keywords="a")
        sub.status, sub.failure_count, sub.last_error = "disabled", 5, "550 mailbox unavailable"
        update_preferences(session, sub, status="active")
        assert (sub.failure_count, sub.last_error) == (0, None)


def test_delete_subscriber_erases_feedback_ledger_and_model(db, settings):
    with db.session() as session:
        sub = create_subscriber(session, settings, email="ada@example.org", keywords="a")
        other = create_subscriber(session, settings, email="bob@example.org", keywords="a")
        paper = Paper(key="arxiv:1", arxiv_id="1", title_key="t", title="T", authors=[])
        session.add(paper)
        session.flush()
        for who in (sub, other):
            delivery = Delivery(
                subscriber_id=who.id, digest_date=dt.date(2025, 6, 30), channel="email", status="sent"
            )
            session.add(delivery)
            session.flush()
            session.add(
                DeliveryItem(delivery_id=delivery.id, subscriber_id=who.id, paper_id=paper.id, position=0)
            )
            session.add(Feedback(subscriber_id=who.id, paper_id=paper.id, value=1))
            session.add(SubscriberModel(subscriber_id=who.id, state=b"x"))
        session.flush()
        delete_subscriber(session, sub)
    with db.session() as session:
        for table in (Subscriber, Delivery, DeliveryItem, Feedback, SubscriberModel):
            assert count(session, table) == 1, table
        assert count(session, Paper) == 1


# --- the `digest subscribe` command --------------------------------------------------------------------


def run(args: list[str], data_dir) -> object:  # type: ignore[no-untyped-def]
    env = {"DIGEST_DATA_DIR": str(data_dir), "DIGEST_SECRET_KEY": TEST_SECRET}
    return CliRunner().invoke(main, args, env=env)


def test_subscribe_command_prints_the_new_id(db, data_dir):
    result = run(
        [
            "subscribe",
            "--email",
            "ada@example.org",
            "--keywords",
            "diffusion, rag",
            "--time",
            "07:15",
            "--timezone",
            "Asia/Tokyo",
            "--size",
            "4",
            "--exclude",
            "robotics",
        ],
        data_dir,
    )
    assert result.exit_code == 0, result.output
    with db.session() as session:
        sub = session.scalars(select(Subscriber)).one()
    assert result.output.strip().splitlines()[-1] == str(sub.id)
    assert (sub.keywords, sub.excluded_keywords, sub.timezone, sub.digest_size) == (
        ["diffusion", "rag"],
        ["robotics"],
        "Asia/Tokyo",
        4,
    )


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--email", "nope", "--keywords", "a"], "--email"),
        (["--slack-webhook", "https://example.org/x", "--keywords", "a"], "--slack-webhook"),
        (["--slack-channel", "general", "--keywords", "a"], "--slack-channel"),
        (["--email", "a@example.org", "--keywords", "a", "--timezone", "Paris"], "--timezone"),
        (["--email", "a@example.org", "--keywords", "a", "--time", "7pm"], "--time"),
        (["--email", "a@example.org", "--keywords", ","], "--keywords"),
    ],
)
def test_subscribe_command_names_the_bad_field_stores_nothing_and_fails(db, data_dir, args, field):
    result = run(["subscribe", *args], data_dir)
    assert result.exit_code != 0
    assert field in result.output
    with db.session() as session:
        assert count(session, Subscriber) == 0
