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
    """Plain one-line ASCII is stored as is; anything else goes through the stdlib's header parsing.

    Parsing and refolding headers is the slowest step of building and sending a message (the benchmark
    shows it); a one-line ASCII value needs neither, and without CR/LF it cannot inject a header. Non-ASCII
    text (a title in the subject, a Unicode address) is parsed and RFC 2047/6532-encoded as usual.
    """
    if value.isascii() and "\r" not in value and "\n" not in value and len(value) < 990 - len(name):
        message.set_raw(name, value)
    else:
        message[name] = value


def _text_part(subtype: str, body: str) -> EmailMessage:
    # quoted-printable keeps body lines short and 7-bit whatever the relay supports (no 8BITMIME needed);
    # binascii's C encoder is ~20x faster than email.quoprimime. It is fed LF line ends (given CRLF it
    # counts the CR in the 76-character limit), and its output's line ends become CRLF (RFC 5322 §2.3),
    # so the payload is already in wire form (the stdlib generator still writes it with whatever line
    # ending its policy asks for).
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


def wire_bytes(message: EmailMessage) -> bytes:
    """The SMTP wire form (CRLF) of a message built by :func:`email_message`.

    Same bytes as ``message.as_bytes(policy=WIRE_POLICY)`` would give, without the stdlib generator's
    per-line writes, which cost more than rendering the digest (see ``benchmarks/bench_send.py``), and
    without the header parsing that ``get_boundary()`` and ``get_payload()`` do on every call.
    """
    head, content_type = _header_block(message)
    chunks = [head]
    if message.is_multipart():
        found = _BOUNDARY.search(content_type or "")
        boundary = found.group(1) if found else message.get_boundary()
        for index, part in enumerate(message.get_payload()):
            # The CRLF before "--boundary" belongs to the delimiter, not to the part (RFC 2046 §5.1.1).
            delimiter = f"--{boundary}\r\n" if index == 0 else f"\r\n--{boundary}\r\n"
            chunks += [delimiter.encode(), _header_block(part)[0], _body(part)]
        chunks.append(f"\r\n--{boundary}--\r\n".encode())
    else:
        chunks.append(_body(message))
    return b"".join(chunks)


# The boundary exactly as email_message() writes it; any other Content-Type goes through get_boundary().
_BOUNDARY = re.compile(r'^multipart/[a-z]+; boundary="([A-Za-z0-9=_.-]+)"$')


def _header_block(message: EmailMessage) -> tuple[bytes, str | None]:
    """The folded header lines + the blank line, and the raw Content-Type value."""
    lines, content_type = [], None
    for name, value in message.raw_items():
        lines.append(WIRE_POLICY.fold(name, value))
        if name.lower() == "content-type":
            content_type = value if isinstance(value, str) else None
    return ("".join(lines) + "\r\n").encode("ascii"), content_type


def _body(part: EmailMessage) -> bytes:
    # The payload as stored: get_payload() would parse Content-Transfer-Encoding first, just to ignore it.
    payload = part._payload  # the stdlib's Generator reads it the same way
    if not isinstance(payload, str) or not payload.isascii():
        raise ValueError("wire_bytes() expects the 7-bit encoded parts email_message() builds")
    data = payload.encode("ascii")
    crlf = data.count(b"\r\n")
    if data.count(b"\r") != crlf or data.count(b"\n") != crlf:  # not CRLF only: as the generator does
        data = _LINE_END.sub(b"\r\n", data)
    return data


_LINE_END = re.compile(rb"\r\n|\r|\n")  # what the stdlib generator treats as a line end
