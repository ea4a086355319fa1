"""The transport of each channel, made on first use and shared by a batch; and one-off mails."""

from __future__ import annotations

from digest.config import Settings
from digest.deliver.base import Outgoing, Transport
from digest.deliver.mime import email_message
from digest.deliver.outbox import OutboxTransport
from digest.deliver.slack import SlackBotTransport, SlackWebhookTransport
from digest.deliver.smtp import SmtpTransport
from digest.models import Channel
from digest.render import EmailContent


def delivers_for_real(settings: Settings, channel: str) -> bool:
    """Whether a message on ``channel`` leaves this machine (SMTP, Slack) rather than going to the outbox."""
    if channel == Channel.EMAIL:
        return settings.uses_smtp
    if channel == Channel.SLACK_BOT:
        return bool(settings.slack_bot_token)
    return channel == Channel.SLACK_WEBHOOK


def mail_transport(settings: Settings) -> Transport:
    """SMTP when DIGEST_SMTP_HOST is set, else the file outbox (the embedded default)."""
    return SmtpTransport(settings) if settings.uses_smtp else OutboxTransport(settings.outbox)


class Transports:
    """The transports of one batch, created on first use: one SMTP connection serves the whole batch."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._open: dict[str, Transport] = {}

    def use(self, channel: str, transport: Transport) -> None:
        """Serve ``channel`` with this transport (a relay of your own, or a test's)."""
        self._open[channel] = transport

    def for_channel(self, channel: str) -> Transport:
        if channel not in self._open:
            self._open[channel] = self._make(channel)
        return self._open[channel]

    def _make(self, channel: str) -> Transport:
        if channel == Channel.EMAIL:
            return mail_transport(self.settings)
        if channel == Channel.SLACK_WEBHOOK:
            return SlackWebhookTransport()
        if channel == Channel.SLACK_BOT and self.settings.slack_bot_token:
            return SlackBotTransport(self.settings)
        return OutboxTransport(self.settings.outbox)

    def close(self) -> None:
        for transport in self._open.values():
            transport.close()
        self._open.clear()


def send_email(
    settings: Settings, to: str, content: EmailContent, headers: dict[str, str] | None = None
) -> str:
    """Send one email (e.g. the sign-up confirmation) by SMTP or to the outbox; return its receipt.

    Raises TransportError (``.permanent`` says whether retrying can help).
    """
    message = Outgoing(Channel.EMAIL, to, email=email_message(settings, to, content, headers), label="email")
    with mail_transport(settings) as transport:
        return transport.send(message)
