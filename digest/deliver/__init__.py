"""Delivery: one :class:`~digest.deliver.base.Transport` per channel (SMTP, Slack bot, Slack webhook, file
outbox) and the service that picks, renders, sends and records each digest exactly once."""
