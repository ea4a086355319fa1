"""POST /slack/actions: Slack's signature and replay window, the signed button value, the message update."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import select
from web_support import add_paper, add_subscriber, client_for, snapshot

from digest.config import load_settings
from digest.db import Database
from digest.models import Feedback
from digest.signing import Signer

SIGNING_SECRET = "slack-signing-secret-for-tests"


class ResponseUrlServer:
    """A local stand-in for Slack's response_url endpoint that records what it is sent."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.arrived = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length", 0))
                outer.received.append(json.loads(self.rfile.read(length)))
                outer.arrived.set()
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/actions/T1/123/abc"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self) -> dict[str, Any]:
        assert self.arrived.wait(10), "nothing was posted to response_url"
        return self.received[-1]


@pytest.fixture
def slack_settings(data_dir: Path):
    return load_settings(
        data_dir=data_dir,
        secret_key="x" * 24,
        base_url="http://digest.test",
        slack_signing_secret=SIGNING_SECRET,
    )


@pytest.fixture
def slack_db(slack_settings) -> Iterator[Database]:
    database = Database(slack_settings, migrate=True)
    yield database
    database.dispose()


@pytest.fixture
def response_url() -> Iterator[ResponseUrlServer]:
    server = ResponseUrlServer()
    yield server
    server.server.shutdown()


def signed(body: bytes, secret: str = SIGNING_SECRET, timestamp: str | None = None) -> dict[str, str]:
    timestamp = timestamp or str(int(time.time()))
    base = b"v0:" + timestamp.encode() + b":" + body
    signature = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": signature,
        "Content-Type": "application/x-www-form-urlencoded",
    }


def click(value: str, response_url: str, action_id: str = "vote_up", paper_id: int = 1) -> bytes:
    blocks = [
        {"type": "section", "block_id": f"pick-{paper_id}", "text": {"type": "mrkdwn", "text": "*Paper*"}},
        {
            "type": "actions",
            "block_id": f"vote-{paper_id}",
            "elements": [
                {
                    "type": "button",
                    "action_id": "vote_up",
                    "value": "u",
                    "style": "primary",
                    "text": {"type": "plain_text", "text": "👍 More like this"},
                },
                {
                    "type": "button",
                    "action_id": "vote_down",
                    "value": "d",
                    "text": {"type": "plain_text", "text": "👎 Less like this"},
                },
            ],
        },
    ]
    payload = {
        "type": "block_actions",
        "user": {"id": "U123"},
        "response_url": response_url,
        "message": {"text": "Your digest", "blocks": blocks},
        "actions": [
            {"type": "button", "action_id": action_id, "block_id": f"vote-{paper_id}", "value": value}
        ],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def votes(db: Database) -> list[tuple[int, str]]:
    with db.session() as session:
        query = select(Feedback.value, Feedback.source).order_by(Feedback.id)
        return [tuple(row) for row in session.execute(query)]


@pytest.fixture
def vote_token(slack_settings, slack_db):
    sid = add_subscriber(slack_db, slack_settings, slack_channel="C0123ABCD", email=None)
    pid = add_paper(slack_db)
    signer = Signer(slack_settings.secret, slack_settings.token_max_age_days)
    return lambda action="up": (signer.dumps(action, sid, pid), pid)


def test_signed_click_records_the_vote_and_updates_the_message(
    slack_settings, slack_db, vote_token, response_url
) -> None:
    token, pid = vote_token("down")
    body = click(token, response_url.url, "vote_down", pid)
    answer = client_for(slack_settings, slack_db).post("/slack/actions", content=body, headers=signed(body))
    assert answer.status_code == 200
    assert votes(slack_db) == [(-1, "slack")]
    update = response_url.wait()
    assert update["replace_original"] is True
    actions = next(b for b in update["blocks"] if b.get("block_id") == f"vote-{pid}")
    styles = {e["action_id"]: e.get("style") for e in actions["elements"]}
    assert styles == {"vote_up": None, "vote_down": "primary"}
    status = next(b for b in update["blocks"] if b.get("block_id") == f"vote-status-{pid}")
    assert "👎 Vote recorded" in status["elements"][0]["text"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Slack-Request-Timestamp": str(int(time.time()))},
        {"X-Slack-Signature": "v0=00"},
        "wrong-secret",
        "stale",
        "non-numeric",
        "body-changed",
    ],
)
def test_bad_missing_stale_or_non_numeric_signatures_are_401(
    slack_settings, slack_db, vote_token, response_url, headers
) -> None:
    token, pid = vote_token()
    body = click(token, response_url.url, paper_id=pid)
    if headers == "wrong-secret":
        headers = signed(body, secret="another-secret")
    elif headers == "stale":
        headers = signed(body, timestamp=str(int(time.time()) - 301))
    elif headers == "non-numeric":
        headers = signed(body, timestamp="12:00")
    elif headers == "body-changed":
        headers = signed(body)
        body = body.replace(b"vote_up", b"vote_xx")
    before = snapshot(slack_db)
    answer = client_for(slack_settings, slack_db).post("/slack/actions", content=body, headers=headers)
    assert answer.status_code == 401
    assert snapshot(slack_db) == before and response_url.received == []


def test_no_signing_secret_configured_refuses_everything(settings, db) -> None:
    body = b"payload=%7B%7D"
    answer = client_for(settings, db).post("/slack/actions", content=body, headers=signed(body))
    assert answer.status_code == 401


def test_tampered_button_value_records_nothing_and_tells_the_user(
    slack_settings, slack_db, vote_token, response_url
) -> None:
    token, pid = vote_token()
    body = click(token[:-3] + "AAA", response_url.url, paper_id=pid)
    answer = client_for(slack_settings, slack_db).post("/slack/actions", content=body, headers=signed(body))
    assert answer.status_code == 200
    note = response_url.wait()
    assert note["response_type"] == "ephemeral" and "can't be used" in note["text"]
    assert votes(slack_db) == []


def test_non_vote_token_in_a_button_is_refused(slack_settings, slack_db, vote_token, response_url) -> None:
    signer = Signer(slack_settings.secret, slack_settings.token_max_age_days)
    body = click(signer.dumps("unsubscribe", 1), response_url.url)
    client_for(slack_settings, slack_db).post("/slack/actions", content=body, headers=signed(body))
    assert "can't be used" in response_url.wait()["text"] and votes(slack_db) == []


def test_signed_but_malformed_payload_is_400_and_other_types_are_ignored(slack_settings, slack_db) -> None:
    client = client_for(slack_settings, slack_db)
    for body in (b"payload=not-json", b"nothing=here", b"payload=%5B1%5D"):
        assert client.post("/slack/actions", content=body, headers=signed(body)).status_code == 400
    other = urlencode({"payload": json.dumps({"type": "view_submission"})}).encode()
    assert client.post("/slack/actions", content=other, headers=signed(other)).status_code == 200
    assert votes(slack_db) == []


def test_a_non_utf8_body_is_checked_before_it_is_decoded_401_unsigned_400_signed(slack_settings, slack_db):
    client = client_for(slack_settings, slack_db)
    body = b"payload=\xff\xfe{"
    forged = {"X-Slack-Request-Timestamp": str(int(time.time())), "X-Slack-Signature": "v0=" + "0" * 64}
    assert client.post("/slack/actions", content=body, headers=forged).status_code == 401
    answer = client.post("/slack/actions", content=body, headers=signed(body))
    assert answer.status_code == 400 and "not UTF-8" in answer.json()["error"]


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested deeper than 64"),
        ('{"a": ' + "1" * 5000 + "}", "not JSON"),
        ('{"type": "block_actions", "actions": "up"}', "list of action objects"),
        ('{"type": "block_actions", "actions": [{"value": 7}]}', "'value' is not a string"),
        ('{"type": "block_actions", "user": {"id": "' + "U" * 65 + '"}, "actions": [{"value": "x"}]}', "64"),
    ],
)
def test_a_signed_but_malformed_payload_is_a_400_naming_the_problem(
    slack_settings, slack_db, payload, problem
):
    body = urlencode({"payload": payload}).encode()
    answer = client_for(slack_settings, slack_db).post("/slack/actions", content=body, headers=signed(body))
    assert answer.status_code == 400 and problem in answer.json()["error"]


def test_an_oversized_body_is_a_413_and_a_huge_timestamp_a_401(slack_settings, slack_db):
    client = client_for(slack_settings, slack_db)
    big = b"payload=" + b"x" * (1024 * 1024)
    assert client.post("/slack/actions", content=big, headers=signed(big)).status_code == 413
    odd = {"X-Slack-Request-Timestamp": "9" * 5000, "X-Slack-Signature": "v0=00"}
    assert client.post("/slack/actions", content=b"x", headers=odd).status_code == 401


def replayable(token: str, response_url: str, action_ts: str) -> bytes:
    payload = json.loads(parse_payload(click(token, response_url)))
    payload["actions"][0]["action_ts"] = action_ts
    payload["container"] = {"type": "message", "message_ts": "1719730000.000100"}
    return urlencode({"payload": json.dumps(payload)}).encode()


def parse_payload(body: bytes) -> str:
    from urllib.parse import parse_qs

    return parse_qs(body.decode())["payload"][0]


def test_a_replayed_click_is_recorded_once_and_a_new_click_again(
    slack_settings, slack_db, vote_token, response_url
) -> None:
    token, _ = vote_token("up")
    client = client_for(slack_settings, slack_db)
    body = replayable(token, response_url.url, "1719730001.000200")
    answers = [
        client.post("/slack/actions", content=body, headers=signed(body)).status_code for _ in range(3)
    ]
    assert answers == [200, 200, 200] and votes(slack_db) == [(1, "slack")]
    second = replayable(token, response_url.url, "1719730009.000300")  # the same user clicks again later
    assert client.post("/slack/actions", content=second, headers=signed(second)).status_code == 200
    assert votes(slack_db) == [(1, "slack"), (1, "slack")]
