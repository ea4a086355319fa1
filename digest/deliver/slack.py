"""Slack transports: a bot token posting with ``chat.postMessage``, and incoming webhooks.

What fails becomes one of the outcomes in ``digest.deliver.base``:

* not sent, permanent: the destination is gone or refuses us (``channel_not_found``, ``is_archived``, a
  webhook's 404/410 ``no_service`` …) or the payload is invalid (``invalid_blocks``) — retrying cannot help;
* not sent, transient: the request never got out (connection refused, DNS), 5xx, rate limits that outlast
  the retries, and token problems (``invalid_auth``: the operator's configuration, never a reason to
  disable a subscriber's channel);
* unknown: the request was written and then the reply was lost (timeout, reset, closed). urllib reports a
  failure while connecting or writing as ``URLError``, and one while waiting for the reply as the bare
  socket error, which is how the two are told apart.

Only a 429 is retried inside slack-sdk (``RateLimitErrorRetryHandler``, honouring ``Retry-After`` as
Slack's "Rate limits" guide asks): Slack refused that request unprocessed. slack-sdk's
``ConnectionErrorRetryHandler`` is left out on purpose: it repeats a post after a reset that may have
come after Slack posted it, which is how one digest became two or three.

**Exactly once for the bot.** Slack has no idempotency key, so every bot post carries our delivery key in
its message ``metadata`` (docs.slack.dev "Using message metadata"). An unknown outcome is settled at once
by reading the conversation's recent history (``conversations.history`` with ``include_all_metadata``;
the bot needs the matching ``*:history`` scope, and ``im:write`` for member ids) for that key: found, it
was sent (a lost reply); not found, it was not (a lost request) and is posted once more. When the history
cannot be read, the outcome stays unknown. Webhooks have no history to read: their unknowns stay unknown.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any
from urllib.error import URLError

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler
from slack_sdk.webhook import WebhookClient

from digest.config import Settings
from digest.deliver.base import OutcomeUnknown, Outgoing, Transport, TransportError
from digest.models import utcnow

TIMEOUT_SECONDS = 30
RATE_LIMIT_RETRIES = 3
METADATA_EVENT = "digest_delivery"
# How long a post that did arrive may take to show in the history, and how far back (our clock against
# Slack's) a search starts before the send; pages of 200 messages read at most.
SETTLE_SECONDS = 2.0
CLOCK_MARGIN = dt.timedelta(minutes=5)
HISTORY_PAGES = 5
# chat.postMessage errors that no retry can fix (api.slack.com/methods/chat.postMessage#errors).
PERMANENT_API_ERRORS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "account_inactive",
        "user_not_found",
        "user_disabled",
        "cannot_dm_bot",
        "restricted_action",
        "restricted_action_read_only_channel",
        "msg_too_long",
        "no_text",
        "invalid_blocks",
        "invalid_blocks_format",
        "invalid_arguments",
        "too_many_attachments",
    }
)
# Incoming-webhook replies that mean the hook or its channel is gone or refuses the payload
# (api.slack.com/messaging/webhooks#handling_errors): 400, 403, 404 and 410.
PERMANENT_WEBHOOK_STATUSES = frozenset({400, 403, 404, 410})


def _post_retries() -> list[Any]:
    """For requests that post: only a 429 is repeated (see the module docstring)."""
    return [RateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES)]


def _read_retries() -> list[Any]:
    """For reads, which change nothing: a reset connection is tried once more, too."""
    return [ConnectionErrorRetryHandler(), *_post_retries()]


def _payload(message: Outgoing) -> dict[str, Any]:
    if not message.slack:
        raise TransportError("not a Slack message", permanent=True)
    return message.slack


class SlackBotTransport(Transport):
    name = "slack_bot"

    def __init__(self, settings: Settings) -> None:
        if not settings.slack_bot_token:
            raise ValueError("SlackBotTransport needs DIGEST_SLACK_BOT_TOKEN")
        options = {"token": settings.slack_bot_token, "base_url": settings.slack_api_url}
        self.client = WebClient(**options, timeout=TIMEOUT_SECONDS, retry_handlers=_post_retries())
        self.reader = WebClient(**options, timeout=TIMEOUT_SECONDS, retry_handlers=_read_retries())
        self.settle_seconds = SETTLE_SECONDS

    def send(self, message: Outgoing) -> str:
        payload, since = _payload(message), utcnow()
        for posts in (1, 2):
            try:
                return self._post(message, payload)
            except OutcomeUnknown:
                if message.key is None:
                    raise
                time.sleep(self.settle_seconds)  # a post that did arrive shows in the history by then
                found = self.find(message.destination, message.key, since)
                if found is not None:
                    return found  # the reply was lost, not the post
                if posts == 2:
                    raise  # not found after two lost replies: leave it to the operator
        raise AssertionError("unreachable")

    def _post(self, message: Outgoing, payload: dict[str, Any]) -> str:
        try:
            response = self.client.chat_postMessage(
                channel=message.destination,
                text=payload["text"],
                blocks=payload["blocks"],
                unfurl_links=False,  # ten paper links would unfurl into ten previews
                unfurl_media=False,
                metadata=_metadata(message.key) if message.key else None,
            )
        except SlackApiError as exc:
            raise _api_error(exc) from None
        except (URLError, SlackClientError, ValueError) as exc:  # before or while writing the request
            raise TransportError(f"Slack API unreachable: {_reason(exc)}") from None
        except OSError as exc:
            raise OutcomeUnknown(
                f"Slack chat.postMessage: no reply after the request was sent ({exc!r})"
            ) from None
        return str(response.get("ts") or "")

    def find(self, destination: str, key: str, since: dt.datetime) -> str | None:
        """The ts of our message ``key`` in the conversation since ``since``; None if it is not there."""
        try:
            channel = self._conversation(destination)
            return self._search(channel, key, since)
        except SlackApiError as exc:
            error = exc.response.data.get("error") if isinstance(exc.response.data, dict) else None
            problem = error or f"HTTP {exc.response.status_code}"
        except (SlackClientError, OSError, ValueError) as exc:
            problem = _reason(exc)
        raise OutcomeUnknown(f"cannot read the Slack history to settle it: {problem}")

    def _conversation(self, destination: str) -> str:
        # A member id (U…/W…) is posted to in the bot's direct-message conversation, whose id differs.
        if not destination.startswith(("U", "W")):
            return destination
        return str(self.reader.conversations_open(users=destination)["channel"]["id"])

    def _search(self, channel: str, key: str, since: dt.datetime) -> str | None:
        oldest = f"{(since - CLOCK_MARGIN).replace(tzinfo=dt.UTC).timestamp():.6f}"
        cursor = None
        for _ in range(HISTORY_PAGES):
            page = self.reader.conversations_history(
                channel=channel, oldest=oldest, include_all_metadata=True, limit=200, cursor=cursor
            )
            for item in page.get("messages") or []:
                if _carries(item, key):
                    return str(item.get("ts") or "")
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not page.get("has_more") or not cursor:
                return None
        raise OutcomeUnknown(f"over {HISTORY_PAGES * 200} messages since the send; not all searched")


def _metadata(key: str) -> dict[str, Any]:
    return {"event_type": METADATA_EVENT, "event_payload": {"key": key}}


def _carries(item: Any, key: str) -> bool:
    metadata = item.get("metadata") if isinstance(item, dict) else None
    if not isinstance(metadata, dict) or metadata.get("event_type") != METADATA_EVENT:
        return False
    payload = metadata.get("event_payload")
    return isinstance(payload, dict) and payload.get("key") == key


def _reason(exc: Exception) -> str:
    return str(exc.reason) if isinstance(exc, URLError) else str(exc) or type(exc).__name__


def _api_error(exc: SlackApiError) -> TransportError:
    status = exc.response.status_code
    data = exc.response.data if isinstance(exc.response.data, dict) else {}
    error = str(data.get("error") or f"HTTP {status}")
    permanent = status < 500 and status != 429 and error in PERMANENT_API_ERRORS
    return TransportError(f"Slack chat.postMessage failed: {error} (HTTP {status})", permanent=permanent)


class SlackWebhookTransport(Transport):
    """Incoming webhooks: the URL is the destination and the credential; each subscriber has their own."""

    name = "slack_webhook"

    def send(self, message: Outgoing) -> str:
        payload = _payload(message)
        client = WebhookClient(message.destination, timeout=TIMEOUT_SECONDS, retry_handlers=_post_retries())
        try:
            response = client.send(
                text=payload["text"], blocks=payload["blocks"], unfurl_links=False, unfurl_media=False
            )
        except (URLError, SlackClientError, ValueError) as exc:  # before or while writing the request
            raise TransportError(f"Slack webhook unreachable: {_reason(exc)}") from None
        except OSError as exc:  # a webhook has no history to look in: this stays unknown
            raise OutcomeUnknown(f"Slack webhook: no reply after the request was sent ({exc!r})") from None
        if response.status_code == 200:
            return f"webhook:{response.body}"
        raise TransportError(
            f"Slack webhook refused the message: HTTP {response.status_code} {response.body[:200]}",
            permanent=response.status_code in PERMANENT_WEBHOOK_STATUSES,
        )
