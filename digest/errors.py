"""Operational failures: one error family that reports itself as one line naming the setting or resource
and the cause, and the translation of what libraries raise (database, disk, network, broker) into it.

Bugs are not translated: their traceback is the report. No report holds a password or a secret: URLs are
shown with the password masked (:func:`redact`), secret settings as their length (``digest.config``).
"""

from __future__ import annotations

import errno
import re

from sqlalchemy import exc as sa_exc

# user:password@ (or :password@) right after a scheme's "//", in a URL or anywhere in a message.
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-zA-Z][\w+.-]*://)(?P<user>[^:/@\s]*):(?P<password>[^@/\s]*)@")
# Libraries whose exceptions mean "the Celery broker cannot be reached". Matched by module name, because
# Celery and its Redis/AMQP clients are an optional extra this module must not import.
_BROKER_LIBRARIES = frozenset({"kombu", "redis", "amqp"})
_SQLITE_CAUSES = {
    "unable to open database file": "cannot open the database file (does its folder exist, is it writable?)",
    "file is not a database": "the file is not a SQLite database",
    "database is locked": "the database stayed locked by another process past the busy timeout",
}
_SCHEMA_MISSING = ("no such table", "does not exist")
_ERRNO_CAUSES = {
    errno.ENOSPC: "no space left on the device (disk full)",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.ENOENT: "no such file or directory",
    errno.ENOTDIR: "a part of the path is not a folder",
    errno.EADDRINUSE: "address already in use (another process listens there)",
    errno.EADDRNOTAVAIL: "address not available on this machine",
}


class DigestError(Exception):
    """A failure the operator can act on; ``str()`` is the one line to show (already free of secrets)."""

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))


def redact(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``."""
    return _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)


def first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def explain(
    exc: BaseException, *, database_url: str | None = None, broker_url: str | None = None
) -> DigestError | None:
    """The operator's one line for a failure that comes from outside the program, or None for a bug."""
    if isinstance(exc, DigestError):
        return exc
    if isinstance(exc, sa_exc.DBAPIError) and not isinstance(exc, sa_exc.IntegrityError):
        return DigestError(f"database {database_url or '(unknown)'}: {_database_cause(exc)}")
    if isinstance(exc, sa_exc.ArgumentError | sa_exc.NoSuchModuleError):
        return DigestError(f"DIGEST_DATABASE_URL: {first_line(exc)}")
    if isinstance(exc, ModuleNotFoundError) and (exc.name or "").startswith("psycopg"):
        return DigestError(
            "DIGEST_DATABASE_URL: the PostgreSQL driver is not installed (pip install 'digest[postgres]')"
        )
    if type(exc).__module__.split(".")[0] in _BROKER_LIBRARIES:
        return DigestError(
            f"broker {broker_url or '(unknown)'} (DIGEST_CELERY_BROKER_URL): {first_line(exc)}"
        )
    if isinstance(exc, OSError):
        return DigestError(describe_os_error(exc))
    return None


def _database_cause(exc: sa_exc.DBAPIError) -> str:
    cause = first_line(exc.orig) if exc.orig is not None else first_line(exc)
    if any(marker in cause for marker in _SCHEMA_MISSING):
        return f"{cause}: the schema is not set up, run `digest db upgrade`"
    return _SQLITE_CAUSES.get(cause, cause)


def describe_os_error(exc: OSError, resource: str | None = None) -> str:
    """``<file or resource>: <cause>`` for an operating-system error."""
    cause = _ERRNO_CAUSES.get(exc.errno or -1) or exc.strerror or first_line(exc)
    where = resource or exc.filename
    return f"{where}: {cause}" if where else cause
