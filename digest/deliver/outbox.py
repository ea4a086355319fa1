"""The file outbox: the embedded default when no SMTP host / Slack bot token is configured.

Mail is written as ``.eml`` (open it in any mail client), Slack as ``.json`` (the exact ``chat.postMessage``
payload). Files are written under a temporary name and renamed, so a reader never sees half a message, and
"sent" means exactly "the file is there": a rename that reports an error is checked (network file systems
can report one for a rename that happened), and a half-written temporary file is removed.
"""

from __future__ import annotations

import contextlib
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
        final, temporary = self.folder / name, self.folder / f".{name}.tmp"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            temporary.write_bytes(data)
            os.replace(temporary, final)
        except OSError as exc:
            if final.exists():
                return str(final)  # the rename happened after all
            with contextlib.suppress(OSError):
                temporary.unlink(missing_ok=True)
            raise TransportError(f"cannot write to the outbox {self.folder}: {exc}") from exc
        return str(final)


def _serialise(message: Outgoing) -> tuple[str, bytes]:
    if message.email is not None:
        return ".eml", message.email.as_bytes()
    payload = {"channel": message.destination, **(message.slack or {})}
    if message.channel == Channel.SLACK_WEBHOOK:
        payload["channel"] = "(incoming webhook)"  # the URL is a credential: keep it out of files
    return ".json", json.dumps(payload, ensure_ascii=False, indent=2).encode()


def _safe(label: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in label)[:60] or "message"
