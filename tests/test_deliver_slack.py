"""Slack against a local HTTP server speaking the Web API (chat.postMessage) and incoming webhooks."""

from __future__ import annotations

import deliver_support
from common import TEST_SECRET
from deliver_support import DAY, NOW, Reply, add_papers
from sqlalchemy import select

from digest.config import load_settings
from digest.dispatch import send_digest
from digest.models import Delivery, Subscriber
from digest.signing import Signer
from digest.subscribers import create_subscriber

slack_server = deliver_support.slack_server  # the local server fixture


def bot_settings(data_dir, server):  # type: ignore[no-untyped-def]
    return load_settings(
        data_dir=data_dir,
        secret_key=TEST_SECRET,
        slack_bot_token="xoxb-test-token",
        slack_api_url=f"{server.url}/api/",
    )


def channel_subscriber(db, settings, channel: str = "C0123ABCD") -> int:  # type: ignore[no-untyped-def]
    with db.session() as session:
        add_papers(session)
        return create_subscriber(session, settings, slack_channel=channel, keywords="diffusion").id


def test_bot_posts_blocks_with_signed_vote_buttons_to_the_channel(db, data_dir, slack_server):
    settings = bot_settings(data_dir, slack_server)
    sid = channel_subscriber(db, settings)
    outcome = send_digest(db, settings, sid, DAY, now=NOW)
    assert outcome.status == "sent" and outcome.receipt == "1719730000.000100"
    (request,) = slack_server.requests
    assert request["path"] == "/api/chat.postMessage"
    assert request["headers"]["Authorization"] == "Bearer xoxb-test-token"
    body = request["json"]
    assert body["channel"] == "C0123ABCD" and body["text"] and body["unfurl_links"] is False
    buttons = [e for b in body["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert len(buttons) == 2 * len(outcome.paper_ids)
    tokens = [Signer(settings.secret).loads(b["value"], {"up", "down"}) for b in buttons]
    assert {(t.subscriber_id, t.paper_id) for t in tokens} == {(sid, p) for p in outcome.paper_ids}


def test_bot_honours_429_retry_after_and_then_posts_once(db, data_dir, slack_server):
    settings = bot_settings(data_dir, slack_server)
    sid = channel_subscriber(db, settings)
    slack_server.replies = [Reply(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "1"})]
    outcome = send_digest(db, settings, sid, DAY, now=NOW)
    assert outcome.status == "sent"
    assert len(slack_server.requests) == 2


def test_a_500_is_transient_and_the_retry_sends_the_same_digest_date(db, data_dir, slack_server):
    settings = bot_settings(data_dir, slack_server)
    sid = channel_subscriber(db, settings)
    slack_server.replies = [Reply(500, {"ok": False, "error": "internal_error"})]
    failed = send_digest(db, settings, sid, DAY, now=NOW)
    assert failed.status == "failed" and failed.reason.startswith("transient:") and failed.retry_at
    retried = send_digest(db, settings, sid, DAY, now=failed.retry_at)
    assert retried.status == "sent"
    with db.session() as session:
        row = session.scalars(select(Delivery)).one()
        assert (row.status, row.attempts) == ("sent", 2)


def test_a_500_with_a_non_json_body_is_transient_too(db, data_dir, slack_server):
    settings = bot_settings(data_dir, slack_server)
    sid = channel_subscriber(db, settings)
    slack_server.replies = [Reply(500, "<html>upstream error</html>")]
    outcome = send_digest(db, settings, sid, DAY, now=NOW)
    assert outcome.status == "failed" and outcome.reason.startswith("transient:")


def test_channel_not_found_is_permanent_and_counted(db, data_dir, slack_server):
    settings = bot_settings(data_dir, slack_server)
    sid = channel_subscriber(db, settings)
    slack_server.default = Reply(200, {"ok": False, "error": "channel_not_found"})
    outcome = send_digest(db, settings, sid, DAY, now=NOW)
    assert outcome.status == "failed" and "channel_not_found" in outcome.reason and outcome.retry_at is None
    with db.session() as session:
        assert session.get(Subscriber, sid).failure_count == 1


def webhook_subscriber(db, data_dir, server):  # type: ignore[no-untyped-def]
    settings = load_settings(data_dir=data_dir, secret_key=TEST_SECRET, slack_webhook_hosts="127.0.0.1")
    with db.session() as session:
        add_papers(session)
        url = f"{server.url}/services/T000/B000/secret"
        return settings, create_subscriber(session, settings, slack_webhook_url=url, keywords="diffusion").id


def test_webhook_posts_the_blocks_to_the_subscribers_url(db, data_dir, slack_server):
    slack_server.default = Reply(200, "ok")
    settings, sid = webhook_subscriber(db, data_dir, slack_server)
    outcome = send_digest(db, settings, sid, DAY, now=NOW)
    assert outcome.status == "sent"
    (request,) = slack_server.requests
    assert request["path"] == "/services/T000/B000/secret"
    assert request["json"]["blocks"][0]["type"] == "header" and request["json"]["text"]


def test_webhook_gone_is_permanent(db, data_dir, slack_server):
    slack_server.default = Reply(404, "no_service")
    settings, sid = webhook_subscriber(db, data_dir, slack_server)
    outcome = send_digest(db, settings, sid, DAY, now=NOW)
    assert (
        outcome.status == "failed"
        and outcome.reason.startswith("permanent:")
        and "no_service" in outcome.reason
    )


def test_bot_posts_carry_the_delivery_key_in_their_metadata(db, data_dir, slack_server):
    settings = bot_settings(data_dir, slack_server)
    sid = channel_subscriber(db, settings)
    send_digest(db, settings, sid, DAY, now=NOW)
    (request,) = slack_server.requests
    metadata = request["json"]["metadata"]
    assert metadata == {"event_type": "digest_delivery", "event_payload": {"key": f"digest:{sid}:{DAY}"}}


def test_no_sdk_retry_handler_may_repeat_a_post(data_dir, slack_server):
    from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler

    from digest.deliver.slack import SlackBotTransport

    transport = SlackBotTransport(bot_settings(data_dir, slack_server))
    assert not any(isinstance(h, ConnectionErrorRetryHandler) for h in transport.client.retry_handlers)
    assert any(isinstance(h, ConnectionErrorRetryHandler) for h in transport.reader.retry_handlers)  # reads


def settle(data_dir, server):  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from digest.cli import main

    env = {
        "DIGEST_DATA_DIR": str(data_dir),
        "DIGEST_SECRET_KEY": TEST_SECRET,
        "DIGEST_SLACK_BOT_TOKEN": "xoxb-test-token",
        "DIGEST_SLACK_API_URL": f"{server.url}/api/",
    }
    return CliRunner().invoke(main, ["deliveries", "settle"], env=env)


def stuck_slack_claim(db, settings, server, *, posted: bool) -> int:  # type: ignore[no-untyped-def]
    """The claim a process killed mid-send leaves: `sending`, whether or not Slack has the message."""
    from digest.models import utcnow

    with db.session() as session:
        add_papers(session, seen=utcnow())  # `settle` sends the day again with the real clock
        sid = create_subscriber(session, settings, slack_channel="C0123ABCD", keywords="diffusion").id
    if not posted:
        server.replies = [Reply(200, {"ok": False, "error": "internal_error"})]
    send_digest(db, settings, sid, DAY, now=utcnow())
    with db.session() as session:
        row = session.scalars(select(Delivery)).one()
        row.status, row.reason, row.message_id = "sending", "outcome unknown: killed", None
    return sid


def test_settle_marks_a_stuck_claim_sent_when_its_message_is_in_the_channel(db, data_dir, slack_server):
    settings = bot_settings(data_dir, slack_server)
    sid = stuck_slack_claim(db, settings, slack_server, posted=True)
    result = settle(data_dir, slack_server)
    assert result.exit_code == 0 and f"subscriber {sid} {DAY}: sent" in result.output
    with db.session() as session:
        row = session.scalars(select(Delivery)).one()
        assert (row.status, row.message_id) == ("sent", slack_server.posted[0].ts)
    assert len(slack_server.posted) == 1


def test_settle_posts_a_stuck_claim_once_when_its_message_never_arrived(db, data_dir, slack_server):
    settings = bot_settings(data_dir, slack_server)
    sid = stuck_slack_claim(db, settings, slack_server, posted=False)
    assert slack_server.posted == []
    first, second = settle(data_dir, slack_server), settle(data_dir, slack_server)
    assert f"subscriber {sid} {DAY}: sent" in first.output
    assert second.output == ""  # nothing left to settle
    assert len(slack_server.posted) == 1
