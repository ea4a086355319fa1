"""Shared by the delivery tests: papers in the database, and real local servers (SMTP and Slack Web API).

Only the network edge is replaced: an aiosmtpd server on 127.0.0.1 and an ``http.server`` that answers
like Slack's Web API / incoming webhooks, both on free ports.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from digest.models import Paper

NOW = dt.datetime(2025, 6, 30, 6, 0)
DAY = dt.date(2025, 6, 30)

PAPERS = [
    (
        "2506.00001",
        "Diffusion models for fast text to speech synthesis",
        "We train a diffusion model that turns text into natural speech in a few denoising steps.",
        ["Ada Lovelace", "Alan Turing", "Grace Hopper", "Edsger Dijkstra"],
    ),
    (
        "2506.00002",
        "Retrieval augmented generation with dense passage retrieval",
        "Dense retrieval of passages grounds a language model's answers in a document corpus.",
        ["Barbara Liskov"],
    ),
    (
        "2506.00003",
        "Video diffusion with temporal attention",
        "A video diffusion model with temporal attention layers produces coherent motion across frames.",
        ["Claude Shannon", "John von Neumann"],
    ),
    (
        None,
        "Robot grasping from tactile feedback",
        "A robot arm learns to grasp fragile objects from tactile sensor feedback.",
        [],
    ),
    (
        "2506.00005",
        "Image diffusion distillation for one-step sampling",
        "We distil an image diffusion model into a one-step generator that keeps sample quality.",
        ["Katherine Johnson", "Dorothy Vaughan", "Mary Jackson"],
    ),
]


def add_papers(
    session: Any, papers: list[tuple[Any, ...]] = PAPERS, *, seen: dt.datetime = NOW
) -> list[Paper]:
    rows = []
    for arxiv_id, title, abstract, authors in papers:
        key = f"arxiv:{arxiv_id}" if arxiv_id else f"title:{title.lower()}"
        rows.append(
            Paper(
                key=key,
                arxiv_id=arxiv_id,
                title_key=title.lower(),
                title=title,
                abstract=abstract,
                authors=authors,
                first_seen_at=seen - dt.timedelta(hours=1),
            )
        )
    session.add_all(rows)
    session.flush()
    return rows


# --- SMTP -------------------------------------------------------------------------------------------------


class RecordingHandler:
    """Keeps every accepted message; refuses recipients starting with ``bounce`` (550) or ``busy`` (451)."""

    def __init__(self) -> None:
        self.messages: list[tuple[Envelope, EmailMessage]] = []
        self.connections = 0
        self.encrypted: list[bool] = []  # per accepted message: did it arrive over TLS?
        self.logins: list[tuple[str, str]] = []

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.startswith("bounce"):
            return "550 5.1.1 mailbox unavailable"
        if address.startswith("busy"):
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        parsed = message_from_bytes(envelope.content, policy=policy.default)  # type: ignore[arg-type]
        self.messages.append((envelope, parsed))  # type: ignore[arg-type]
        self.encrypted.append(server.transport.get_extra_info("ssl_object") is not None)
        return "250 Message accepted"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        """aiosmtpd's ``authenticator``: accepts ada / s3cret (LOGIN or PLAIN)."""
        if isinstance(data, LoginPassword):
            self.logins.append((data.login.decode(), data.password.decode()))
            ok = data.login == b"ada" and data.password == b"s3cret"
            return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd sends the 535
        return AuthResult(success=False, handled=False)


@dataclasses.dataclass
class SmtpServer:
    host: str
    port: int
    handler: RecordingHandler

    @property
    def messages(self) -> list[EmailMessage]:
        return [message for _, message in self.handler.messages]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running_smtp_server(**options: Any) -> Iterator[SmtpServer]:
    """aiosmtpd on 127.0.0.1; ``options`` go to its Controller (tls_context, ssl_context, authenticator…)."""
    handler = RecordingHandler()
    port = free_port()  # aiosmtpd's Controller connects to its own port to check start-up, so not 0
    controller = Controller(handler, hostname="127.0.0.1", port=port, **options)
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", port, handler)
    finally:
        controller.stop()


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    with running_smtp_server() as server:
        yield server


@dataclasses.dataclass(frozen=True)
class Certificate:
    """A self-signed certificate for 127.0.0.1, made for the test run, and the contexts that use it."""

    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        """Verifies the server exactly as the transport's default context does, trusting only this cert."""
        return ssl.create_default_context(cafile=str(self.cert))


@pytest.fixture(scope="session")
def tls_certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    # The openssl command line rather than the `cryptography` package, which is not a dependency.
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is not installed: no certificate for the TLS tests")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        + ["-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )
    return Certificate(cert, key)


# --- Slack ------------------------------------------------------------------------------------------------

# Faults a scripted reply can carry: the request is recorded (and a post stored) first, then the reply is
STALL = "stall"  # held back past the client's timeout
RESET = "reset"  # replaced by a TCP reset
DROP = "drop"  # replaced by closing the connection


@dataclasses.dataclass
class Reply:
    status: int = 200
    body: Any = dataclasses.field(default_factory=lambda: {"ok": True, "ts": "1719730000.000100"})
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    fault: str | None = None  # STALL, RESET or DROP: the reply is lost…
    takes_effect: bool = True  # …after the post was stored (False: the request itself was lost)


@dataclasses.dataclass
class Posted:
    """A message the server accepted, as ``conversations.history`` lists it."""

    channel: str
    ts: str
    text: str
    metadata: dict[str, Any] | None


class SlackServer:
    """Answers like Slack's Web API and incoming webhooks: records every request, stores what was posted.

    Replies come from the queue ``replies`` (then ``default``). A post whose reply is ``ok`` is stored in
    its channel even when the reply then stalls, resets or is dropped, as Slack would have it; a
    ``conversations.history`` call lists the stored posts, newest first, with their metadata when asked.
    """

    def __init__(self, stall_seconds: float = 3.0) -> None:
        self.requests: list[dict[str, Any]] = []
        self.replies: list[Reply] = []
        self.default = Reply()
        self.history_replies: list[Reply] = []  # scripted conversations.history answers, before the real one
        self.posted: list[Posted] = []
        self.stall_seconds = stall_seconds
        self._lock = threading.Lock()
        self._clock = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode()
                reply = server.record(self.path, dict(self.headers), raw)
                if reply.fault == STALL:
                    time.sleep(server.stall_seconds)
                elif reply.fault in (RESET, DROP):
                    if reply.fault == RESET:  # SO_LINGER 0: close() sends RST instead of FIN
                        self.connection.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                        )
                    self.connection.close()
                    self.close_connection = True
                    return
                body = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(body.encode())))
                    self.end_headers()
                    self.wfile.write(body.encode())
                except OSError:  # the client gave up waiting (a stalled reply)
                    self.close_connection = True

            do_GET = do_POST  # noqa: N815 (slack-sdk posts every method, but GET works as well)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def record(self, path: str, headers: dict[str, str], raw: str) -> Reply:
        with self._lock:
            request = {"path": path, "headers": headers, "json": _json(raw)}
            self.requests.append(request)
            if path.endswith("/conversations.history"):
                return self._history(request["json"])
            if path.endswith("/conversations.open"):
                users = str((request["json"] or {}).get("users", ""))
                return Reply(200, {"ok": True, "channel": {"id": _conversation(users)}})
            reply = self.replies.pop(0) if self.replies else self.default
            self._store(path, request["json"], reply)
            return reply

    @property
    def posts(self) -> list[dict[str, Any]]:
        """The bodies of every chat.postMessage and webhook request (answered or not)."""
        reads = ("/conversations.history", "/conversations.open")
        return [r["json"] for r in self.requests if not r["path"].endswith(reads)]

    def _store(self, path: str, body: Any, reply: Reply) -> None:
        accepted = reply.status == 200 and (
            reply.body == "ok" or (isinstance(reply.body, dict) and reply.body.get("ok"))
        )
        if not accepted or not reply.takes_effect or not isinstance(body, dict):
            return
        self._clock = max(self._clock + 1, int(time.time() * 1e6))
        ts = reply.body.get("ts") if isinstance(reply.body, dict) and reply.fault is None else None
        channel = _conversation(str(body.get("channel") or path))
        metadata = body.get("metadata") if isinstance(body.get("metadata"), dict) else None
        self.posted.append(
            Posted(channel, ts or f"{self._clock / 1e6:.6f}", str(body.get("text", "")), metadata)
        )

    def _history(self, query: Any) -> Reply:
        if self.history_replies:
            return self.history_replies.pop(0)
        query = query if isinstance(query, dict) else {}
        with_metadata = str(query.get("include_all_metadata", "")).lower() in ("1", "true")
        messages = [
            {"type": "message", "ts": post.ts, "text": post.text}
            | ({"metadata": post.metadata} if with_metadata and post.metadata else {})
            for post in reversed(self.posted)
            if post.channel == query.get("channel")
        ]
        return Reply(200, {"ok": True, "messages": messages, "has_more": False})


def _conversation(channel: str) -> str:
    """Posting to a member id (U…/W…) lands in the bot's direct-message conversation with them (D…)."""
    return "D" + channel[1:] if channel.startswith(("U", "W")) else channel


def _json(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        form = parse_qs(raw)
        return {key: values[-1] for key, values in form.items()} if form else {"raw": raw}


@pytest.fixture
def slack_server() -> Iterator[SlackServer]:
    with running_slack_server() as server:
        yield server


@contextmanager
def running_slack_server(stall_seconds: float = 3.0) -> Iterator[SlackServer]:
    server = SlackServer(stall_seconds)
    server.thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
