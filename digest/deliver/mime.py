"""The MIME email: rendered content as a multipart/alternative message, and that message's SMTP wire form."""

from __future__ import annotations

import binascii
import datetime as dt
import re
import secrets
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from functools import cache

from digest.config import Settings
from digest.render import EmailContent

# Header lines may run to 998 characters (RFC 5322 §2.1.1). With the default 78, a long
# List-Unsubscribe URL, which has no space to fold at, would be RFC 2047-encoded and unusable.
MAIL_POLICY = policy.default.clone(max_line_length=998)


def email_message(
    settings: Settings,
    to: str,
    content: EmailContent,
    headers: dict[str, str] | None = None,
    *,
    now: dt.datetime | None = None,
) -> EmailMessage:
    """multipart/alternative: the text part first, the HTML last (RFC 2046 §5.1.4: last is preferred)."""
    message = EmailMessage(policy=MAIL_POLICY)
    _set(message, "Subject", content.subject)
    _set(message, "From", settings.mail_from)
    _set(message, "To", to)
    message.set_raw("Date", format_datetime((now or dt.datetime.now(dt.UTC)).replace(tzinfo=dt.UTC)))
    # The domain of our own From address, not the host name: it says who made the id and leaks nothing.
    message.set_raw("Message-ID", make_msgid(domain=mail_domain(settings.mail_from)))
    for name, value in (headers or {}).items():
        _set(message, name, value)
    message.set_raw("MIME-Version", "1.0")
    # Quoted-printable text never contains "=_" (QP writes "=" as "=3D"), so this boundary cannot clash.
    message.set_raw("Content-Type", f'multipart/alternative; boundary="=_digest_{secrets.token_hex(12)}"')
    message.set_payload([_text_part("plain", content.text), _text_part("html", content.html)])
    return message


def _set(message: EmailMessage, name: str, value: str) -> None:
    """One-line ASCII is stored as is (without CR/LF it cannot inject a header); the rest is parsed as usual.

    A shortcut because header parsing is most of what a message built the stdlib way costs (bench_send).
    """
    if value.isascii() and "\r" not in value and "\n" not in value and len(value) < 990 - len(name):
        message.set_raw(name, value)
    else:
        message[name] = value


def _text_part(subtype: str, body: str) -> EmailMessage:
    # Quoted-printable keeps lines short and 7-bit (no 8BITMIME needed). binascii's C encoder, not
    # set_content(), whose pure-Python encoder costs more than the send goal allows (bench_send prints both).
    # Fed LF (given CRLF it counts the CR in the 76-character limit); its line ends become CRLF (RFC 5322).
    data = body.encode("utf-8").replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    part = EmailMessage(policy=MAIL_POLICY)
    part.set_raw("Content-Type", f'text/{subtype}; charset="utf-8"')
    part.set_raw("Content-Transfer-Encoding", "quoted-printable")
    part.set_payload(binascii.b2a_qp(data, istext=True).replace(b"\n", b"\r\n").decode("ascii"))
    return part


@cache
def mail_domain(mail_from: str) -> str:
    address = parseaddr(mail_from)[1]
    try:
        return Address(addr_spec=address).domain or "localhost"
    except (ValueError, IndexError):
        return "localhost"


def unsubscribe_headers(unsubscribe_url: str) -> dict[str, str]:
    """RFC 2369 List-Unsubscribe + RFC 8058 one-click: mail clients show an "Unsubscribe" button that POSTs
    ``List-Unsubscribe=One-Click`` to the URL (the web app accepts that POST; its GET only shows a page)."""
    return {
        "List-Unsubscribe": f"<{unsubscribe_url}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        # RFC 3834 §5: marks the mail as machine-generated so auto-responders stay quiet.
        "Auto-Submitted": "auto-generated",
    }


WIRE_POLICY = MAIL_POLICY.clone(linesep="\r\n")
# The boundary as email_message() writes it: read here, it spares get_boundary()'s Content-Type parse.
_BOUNDARY = re.compile(r'^multipart/[a-z]+; boundary="([A-Za-z0-9=_.-]+)"$')


def wire_bytes(message: EmailMessage) -> bytes:
    """``message.as_bytes(policy=WIRE_POLICY)``: the SMTP wire form (CRLF).

    Hand-made for the messages :func:`email_message` builds, as the stdlib generator's per-line writes cost
    more than the send goal allows (bench_send prints both); any other message goes through the generator.
    """
    content_type = next((str(v) for k, v in message.raw_items() if k.lower() == "content-type"), "")
    found = _BOUNDARY.match(content_type)
    parts = message.get_payload() if found and message.preamble is None and message.epilogue is None else []
    bodies = [_in_wire_form(part.get_payload()) for part in parts]
    if not found or not parts or None in bodies:
        return message.as_bytes(policy=WIRE_POLICY)
    chunks = [_head(part) + body for part, body in zip(parts, bodies, strict=True)]
    b = found.group(1).encode("ascii")
    # The CRLF before "--boundary" belongs to the delimiter, not to the part before it (RFC 2046 §5.1.1).
    return b"".join(
        [_head(message), b"--%s\r\n" % b, (b"\r\n--%s\r\n" % b).join(chunks), b"\r\n--%s--\r\n" % b]
    )


def _head(message: EmailMessage) -> bytes:
    """The folded header lines and the blank line after them."""
    lines = [WIRE_POLICY.fold(name, value) for name, value in message.raw_items()]
    return ("".join(lines) + "\r\n").encode("ascii")


def _in_wire_form(body: object) -> bytes | None:
    """The body if 7-bit with CRLF line ends only as :func:`_text_part` writes it (the generator keeps it)."""
    if not isinstance(body, str) or not body.isascii():
        return None
    data = body.encode("ascii")
    return data if data.count(b"\r") == data.count(b"\n") == data.count(b"\r\n") else None
