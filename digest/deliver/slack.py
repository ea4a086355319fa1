"""Slack transports: a bot token posting with ``chat.postMessage``, and incoming webhooks.

Both go through slack-sdk with its ``RateLimitErrorRetryHandler``: an HTTP 429 is retried after the
``Retry-After`` seconds Slack sends (Slack's "Rate limits" guide asks clients to honour that header), a
reset connection once more. What still fails becomes a :class:`TransportError`:

* permanent: the destination is gone or refuses us (``channel_not_found``, ``is_archived``, a webhook's
  404/410 ``no_service`` …) or the payload is invalid (``invalid_blocks``) — retrying cannot help;
* transient: 5xx, rate limits that outlast the retries, network errors, and token problems
  (``invalid_auth``: the operator's configuration, never a reason to disable a subscriber's channel).

Slack has no idempotency key for ``chat.postMessage``: a request that timed out may still have posted.
The delivery ledger (``digest.deliver.ledger``) therefore claims before sending and never resends a
claim whose outcome is unknown.
"""

from __future__ import annotations

from typing import Any
from urllib.error import URLError

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler
from slack_sdk.webhook import WebhookClient

from digest.config import Settings
from digest.deliver.base import Outgoing, Transport, TransportError

TIMEOUT_SECONDS = 30
RATE_LIMIT_RETRIES = 3
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


def _retry_handlers() -> list[Any]:
    return [ConnectionErrorRetryHandler(), RateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES)]


def _payload(message: Outgoing) -> dict[str, Any]:
    if not message.slack:
        raise TransportError("not a Slack message", permanent=True)
    return message.slack


class SlackBotTransport(Transport):
    name = "slack_bot"

    def __init__(self, settings: Settings) -> None:
        if not settings.slack_bot_token:
            raise ValueError("SlackBotTransport needs DIGEST_SLACK_BOT_TOKEN")
        self.client = WebClient(
            token=settings.slack_bot_token,
            base_url=settings.slack_api_url,
            timeout=TIMEOUT_SECONDS,
            retry_handlers=_retry_handlers(),
        )

    def send(self, message: Outgoing) -> str:
        payload = _payload(message)
        try:
            response = self.client.chat_postMessage(
                channel=message.destination,
                text=payload["text"],
                blocks=payload["blocks"],
                unfurl_links=False,  # ten paper links would unfurl into ten previews
                unfurl_media=False,
            )
        except SlackApiError as exc:
            raise _api_error(exc) from None
        except (SlackClientError, URLError, OSError, ValueError) as exc:
            raise TransportError(f"Slack API unreachable: {exc}") from None
        return str(response.get("ts") or "")


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
        client = WebhookClient(message.destination, timeout=TIMEOUT_SECONDS, retry_handlers=_retry_handlers())
        try:
            response = client.send(
                text=payload["text"], blocks=payload["blocks"], unfurl_links=False, unfurl_media=False
            )
        except (SlackClientError, URLError, OSError, ValueError) as exc:
            raise TransportError(f"Slack webhook unreachable: {exc}") from None
        if response.status_code == 200:
            return f"webhook:{response.body}"
        raise TransportError(
            f"Slack webhook refused the message: HTTP {response.status_code} {response.body[:200]}",
            permanent=response.status_code in PERMANENT_WEBHOOK_STATUSES,
        )
