"""Slack interactivity: the 👍/👎 buttons of a Slack digest post here (``POST /slack/actions``).

Slack's rules (docs.slack.dev "Verifying requests from Slack" and "Handling user interaction"):
every request is signed with the app's signing secret over ``v0:<timestamp>:<raw body>``, and one older
than five minutes is a possible replay; the app must answer 200 within 3 seconds, and changes the message
afterwards by POSTing to the ``response_url`` it was given. The button value is our own signed token,
so a vote still needs a link token we issued, whoever can talk to this endpoint.

Nothing in the body is decoded before its signature is checked (on the raw bytes); after that every
malformed body gets a 4xx naming what is wrong: too big, not UTF-8, no ``payload`` field, JSON nested too
deeply (checked before parsing) or not an object, actions of the wrong shape. A click sent again within
the window (same ``action_ts``, user and message: a replayed request) is recorded once (``SlackClick``).
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import hmac
import json
import logging
import re
import time
from typing import Annotated, Any
from urllib.parse import parse_qs

import httpx
from fastapi import APIRouter, BackgroundTasks, Header, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from digest.models import FeedbackSource, SlackClick, utcnow
from digest.signing import FEEDBACK_ACTIONS, BadToken
from digest.web.feedback import record_vote
from digest.web.site import NotFound, Site, site_of

log = logging.getLogger(__name__)
router = APIRouter()
VOTE_EMOJI = {"up": "👍", "down": "👎"}
RESPONSE_URL_TIMEOUT = 10.0
REPLAY_WINDOW_SECONDS = 300  # Slack's: an older timestamp is refused
MAX_BODY_BYTES = 1024 * 1024  # a digest message with its blocks is tens of kB, form-encoded
MAX_JSON_DEPTH = 64  # Slack's payloads nest about ten levels
MAX_FORM_FIELDS = 32
MAX_ID_CHARS = 64  # action_ts, user id, message ts: short ids, stored in SlackClick
# A JSON string (escapes included) or one bracket: enough to measure nesting without parsing.
_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')
FORM_BODY = {
    "requestBody": {
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {"type": "object", "properties": {"payload": {"type": "string"}}}
            }
        }
    }
}


def signature_ok(
    secret: str | None, body: bytes, timestamp: str | None, signature: str | None, *, now: float | None = None
) -> bool:
    """Slack's v0 HMAC over the raw bytes, within the 5-minute window; False for anything missing or odd.

    Computed here rather than with slack-sdk's SignatureVerifier, which decodes the body as UTF-8 first
    (a non-UTF-8 body raised there, unauthenticated) and parses any timestamp with int()."""
    if not secret or not secret.strip() or not timestamp or not signature:
        return False
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > REPLAY_WINDOW_SECONDS:
        return False
    mac = hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256)
    return hmac.compare_digest(b"v0=" + mac.hexdigest().encode(), signature.encode("utf-8", "replace"))


@router.post("/slack/actions", summary="Slack button clicks (signed by Slack)", openapi_extra=FORM_BODY)
async def slack_actions(
    request: Request,
    background: BackgroundTasks,
    x_slack_request_timestamp: Annotated[str | None, Header()] = None,
    x_slack_signature: Annotated[str | None, Header()] = None,
) -> Response:
    site = site_of(request)
    body = await _body(request)  # the raw bytes: the signature covers them exactly as sent
    if body is None:
        return JSONResponse({"error": f"the body is over {MAX_BODY_BYTES} bytes"}, status_code=413)
    secret = site.settings.slack_signing_secret
    if not signature_ok(secret, body, x_slack_request_timestamp, x_slack_signature):
        return JSONResponse({"error": "invalid or missing Slack signature"}, status_code=401)
    payload = _payload(body)
    if isinstance(payload, str):
        return JSONResponse({"error": payload}, status_code=400)
    if payload.get("type") != "block_actions":
        return Response(status_code=200)  # other interaction types are not ours to handle
    action = _action(payload)
    if isinstance(action, str):
        return JSONResponse({"error": action}, status_code=400)
    reply = await run_in_threadpool(_handle_block_actions, site, payload, action) if action else None
    response_url = payload.get("response_url")
    if (
        reply is not None
        and isinstance(response_url, str)
        and response_url.startswith(("https://", "http://"))
    ):
        background.add_task(_post_response, response_url, reply)
    return Response(status_code=200)


async def _body(request: Request) -> bytes | None:
    """The body, or None once it is over MAX_BODY_BYTES (read no further)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _payload(body: bytes) -> dict[str, Any] | str:
    """The JSON object in the form field ``payload``, or what is wrong with the body."""
    try:
        fields = parse_qs(body.decode("utf-8"), max_num_fields=MAX_FORM_FIELDS)
    except UnicodeDecodeError as exc:
        return f"the body is not UTF-8 text (byte {exc.start})"
    except ValueError:
        return f"the body has more than {MAX_FORM_FIELDS} form fields"
    if len(fields.get("payload", [])) != 1:
        return "expected one form field 'payload' holding a JSON object"
    return _json_object(fields["payload"][0])


def _json_object(text: str) -> dict[str, Any] | str:
    depth = deepest = 0
    for token in _JSON_TOKEN.finditer(text):
        if token.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_JSON_DEPTH:
                return f"'payload' is nested deeper than {MAX_JSON_DEPTH} levels"
        elif token.group() in "]}":
            depth -= 1
    try:
        payload = json.loads(text)
    except (ValueError, RecursionError) as exc:  # ValueError: bad JSON, or an int of over 4,300 digits
        return f"'payload' is not JSON: {str(exc)[:100]}"
    return payload if isinstance(payload, dict) else "'payload' is not a JSON object"


def _action(payload: dict[str, Any]) -> dict[str, Any] | str | None:
    """The clicked action; None for one that is not ours (no button value); a str says what is malformed."""
    actions = payload.get("actions")
    if not isinstance(actions, list) or not actions or not isinstance(actions[0], dict):
        return "block_actions without a list of action objects in 'actions'"
    action = actions[0]
    if "value" in action and not isinstance(action["value"], str):
        return "the action's 'value' is not a string"
    ids = (action.get("action_ts"), _user(payload), _message_ts(payload))
    if any(not isinstance(value, str | None) or len(value or "") > MAX_ID_CHARS for value in ids):
        return f"action_ts, user.id and the message ts must be strings of at most {MAX_ID_CHARS} characters"
    return action if "value" in action else None


def _user(payload: dict[str, Any]) -> Any:
    user = payload.get("user")
    return user.get("id") if isinstance(user, dict) else None


def _message_ts(payload: dict[str, Any]) -> Any:
    container, message = payload.get("container"), payload.get("message")
    if isinstance(container, dict) and container.get("message_ts") is not None:
        return container["message_ts"]
    return message.get("ts") if isinstance(message, dict) else None


def _handle_block_actions(site: Site, payload: dict[str, Any], action: dict[str, Any]) -> dict[str, Any]:
    """Record the clicked vote once; return what to send to response_url (updated message or a note)."""
    try:
        vote, paper_id = _record(site, action["value"], _click(payload, action))
    except BadToken as exc:
        return _ephemeral(f"That button can't be used: {exc.reason}. Use the links in a newer digest.")
    except NotFound as exc:
        return _ephemeral(f"That {exc.what} no longer exists, so the vote was not recorded.")
    return _updated_message(payload, action, vote, paper_id)


def _click(payload: dict[str, Any], action: dict[str, Any]) -> SlackClick | None:
    """The click's identity; None when Slack sent no ``action_ts`` (then nothing tells a replay apart)."""
    action_ts = action.get("action_ts")
    if not action_ts:
        return None
    user, message = _user(payload) or "", _message_ts(payload) or ""
    return SlackClick(action_ts=action_ts, user_id=user, message_ts=message, created_at=utcnow())


def _record(site: Site, value: str, click: SlackClick | None) -> tuple[str, int]:
    token = site.token(value, FEEDBACK_ACTIONS)
    try:
        paper_id = record_vote(site, token, FeedbackSource.SLACK, before=lambda s: _once(s, click)).id
    except IntegrityError:
        if click is None or not _seen(site, click):
            raise
        paper_id = token.paper_id or 0  # a replay: recorded the first time, the same answer again
    return token.action, paper_id


def _seen(site: Site, click: SlackClick) -> bool:
    with site.db.session() as session:
        query = select(SlackClick.id).where(
            SlackClick.action_ts == click.action_ts,
            SlackClick.user_id == click.user_id,
            SlackClick.message_ts == click.message_ts,
        )
        return session.scalar(query) is not None


def _once(session: Any, click: SlackClick | None) -> None:
    """Store the click in the vote's transaction: a replayed one fails its unique key, and the vote with it.
    Clicks older than the replay window cannot come back (their signature is refused), so they go."""
    if click is None:
        return
    window = dt.timedelta(seconds=2 * REPLAY_WINDOW_SECONDS)
    session.execute(delete(SlackClick).where(SlackClick.created_at < click.created_at - window))
    session.add(click)
    session.flush()


def _ephemeral(text: str) -> dict[str, Any]:
    return {"response_type": "ephemeral", "replace_original": False, "text": text}


def _updated_message(
    payload: dict[str, Any], action: dict[str, Any], vote: str, paper_id: int
) -> dict[str, Any]:
    """The original message with the clicked row marked, so the channel sees the vote took effect."""
    message = payload.get("message") if isinstance(payload.get("message"), dict) else {}
    blocks = copy.deepcopy(message.get("blocks")) if isinstance(message.get("blocks"), list) else None
    note = f"{VOTE_EMOJI[vote]} Vote recorded. Thanks! Tap the other button to change it."
    if not blocks:
        return _ephemeral(note)
    block_id = action.get("block_id")
    status_id = f"vote-status-{paper_id}"
    updated: list[Any] = []
    for block in blocks:
        if isinstance(block, dict) and block.get("block_id") == status_id:
            continue  # replaced below, after its buttons
        updated.append(block)
        if isinstance(block, dict) and block.get("block_id") == block_id and block.get("type") == "actions":
            _mark_clicked(block, action.get("action_id"))
            updated.append(
                {"type": "context", "block_id": status_id, "elements": [{"type": "mrkdwn", "text": note}]}
            )
    return {"replace_original": True, "text": message.get("text") or note, "blocks": updated}


def _mark_clicked(block: dict[str, Any], action_id: object) -> None:
    for element in block.get("elements") or []:
        if isinstance(element, dict) and element.get("type") == "button":
            element.pop("style", None)
            if element.get("action_id") == action_id:
                element["style"] = "primary"


def _post_response(url: str, body: dict[str, Any]) -> None:
    # Runs after the 200 went back to Slack, so a slow response_url cannot break the 3-second rule.
    try:
        httpx.post(url, json=body, timeout=RESPONSE_URL_TIMEOUT).raise_for_status()
    except httpx.HTTPError as exc:
        log.warning("Slack response_url update failed: %s", type(exc).__name__)  # the URL is a credential
