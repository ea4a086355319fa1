"""Fault suite, Slack: a Web API server that records the post and then stalls, resets or drops the reply,
or loses the request itself. Per channel: exactly one post (bot: settled from the history by the delivery
key), or a stuck row naming the subscriber (webhooks: no history to read) — never two."""

from __future__ import annotations

from collections import Counter

import pytest
from common import TEST_SECRET
from deliver_support import DAY, DROP, NOW, RESET, STALL, Reply, add_papers, running_slack_server
from sqlalchemy import select

from digest.config import load_settings
from digest.deliver import slack
from digest.deliver.repair import stuck_states
from digest.dispatch import send_digest
from digest.models import Delivery
from digest.subscribers import create_subscriber

CHANNELS = ("C0000001A", "C0000002A", "U0000003A")  # two channels and a member (a direct message)


@pytest.fixture(autouse=True)
def quick_slack(monkeypatch):
    """The client gives up after 1 s (a stalled reply comes after 1.5 s); a lost post is looked up at once."""
    monkeypatch.setattr(slack, "TIMEOUT_SECONDS", 1)
    monkeypatch.setattr(slack, "SETTLE_SECONDS", 0.05)


@pytest.fixture
def server():
    with running_slack_server(stall_seconds=1.5) as fake:
        yield fake


def bot(db, data_dir, server):
    settings = load_settings(
        data_dir=data_dir,
        secret_key=TEST_SECRET,
        slack_bot_token="xoxb-t",
        slack_api_url=f"{server.url}/api/",
    )
    with db.session() as session:
        add_papers(session)
        ids = [
            create_subscriber(session, settings, slack_channel=c, keywords="diffusion").id for c in CHANNELS
        ]
    return settings, ids


def posts_per_channel(server) -> Counter[str]:
    return Counter(post.channel for post in server.posted)


@pytest.mark.parametrize("fault", [STALL, RESET, DROP])
def test_a_lost_reply_after_the_post_is_settled_from_the_history_as_sent_exactly_once(
    db, data_dir, server, fault
):
    settings, ids = bot(db, data_dir, server)
    for sid in ids:
        server.replies = [Reply(fault=fault)]
        outcome = send_digest(db, settings, sid, DAY, now=NOW)
        assert outcome.status == "sent", outcome.reason
    assert sorted(posts_per_channel(server).values()) == [1, 1, 1]
    with db.session() as session:
        rows = session.scalars(select(Delivery)).all()
        assert [row.status for row in rows] == ["sent"] * 3
        assert {row.message_id for row in rows} == {post.ts for post in server.posted}  # the real ts


def test_two_resets_in_a_row_still_post_once(db, data_dir, server):
    settings, (sid, *_) = bot(db, data_dir, server)
    server.replies = [Reply(fault=RESET), Reply(fault=RESET)]
    assert send_digest(db, settings, sid, DAY, now=NOW).status == "sent"
    assert list(posts_per_channel(server).values()) == [1]


def test_a_lost_request_is_posted_once_more_after_the_history_shows_it_missing(db, data_dir, server):
    settings, ids = bot(db, data_dir, server)
    for sid in ids:
        server.replies = [Reply(fault=DROP, takes_effect=False)]
        assert send_digest(db, settings, sid, DAY, now=NOW).status == "sent"
    assert sorted(posts_per_channel(server).values()) == [1, 1, 1]
    assert len(server.posts) == 6  # each: the lost request and the one that landed


def test_when_the_history_cannot_be_read_the_claim_stays_stuck_naming_the_subscriber(db, data_dir, server):
    settings, (sid, *_) = bot(db, data_dir, server)
    server.replies = [Reply(fault=STALL)]
    server.history_replies = [Reply(200, {"ok": False, "error": "missing_scope"})]
    outcome = send_digest(db, settings, sid, DAY, now=NOW)
    assert outcome.status == "unknown" and "missing_scope" in outcome.reason
    again = send_digest(db, settings, sid, DAY, now=NOW)  # a rerun never posts it again
    assert again.status == "already_sent"
    assert list(posts_per_channel(server).values()) == [1]
    with db.session() as session:
        (stuck,) = stuck_states(session)
        assert (stuck.delivery.subscriber_id, stuck.state) == (sid, "unknown")


@pytest.mark.parametrize("fault", [STALL, RESET, DROP])
def test_a_webhook_whose_reply_is_lost_stays_stuck_and_is_never_posted_twice(db, data_dir, server, fault):
    settings = load_settings(data_dir=data_dir, secret_key=TEST_SECRET, slack_webhook_hosts="127.0.0.1")
    with db.session() as session:
        add_papers(session)
        url = f"{server.url}/services/T0/B0/x"
        sid = create_subscriber(session, settings, slack_webhook_url=url, keywords="diffusion").id
    server.default = Reply(200, "ok")
    server.replies = [Reply(200, "ok", fault=fault)]
    outcome = send_digest(db, settings, sid, DAY, now=NOW)
    assert outcome.status == "unknown" and "webhook" in outcome.reason
    assert send_digest(db, settings, sid, DAY, now=NOW).status == "already_sent"
    assert len(server.posts) == 1
    with db.session() as session:
        (stuck,) = stuck_states(session)
        assert (stuck.delivery.subscriber_id, stuck.state) == (sid, "unknown")


def test_a_refused_connection_is_certainly_not_sent_and_retried_later(db, data_dir, server):
    settings, (sid, *_) = bot(db, data_dir, server)
    closed = settings.model_copy(update={"slack_api_url": "http://127.0.0.1:9/api/"})
    failed = send_digest(db, closed, sid, DAY, now=NOW)
    assert failed.status == "failed" and failed.reason.startswith("transient:") and failed.retry_at
    assert send_digest(db, settings, sid, DAY, now=failed.retry_at).status == "sent"
    assert list(posts_per_channel(server).values()) == [1]
