"""The transport interface every channel implements, and the three outcomes of one send.

A send ends in exactly one of: **sent** (``send`` returns a receipt), **not sent** (``TransportError``:
the message certainly did not go out, so it may be retried; ``permanent`` says retrying cannot help), or
**unknown** (``OutcomeUnknown``: the message was handed over — SMTP's final dot, Slack's request written —
and then the connection died or timed out, so the other side may hold it). An unknown outcome is never
retried automatically: the ledger keeps the claim and lists it as stuck, with the reason.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from email.message import EmailMessage
from types import TracebackType
from typing import Any


class TransportError(Exception):
    """The message was NOT delivered. ``permanent``: retrying will not help (bad address, channel gone)."""

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent


class OutcomeUnknown(Exception):
    """The message was handed over and then the reply was lost: it may have been delivered. Never resend."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclasses.dataclass(frozen=True)
class Outgoing:
    """One rendered message for one destination. ``email`` for mail, ``slack`` (text + blocks) for Slack.

    ``key`` names the delivery (``delivery_key``); a channel that can find a message it sent earlier (a
    Slack bot reading the channel's history) carries it with the message, to settle an unknown outcome.
    """

    channel: str  # email | slack_bot | slack_webhook
    destination: str  # email address, Slack channel/member id, or webhook URL
    email: EmailMessage | None = None
    slack: dict[str, Any] | None = None
    label: str = "message"  # used in outbox file names
    key: str | None = None


def delivery_key(subscriber_id: int, digest_date: dt.date) -> str:
    """The identity of one digest delivery: the same across retries, so a copy already sent can be found."""
    return f"digest:{subscriber_id}:{digest_date.isoformat()}"


class Transport:
    """Send rendered messages; a transport may hold a connection open across many ``send`` calls."""

    name = "transport"

    def send(self, message: Outgoing) -> str:
        """Deliver one message; return a receipt (Message-ID, Slack ts, file path).

        Raises ``TransportError`` (not sent) or ``OutcomeUnknown`` (handed over, reply lost)."""
        raise NotImplementedError

    def find(self, destination: str, key: str, since: dt.datetime) -> str | None:
        """Settle an unknown outcome: the receipt of the message ``key`` if it arrived, None if it did not.

        Raises ``OutcomeUnknown`` when the channel cannot tell (mail, webhooks: no history to read)."""
        raise OutcomeUnknown(f"{self.name} keeps no history to look the message up in")

    def close(self) -> None:
        """Release any connection (idempotent)."""

    def __enter__(self) -> Transport:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
