"""End to end against a real SMTP server on loopback (aiosmtpd): pick → render → send → ledger."""

from __future__ import annotations

import re

import deliver_support
from common import TEST_SECRET
from deliver_support import DAY, NOW, add_papers
from sqlalchemy import select

from digest.config import load_settings
from digest.deliver.base import TransportError
from digest.deliver.service import send_digest, send_email, send_many
from digest.models import Delivery, DeliveryItem, Subscriber
from digest.render import EmailContent
from digest.subscribers import create_subscriber

smtp_server = deliver_support.smtp_server  # the local server fixture


def smtp_settings(data_dir, server, **extra):  # type: ignore[no-untyped-def]
    return load_settings(
        data_dir=data_dir,
        secret_key=TEST_SECRET,
        base_url="https://digest.example.org",
        smtp_host=server.host,
        smtp_port=server.port,
        mail_from="Digest <digest@example.org>",
        **{"smtp_security": "none", **extra},
    )


def subscribe(db, settings, *emails: str) -> list[int]:  # type: ignore[no-untyped-def]
    with db.session() as session:
        if not session.scalars(select(Subscriber)).first():
            add_papers(session)
        return [
            create_subscriber(session, settings, email=e, keywords="diffusion, speech").id for e in emails
        ]


def test_digest_arrives_as_one_multipart_message_with_votes_and_one_click_unsubscribe(
    db, data_dir, smtp_server
):
    settings = smtp_settings(data_dir, smtp_server)
    (sid,) = subscribe(db, settings, "ada@example.org")
    outcome = send_digest(db, settings, sid, DAY, now=NOW)
    assert outcome.status == "sent" and outcome.paper_ids
    ((envelope, message),) = smtp_server.handler.messages
    assert envelope.rcpt_tos == ["ada@example.org"] and envelope.mail_from == "digest@example.org"
    assert message.get_content_type() == "multipart/alternative"
    types = [part.get_content_type() for part in message.iter_parts()]
    assert types == ["text/plain", "text/html"]
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    for body in (text, html):
        assert len(re.findall(r"/feedback/[\w.-]+", body)) == 2 * len(outcome.paper_ids)
    assert re.fullmatch(r"<https://digest\.example\.org/unsubscribe/[\w.-]+>", message["List-Unsubscribe"])
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["Message-ID"].endswith("@example.org>") and message["Date"]
    assert outcome.receipt == message["Message-ID"]
    with db.session() as session:
        row = session.scalars(select(Delivery)).one()
        assert (row.status, row.message_id, row.attempts) == ("sent", message["Message-ID"], 1)
        sent = [
            item.paper_id for item in session.scalars(select(DeliveryItem).order_by(DeliveryItem.position))
        ]
    assert sent == outcome.paper_ids


def test_a_second_send_the_same_day_sends_nothing(db, data_dir, smtp_server):
    settings = smtp_settings(data_dir, smtp_server)
    (sid,) = subscribe(db, settings, "ada@example.org")
    first = send_digest(db, settings, sid, DAY, now=NOW)
    again = send_digest(db, settings, sid, DAY, now=NOW)
    assert (first.status, again.status) == ("sent", "already_sent")
    assert again.paper_ids == first.paper_ids
    assert len(smtp_server.messages) == 1


def test_a_batch_reuses_one_smtp_connection(db, data_dir, smtp_server):
    settings = smtp_settings(data_dir, smtp_server)
    ids = subscribe(db, settings, "a@example.org", "b@example.org", "c@example.org")
    report = send_many(db, settings, ids, digest_date=DAY, now=NOW)
    assert report.counts()["sent"] == 3
    assert len(smtp_server.messages) == 3 and smtp_server.handler.connections == 1


def test_a_refused_address_is_a_permanent_failure_and_disables_after_max_failures(db, data_dir, smtp_server):
    settings = smtp_settings(data_dir, smtp_server, max_failures=2)
    bounce, good = subscribe(db, settings, "bounce@example.org", "good@example.org")
    report = send_many(db, settings, [bounce, good], digest_date=DAY, now=NOW)
    assert [o.status for o in report.outcomes] == ["failed", "sent"]  # one error never stops the batch
    assert report.outcomes[0].reason.startswith("permanent: recipient refused: 550")
    assert report.outcomes[0].retry_at is None
    with db.session() as session:
        sub = session.get(Subscriber, bounce)
        assert (sub.failure_count, sub.status) == (1, "active")
        assert session.scalars(select(DeliveryItem).where(DeliveryItem.subscriber_id == bounce)).all() == []
    send_digest(db, settings, bounce, DAY.replace(day=29), now=NOW)
    with db.session() as session:
        sub = session.get(Subscriber, bounce)
        assert (sub.failure_count, sub.status, sub.next_send_at) == (2, "disabled", None)
        assert "550" in sub.last_error


def test_a_temporary_refusal_is_retried_later_with_backoff(db, data_dir, smtp_server):
    settings = smtp_settings(data_dir, smtp_server)
    (sid,) = subscribe(db, settings, "busy@example.org")
    first = send_digest(db, settings, sid, DAY, now=NOW)
    assert first.status == "failed" and first.reason.startswith("transient: recipient refused: 451")
    second = send_digest(db, settings, sid, DAY, now=first.retry_at)  # the dispatch loop, back on time
    assert second.retry_at - first.retry_at > first.retry_at - NOW  # exponential backoff
    with db.session() as session:
        row = session.scalars(select(Delivery)).one()
        sub = session.get(Subscriber, sid)
        assert (row.status, row.attempts, sub.failure_count) == ("failed", 2, 0)
        assert sub.next_send_at == second.retry_at  # the dispatch loop comes back for it


def test_an_unreachable_server_is_a_transient_failure(db, data_dir):
    settings = load_settings(
        data_dir=data_dir,
        secret_key=TEST_SECRET,
        smtp_host="127.0.0.1",
        smtp_port=9,
        smtp_security="none",
        smtp_timeout=2,
    )
    with db.session() as session:
        add_papers(session)
        sid = create_subscriber(session, settings, email="ada@example.org", keywords="diffusion").id
    outcome = send_digest(db, settings, sid, DAY, now=NOW)
    assert outcome.status == "failed" and "cannot connect" in outcome.reason and outcome.retry_at


def test_send_email_delivers_a_single_message_by_smtp(data_dir, smtp_server):
    settings = smtp_settings(data_dir, smtp_server)
    content = EmailContent("Confirm", "Click https://x", "<p>Click</p>")
    receipt = send_email(settings, "ada@example.org", content, {"X-Test": "1"})
    (message,) = smtp_server.messages
    assert message["Subject"] == "Confirm" and message["X-Test"] == "1" and message["Message-ID"] == receipt


def test_wire_bytes_are_exactly_what_the_stdlib_generator_writes(data_dir):
    from digest.deliver.mime import WIRE_POLICY, email_message, unsubscribe_headers, wire_bytes

    settings = load_settings(data_dir=data_dir, secret_key=TEST_SECRET, mail_from="Dïgest <d@example.org>")
    for content in (
        EmailContent("Sübject ✓ " * 20, "no newline at the end", "<p>x</p>\r\n"),
        EmailContent("ASCII", "line one\nline two =3D " + "long " * 40 + "\n", "<p>" + "é" * 300 + "</p>\n"),
    ):
        message = email_message(settings, "ada@example.org", content, unsubscribe_headers("https://x/u/t"))
        assert wire_bytes(message) == message.as_bytes(policy=WIRE_POLICY)


def test_wire_bytes_normalise_line_ends_like_the_generator_in_parts_built_elsewhere(data_dir):
    from email.message import EmailMessage

    from digest.deliver.mime import WIRE_POLICY, email_message, wire_bytes

    settings = load_settings(data_dir=data_dir, secret_key=TEST_SECRET)
    content = EmailContent("Line ends", "cr\ronly\r\nand crlf\nand lf\n", "<p>\r</p>")
    message = email_message(settings, "ada@example.org", content)
    assert wire_bytes(message) == message.as_bytes(policy=WIRE_POLICY)
    for part in message.iter_parts():  # a caller replaced a payload with bare LF / CR line ends
        part.set_payload("one\ntwo\rthree\r\n")
    assert wire_bytes(message) == message.as_bytes(policy=WIRE_POLICY)
    single = EmailMessage()
    single.set_content("just text\n")
    assert wire_bytes(single) == single.as_bytes(policy=WIRE_POLICY)


def test_lines_starting_with_a_dot_survive_smtp(data_dir, smtp_server):
    settings = smtp_settings(data_dir, smtp_server)
    text = ".starts with a dot\n..two dots\n.\nend\n"
    send_email(settings, "ada@example.org", EmailContent("Dots", text, "<p>.</p>\n.<p>x</p>"))
    (message,) = smtp_server.messages
    # (parsed from the wire, the parts keep its CRLF line ends)
    assert message.get_body(("plain",)).get_content().replace("\r\n", "\n") == text
    assert message.get_body(("html",)).get_content() == "<p>.</p>\r\n.<p>x</p>"


# --- TLS: STARTTLS (587) and implicit TLS (465), with a certificate made for the test ---------------------

tls_certificate = deliver_support.tls_certificate


def test_starttls_upgrades_the_connection_before_logging_in_and_sending(
    data_dir, tls_certificate, monkeypatch
):
    from digest.deliver import smtp

    monkeypatch.setattr(smtp, "_tls_context", tls_certificate.client_context)
    with deliver_support.running_smtp_server(
        tls_context=tls_certificate.server_context(),
        require_starttls=True,
        authenticator=None,
        auth_require_tls=True,
    ) as server:
        server_handler = server.handler
        settings = smtp_settings(data_dir, server, smtp_security="starttls")
        receipt = send_email(settings, "ada@example.org", EmailContent("Over TLS", "text", "<p>html</p>"))
    assert server_handler.encrypted == [True]
    assert server.messages[0]["Message-ID"] == receipt


def test_starttls_with_a_login(data_dir, tls_certificate, monkeypatch):
    from digest.deliver import smtp

    monkeypatch.setattr(smtp, "_tls_context", tls_certificate.client_context)
    handler = deliver_support.RecordingHandler()
    with deliver_support.running_smtp_server(
        tls_context=tls_certificate.server_context(),
        require_starttls=True,
        authenticator=handler.authenticate,
        auth_require_tls=True,
    ) as server:
        settings = smtp_settings(
            data_dir, server, smtp_security="starttls", smtp_username="ada", smtp_password="s3cret"
        )
        send_email(settings, "ada@example.org", EmailContent("Logged in", "text", "<p>html</p>"))
        wrong = smtp_settings(
            data_dir, server, smtp_security="starttls", smtp_username="ada", smtp_password="nope"
        )
        try:
            send_email(wrong, "ada@example.org", EmailContent("Refused", "text", "<p>html</p>"))
        except TransportError as exc:
            refused = exc
    assert handler.logins[0] == ("ada", "s3cret") and set(handler.logins[1:]) == {("ada", "nope")}
    assert [m["Subject"] for m in server.messages] == ["Logged in"] and server.handler.encrypted == [True]
    assert (
        "login refused: 535" in refused.message and not refused.permanent
    )  # the server's setup, not the reader


def test_implicit_tls_delivers(data_dir, tls_certificate, monkeypatch):
    from digest.deliver import smtp

    monkeypatch.setattr(smtp, "_tls_context", tls_certificate.client_context)
    with deliver_support.running_smtp_server(ssl_context=tls_certificate.server_context()) as server:
        settings = smtp_settings(data_dir, server, smtp_security="ssl")
        send_email(settings, "ada@example.org", EmailContent("Implicit TLS", "text", "<p>html</p>"))
    assert server.handler.encrypted == [True] and server.messages[0]["Subject"] == "Implicit TLS"


def test_an_untrusted_certificate_is_refused_and_nothing_is_sent(data_dir, tls_certificate):
    # The transport's own context: system CAs and host-name checking, so a self-signed cert fails.
    with deliver_support.running_smtp_server(
        tls_context=tls_certificate.server_context(), require_starttls=True
    ) as server:
        settings = smtp_settings(data_dir, server, smtp_security="starttls")
        try:
            send_email(settings, "ada@example.org", EmailContent("No", "text", "<p>html</p>"))
        except TransportError as exc:
            refused = exc
    assert "cannot connect" in refused.message and "CERTIFICATE_VERIFY_FAILED" in refused.message
    assert not refused.permanent and server.messages == []
