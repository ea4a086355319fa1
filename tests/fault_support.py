"""Servers that misbehave on purpose, for the fault suite (tests/faults/): an SMTP server on loopback that
stores a message and then drops the connection, answers late, or refuses with 451/550.

A raw asyncio server rather than aiosmtpd: the faults sit between the protocol steps (after the final
dot, before the reply), where aiosmtpd's handlers give no hold. It speaks just enough SMTP for smtplib.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from common import TEST_SECRET

# What the server does with one message, chosen per (recipient, how many times it was offered before):
OK = "ok"  # store, answer 250
DROP_AFTER_DATA = "drop_after_data"  # store, then close the connection without a reply
LATE = "late"  # store, answer 250 after ``late_seconds`` (past the client's timeout)
DROP_BEFORE_DATA = "drop_before_data"  # close the connection on DATA: nothing stored
BUSY = "451"  # refuse the recipient for now: nothing stored
REFUSED = "550"  # refuse the recipient for good: nothing stored
DATA_451 = "data_451"  # take the data, then refuse it with 451: nothing stored

Script = Callable[[str, int], str]


def always(fault: str) -> Script:
    return lambda recipient, attempt: fault


def first_time(fault: str) -> Script:
    """``fault`` on a recipient's first offer, then OK: a network blip."""
    return lambda recipient, attempt: fault if attempt == 0 else OK


@dataclasses.dataclass
class FaultySmtp:
    host: str
    port: int
    script: Script
    late_seconds: float = 2.0
    stored: list[tuple[str, EmailMessage]] = dataclasses.field(default_factory=list)
    offered: Counter[str] = dataclasses.field(default_factory=Counter)
    connections: int = 0

    def received(self) -> Counter[str]:
        """Messages stored, per recipient."""
        return Counter(recipient for recipient, _ in self.stored)


class _Session:
    def __init__(self, server: FaultySmtp, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.server, self.reader, self.writer = server, reader, writer
        self.recipients: list[str] = []
        self.faults: dict[str, str] = {}

    async def reply(self, line: str) -> None:
        self.writer.write(line.encode() + b"\r\n")
        await self.writer.drain()

    async def run(self) -> None:
        await self.reply("220 faulty ESMTP")
        while line := await self.reader.readline():
            verb = line.decode(errors="replace").strip().split(" ", 1)[0].upper()
            if not await self.command(verb, line.decode(errors="replace").strip()):
                return

    async def command(self, verb: str, line: str) -> bool:
        if verb in ("EHLO", "HELO"):
            await self.reply("250-faulty\r\n250 8BITMIME" if verb == "EHLO" else "250 faulty")
        elif verb == "MAIL":
            self.recipients, self.faults = [], {}
            await self.reply("250 OK")
        elif verb == "RCPT":
            await self.rcpt(line.split(":", 1)[1].strip().strip("<>").split(">")[0])
        elif verb == "DATA":
            return await self.data()
        elif verb == "QUIT":
            await self.reply("221 bye")
            return False
        else:  # RSET, NOOP
            await self.reply("250 OK")
        return True

    async def rcpt(self, recipient: str) -> None:
        fault = self.server.script(recipient, self.server.offered[recipient])
        self.server.offered[recipient] += 1
        if fault == BUSY:
            await self.reply("451 4.3.0 try again later")
        elif fault == REFUSED:
            await self.reply("550 5.1.1 mailbox unavailable")
        else:
            self.recipients.append(recipient)
            self.faults[recipient] = fault
            await self.reply("250 OK")

    async def data(self) -> bool:
        faults = set(self.faults.values())
        if DROP_BEFORE_DATA in faults:
            return self.drop()
        await self.reply("354 end with <CRLF>.<CRLF>")
        lines = []
        while (line := await self.reader.readline()) not in (b".\r\n", b""):
            lines.append(line[1:] if line.startswith(b"..") else line)
        if DATA_451 in faults:
            await self.reply("451 4.3.0 local error, try again")
            return True
        message = message_from_bytes(b"".join(lines), policy=policy.default)
        self.server.stored.extend((recipient, message) for recipient in self.recipients)  # type: ignore[misc]
        if DROP_AFTER_DATA in faults:
            return self.drop()
        if LATE in faults:
            await asyncio.sleep(self.server.late_seconds)
        await self.reply("250 2.0.0 queued")
        return True

    def drop(self) -> bool:
        self.writer.transport.abort()
        return False


@contextmanager
def faulty_smtp(script: Script, late_seconds: float = 2.0) -> Iterator[FaultySmtp]:
    """Run the server on 127.0.0.1 (a free port) in a thread for the duration of the block."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    state: dict[str, object] = {}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server = state["server"]
        assert isinstance(server, FaultySmtp)
        server.connections += 1
        try:
            await _Session(server, reader, writer).run()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # the client went away, or the server is stopping
        finally:
            writer.transport.abort()

    async def start() -> None:
        listener = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        state["server"] = FaultySmtp("127.0.0.1", port, script, late_seconds)
        state["listener"] = listener
        started.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop)
    assert started.wait(10), "the fault SMTP server did not start"
    try:
        server = state["server"]
        assert isinstance(server, FaultySmtp)
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(_stop(state["listener"]), loop).result(10)  # type: ignore[arg-type]
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


async def _stop(listener: asyncio.Server) -> None:
    listener.close()
    current = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks() if task is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def smtp_environment(data_dir: Path, server: FaultySmtp, timeout: int | None = None) -> dict[str, str]:
    """The settings a ``digest`` process needs to send through ``server`` (its environment)."""
    return {
        "DIGEST_DATA_DIR": str(data_dir),
        "DIGEST_SECRET_KEY": TEST_SECRET,
        "DIGEST_BASE_URL": "http://digest.test",  # real mail is refused while links would be guessed
        "DIGEST_SMTP_HOST": server.host,
        "DIGEST_SMTP_PORT": str(server.port),
        "DIGEST_SMTP_SECURITY": "none",
    } | ({"DIGEST_SMTP_TIMEOUT": str(timeout)} if timeout is not None else {})
