"""The file outbox: the embedded default when no SMTP host / Slack bot token is configured.

Mail is written as ``.eml`` (open it in any mail client), Slack as ``.json`` (the exact ``chat.postMessage``
payload). Files are written under a temporary name and renamed, so a reader never sees half a message.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

from digest.deliver.base import Outgoing, Transport, TransportError
from digest.models import Channel, utcnow


class OutboxTransport(Transport):
    name = "outbox"

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def send(self, message: Outgoing) -> str:
        suffix, data = _serialise(message)
        name = f"{utcnow():%Y%m%dT%H%M%S}-{_safe(message.label)}-{uuid.uuid4().hex[:8]}{suffix}"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            temporary = self.folder / f".{name}.tmp"
            temporary.write_bytes(data)
            os.replace(temporary, self.folder / name)
        except OSError as exc:
            raise TransportError(f"cannot write to the outbox {self.folder}: {exc}") from exc
        return str(self.folder / name)


def _serialise(message: Outgoing) -> tuple[str, bytes]:
    if message.email is not None:
        return ".eml", message.email.as_bytes()
    payload = {"channel": message.destination, **(message.slack or {})}
    if message.channel == Channel.SLACK_WEBHOOK:
        payload["channel"] = "(incoming webhook)"  # the URL is a credential: keep it out of files
    return ".json", json.dumps(payload, ensure_ascii=False, indent=2).encode()


def _safe(label: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in label)[:60] or "message"
