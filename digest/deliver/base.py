"""The transport interface every channel implements, and the one error type they raise."""

from __future__ import annotations

import dataclasses
from email.message import EmailMessage
from types import TracebackType
from typing import Any


class TransportError(Exception):
    """The message was NOT delivered. ``permanent``: retrying will not help (bad address, channel gone).

    Transports raise this only when they know the message was not accepted; anything else escaping
    ``send()`` means "outcome unknown", and the ledger then keeps the claim rather than risk a duplicate.
    """

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent


@dataclasses.dataclass(frozen=True)
class Outgoing:
    """One rendered message for one destination. ``email`` for mail, ``slack`` (text + blocks) for Slack."""

    channel: str  # email | slack_bot | slack_webhook
    destination: str  # email address, Slack channel/member id, or webhook URL
    email: EmailMessage | None = None
    slack: dict[str, Any] | None = None
    label: str = "message"  # used in outbox file names


class Transport:
    """Send rendered messages; a transport may hold a connection open across many ``send`` calls."""

    name = "transport"

    def send(self, message: Outgoing) -> str:
        """Deliver one message; return a receipt (Message-ID, Slack ts, file path); raise TransportError."""
        raise NotImplementedError

    def close(self) -> None:
        """Release any connection (idempotent)."""

    def __enter__(self) -> Transport:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
