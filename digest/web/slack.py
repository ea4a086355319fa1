"""Slack interactivity: the 👍/👎 buttons of a Slack digest post here (``POST /slack/actions``).

Slack's rules (docs.slack.dev "Verifying requests from Slack" and "Handling user interaction"):
every request is signed with the app's signing secret over ``v0:<timestamp>:<raw body>``, and one older
than five minutes is a possible replay; the app must answer 200 within 3 seconds, and changes the message
afterwards by POSTing to the ``response_url`` it was given. The button value is our own signed token,
so a vote still needs a link token we issued, whoever can talk to this endpoint.
"""

from __future__ import annotations

import copy
import json
import logging
from typing import Annotated, Any
from urllib.parse import parse_qs

import httpx
from fastapi import APIRouter, BackgroundTasks, Header, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from slack_sdk.signature import SignatureVerifier

from digest.models import FeedbackSource
from digest.signing import FEEDBACK_ACTIONS, BadToken
from digest.web.feedback import record_vote
from digest.web.site import NotFound, Site, site_of

log = logging.getLogger(__name__)
router = APIRouter()
VOTE_EMOJI = {"up": "👍", "down": "👎"}
RESPONSE_URL_TIMEOUT = 10.0
FORM_BODY = {
    "requestBody": {
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {"type": "object", "properties": {"payload": {"type": "string"}}}
            }
        }
    }
}


def signature_ok(secret: str | None, body: bytes, timestamp: str | None, signature: str | None) -> bool:
    """Slack's v0 HMAC over the raw body, within the 5-minute window; False for anything missing or odd."""
    if not secret or not secret.strip() or not timestamp or not signature:
        return False
    if not timestamp.isascii() or not timestamp.strip().isdigit():
        return False  # slack-sdk would raise on int(); a non-numeric timestamp is simply not Slack
    return SignatureVerifier(secret).is_valid(body=body, timestamp=timestamp, signature=signature)


@router.post("/slack/actions", summary="Slack button clicks (signed by Slack)", openapi_extra=FORM_BODY)
async def slack_actions(
    request: Request,
    background: BackgroundTasks,
    x_slack_request_timestamp: Annotated[str | None, Header()] = None,
    x_slack_signature: Annotated[str | None, Header()] = None,
) -> Response:
    site = site_of(request)
    body = await request.body()  # the raw bytes: the signature covers them exactly as sent
    secret = site.settings.slack_signing_secret
    if not signature_ok(secret, body, x_slack_request_timestamp, x_slack_signature):
        return JSONResponse({"error": "invalid or missing Slack signature"}, status_code=401)
    payload = _payload(body)
    if payload is None:
        problem = "expected a form field 'payload' holding a JSON object"
        return JSONResponse({"error": problem}, status_code=400)
    if payload.get("type") != "block_actions":
        return Response(status_code=200)  # other interaction types are not ours to handle
    reply = await run_in_threadpool(_handle_block_actions, site, payload)
    response_url = payload.get("response_url")
    if (
        reply is not None
        and isinstance(response_url, str)
        and response_url.startswith(("https://", "http://"))
    ):
        background.add_task(_post_response, response_url, reply)
    return Response(status_code=200)


def _payload(body: bytes) -> dict[str, Any] | None:
    try:
        fields = parse_qs(body.decode("utf-8"), strict_parsing=False)
        payload = json.loads(fields["payload"][0])
    except (UnicodeDecodeError, KeyError, IndexError, ValueError):
        return None
    return payload if isinstance(payload, dict) else None


def _handle_block_actions(site: Site, payload: dict[str, Any]) -> dict[str, Any] | None:
    """Record the clicked vote; return what to send to response_url (updated message or an ephemeral note)."""
    actions = payload.get("actions")
    action = actions[0] if isinstance(actions, list) and actions and isinstance(actions[0], dict) else None
    if action is None or not isinstance(action.get("value"), str):
        return None
    try:
        vote, paper_id = _record(site, action["value"])
    except BadToken as exc:
        return _ephemeral(f"That button can't be used: {exc.reason}. Use the links in a newer digest.")
    except NotFound as exc:
        return _ephemeral(f"That {exc.what} no longer exists, so the vote was not recorded.")
    return _updated_message(payload, action, vote, paper_id)


def _record(site: Site, value: str) -> tuple[str, int]:
    token = site.token(value, FEEDBACK_ACTIONS)
    paper = record_vote(site, token, FeedbackSource.SLACK)
    return token.action, paper.id


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
