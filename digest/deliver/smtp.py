"""SMTP transport: one connection, opened on first use and reused for a whole batch.

Error mapping (RFC 5321 §4.2.1): a 5yz reply to a recipient or to the message is permanent, a 4yz reply
or a network failure is transient. Authentication and TLS failures are the server's configuration, not
the subscriber's fault, so they are transient too: they must never count towards disabling a channel.

A reused connection that the server closed while idle fails on the first command; that message is tried
once more on a fresh connection. A connection lost (or a reply timed out) *after the final dot* of DATA
cannot tell whether the server kept the message (RFC 1047, "Duplicate messages and SMTP"): that is
``OutcomeUnknown``, never retried, so a server that stores the message and loses its reply never gets
it twice. Before the final dot the server cannot have accepted it: that is a transient ``TransportError``.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import parseaddr
from functools import cache

from digest.config import Settings
from digest.deliver.base import OutcomeUnknown, Outgoing, Transport, TransportError
from digest.deliver.mime import wire_bytes


class _Handover:
    """Marks the moment smtplib has written DATA's final dot: from then on the server may hold the message.

    smtplib's ``data()`` writes the message and its terminating ``CRLF.CRLF`` in one ``send`` (the only
    bytes it sends; commands go as text), then reads the reply, and reports a lost connection the same way
    before and after; this flag tells the two apart."""

    handed_over = False

    def send(self, s: bytes | str) -> None:
        super().send(s)  # type: ignore[misc]
        if isinstance(s, bytes) and s.endswith(b"\r\n.\r\n"):
            self.handed_over = True


class _SMTP(_Handover, smtplib.SMTP):
    pass


class _SMTPSSL(_Handover, smtplib.SMTP_SSL):
    pass


class SmtpTransport(Transport):
    name = "smtp"

    def __init__(self, settings: Settings) -> None:
        if not settings.smtp_host:
            raise ValueError("SmtpTransport needs DIGEST_SMTP_HOST")
        self.settings = settings
        self._connection: _SMTP | _SMTPSSL | None = None
        self.connections_opened = 0

    def send(self, message: Outgoing) -> str:
        if message.email is None:
            raise TransportError("not an email message", permanent=True)
        for attempt in range(2):
            reused = self._connection is not None
            try:
                self._send(message)
                return _raw_header(message.email, "Message-ID")
            except smtplib.SMTPServerDisconnected:
                self._drop()
                # A reused connection may have been closed by the server while idle: once more, fresh.
                if not reused or attempt:
                    raise TransportError("the SMTP server closed the connection") from None
        raise AssertionError("unreachable")

    def _send(self, message: Outgoing) -> None:
        connection = self._open()
        connection.handed_over = False
        try:
            self._transfer(connection, message)
        except (smtplib.SMTPException, OSError) as exc:  # no reply: replies became TransportErrors
            if not connection.handed_over:
                raise
            self._drop()
            raise OutcomeUnknown(f"SMTP connection lost after the message was handed over: {exc}") from None

    def _transfer(self, connection: _SMTP | _SMTPSSL, message: Outgoing) -> None:
        email = message.email
        assert email is not None
        try:
            if _is_ascii(email, message.destination):
                connection.sendmail(
                    _sender(self.settings.mail_from), [message.destination], wire_bytes(email)
                )
            else:  # internationalised addresses: let smtplib negotiate SMTPUTF8 (RFC 6531)
                connection.send_message(email, to_addrs=[message.destination])
        except smtplib.SMTPServerDisconnected:
            raise
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()))
            raise _reply_error("recipient refused", code, reply) from None
        except smtplib.SMTPResponseException as exc:
            raise _reply_error("message refused", exc.smtp_code, exc.smtp_error) from None
        except (smtplib.SMTPException, OSError) as exc:
            if connection.handed_over:
                raise
            self._drop()
            raise TransportError(f"SMTP error: {exc}") from None

    def _open(self) -> _SMTP | _SMTPSSL:
        if self._connection is None:
            try:
                self._connection = self._connect()
            except smtplib.SMTPAuthenticationError as exc:
                raise TransportError(f"SMTP login refused: {exc.smtp_code} {_text(exc.smtp_error)}") from None
            except (smtplib.SMTPException, OSError) as exc:
                raise TransportError(
                    f"cannot connect to SMTP {self.settings.smtp_host}:{self.settings.smtp_port}: {exc}"
                ) from None
            self.connections_opened += 1
        return self._connection

    def _connect(self) -> _SMTP | _SMTPSSL:
        s = self.settings
        connection: _SMTP | _SMTPSSL
        if s.smtp_security == "ssl":
            connection = _SMTPSSL(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout, context=_tls_context())
        else:
            connection = _SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout)
        try:
            if s.smtp_security == "starttls":
                connection.starttls(context=_tls_context())
            if s.smtp_username and s.smtp_password:
                connection.login(s.smtp_username, s.smtp_password)
        except BaseException:
            connection.close()  # a refused STARTTLS or login must not leave the socket open
            raise
        return connection

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except OSError:
                pass

    def close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.quit()
            except (smtplib.SMTPException, OSError):
                pass
        self._drop()


@cache
def _tls_context() -> ssl.SSLContext:
    # Verifies the server's certificate and host name; loading the CA store is slow, so it is done once.
    return ssl.create_default_context()


def _raw_header(email: EmailMessage, name: str) -> str:
    """A header's value as stored: ``email[name]`` would parse it into a header object first."""
    wanted = name.lower()
    for key, value in email.raw_items():
        if key.lower() == wanted:
            return str(value)
    return ""


def _is_ascii(email: EmailMessage, destination: str) -> bool:
    return destination.isascii() and _raw_header(email, "From").isascii()


@cache
def _sender(mail_from: str) -> str:
    return parseaddr(mail_from)[1]


def _reply_error(what: str, code: int, reply: bytes | str) -> TransportError:
    return TransportError(f"{what}: {code} {_text(reply)}", permanent=500 <= code < 600)


def _text(reply: bytes | str) -> str:
    return reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
