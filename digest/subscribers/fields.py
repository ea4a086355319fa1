"""Every field of a subscription, checked the same way for the CLI, the web forms and the bulk import.

Each check returns the cleaned value or raises :class:`InvalidSubscription`; :func:`clean_all` runs many and
names every field that failed, so a form or a CSV row shows all its problems at once. Choices worth knowing:

* Email addresses are checked offline (RFC 5322 addr-spec via :mod:`email.headerregistry`, plus a domain
  that looks routable); no DNS lookup, because sign-up must work without network.
* Slack incoming-webhook URLs must be ``https`` and point at a host in ``DIGEST_SLACK_WEBHOOK_HOSTS``
  (Slack's own hosts by default). Digest POSTs to that URL on a schedule, so an open URL field would let any
  visitor aim the server at internal services (SSRF). Plain ``http`` is accepted only for loopback hosts that
  are on the list, which is how tests and a local relay are configured.
* Slack channel / member ids are the uppercase ids Slack shows (``C…`` channel, ``G…`` private channel,
  ``D…`` direct message, ``U…``/``W…`` member), not ``#names``: names change, ids do not.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from email.errors import HeaderParseError
from email.headerregistry import Address
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from digest.config import Settings
from digest.models import Cadence, Channel, SubscriberStatus

STATUSES = tuple(SubscriberStatus)
CADENCES = tuple(Cadence)
MAX_KEYWORDS = 50
MAX_KEYWORD_CHARS = 100
MAX_DIGEST_SIZE = 50
SLACK_ID = re.compile(r"^[CGDUW][A-Z0-9]{6,20}$")
SEND_TIME = re.compile(r"^(\d{1,2}):(\d{2})$")
DOMAIN_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# Fields a subscriber (or the preferences page) may change; the channel itself is fixed at sign-up.
PREFERENCE_FIELDS = frozenset(
    {"keywords", "excluded_keywords", "send_time", "timezone", "digest_size", "weekdays", "cadence", "status"}
)
SCHEDULE_FIELDS = frozenset({"send_time", "timezone", "weekdays", "cadence", "status"})
DESTINATION_FIELDS = ("email", "slack_webhook_url", "slack_channel")
# What an empty or missing field means, as `digest subscribe` and a CSV import read it.
DEFAULTS = {
    "keywords": "",
    "excluded_keywords": "",
    "send_time": "08:00",
    "timezone": "UTC",
    "digest_size": None,
    "weekdays": "0123456",
    "cadence": "daily",
}
# The command-line flag of each field (`digest subscribe`, `subscribers edit`); CSV columns drop the dashes.
FLAGS = {
    "email": "--email",
    "slack_webhook_url": "--slack-webhook",
    "slack_channel": "--slack-channel",
    "keywords": "--keywords",
    "excluded_keywords": "--exclude",
    "send_time": "--time",
    "timezone": "--timezone",
    "digest_size": "--size",
    "weekdays": "--weekdays",
    "cadence": "--cadence",
    "status": "--status",
}
COLUMNS = {flag.removeprefix("--"): field for field, flag in FLAGS.items()}
IMPORT_STATUSES = (SubscriberStatus.ACTIVE, SubscriberStatus.PAUSED)
PAUSE_FROM = (SubscriberStatus.ACTIVE,)
RESUME_FROM = (
    SubscriberStatus.PENDING,
    SubscriberStatus.PAUSED,
    SubscriberStatus.UNSUBSCRIBED,
    SubscriberStatus.DISABLED,
)


class InvalidSubscription(ValueError):
    """Subscription fields are invalid. ``errors`` maps each bad field (as the form / keyword argument names
    it) to its message; ``field`` and ``message`` are the first of them."""

    def __init__(self, field: str, message: str, errors: dict[str, str] | None = None) -> None:
        self.errors = errors or {field: message}
        super().__init__("; ".join(f"{name}: {text}" for name, text in self.errors.items()))
        self.field, self.message = field, message

    @classmethod
    def of(cls, errors: dict[str, str]) -> InvalidSubscription:
        ((field, message), *_) = errors.items()
        return cls(field, message, errors)


# --- field checks (each returns the cleaned value or raises InvalidSubscription) -------------------------


def clean_email(value: str) -> str:
    text = (value or "").strip()
    if not text or len(text) > 254 or any(ch.isspace() for ch in text):
        raise InvalidSubscription("email", "enter an email address such as ada@example.org")
    try:
        address = Address(addr_spec=text)
    except (HeaderParseError, ValueError, IndexError):
        raise InvalidSubscription("email", f"{text!r} is not a valid email address") from None
    if not address.username or not _routable_domain(address.domain):
        raise InvalidSubscription("email", f"{text!r} is not a valid email address (check the domain)")
    # Domains are case-insensitive (RFC 5321 §2.4); the local part is kept as typed.
    return f"{address.username}@{address.domain.lower()}"


def _routable_domain(domain: str) -> bool:
    labels = domain.lower().rstrip(".").split(".")
    if len(labels) < 2 or not labels[-1].isalpha():
        return False
    try:
        ascii_labels = [label.encode("idna").decode("ascii") for label in labels]
    except UnicodeError:
        return False
    return all(DOMAIN_LABEL.match(label) for label in ascii_labels)


def clean_webhook_url(value: str, settings: Settings) -> str:
    text = (value or "").strip()
    parts = urlsplit(text)
    host = (parts.hostname or "").lower()
    allowed = settings.slack_webhook_host_list
    if parts.scheme not in {"http", "https"} or not host or not parts.path.strip("/"):
        raise InvalidSubscription(
            "slack_webhook_url", "enter a Slack incoming-webhook URL (https://hooks.slack.com/…)"
        )
    if host not in allowed:
        raise InvalidSubscription(
            "slack_webhook_url",
            f"host {host!r} is not an allowed webhook host ({', '.join(sorted(allowed))})",
        )
    if parts.scheme != "https" and host not in LOOPBACK_HOSTS:
        raise InvalidSubscription("slack_webhook_url", "must start with https://")
    if host.endswith("slack.com") and not parts.path.startswith(("/services/", "/workflows/", "/triggers/")):
        raise InvalidSubscription("slack_webhook_url", "expected https://hooks.slack.com/services/T…/B…/…")
    return text


def clean_slack_channel(value: str) -> str:
    text = (value or "").strip()
    if not SLACK_ID.match(text):
        raise InvalidSubscription(
            "slack_channel",
            f"{text!r} is not a Slack channel or member id (like C0123ABCD or U0123ABCD; not a #name)",
        )
    return text


def clean_keywords(
    value: str | Iterable[str] | None, field: str = "keywords", required: bool = True
) -> list[str]:
    raw = value.split(",") if isinstance(value, str) else list(value or [])
    cleaned: list[str] = []
    for item in raw:
        if not isinstance(item, str):
            raise InvalidSubscription(field, "keywords must be text")
        keyword = " ".join(item.split())
        if len(keyword) > MAX_KEYWORD_CHARS:
            raise InvalidSubscription(field, f"keyword {keyword[:30]!r}… is longer than {MAX_KEYWORD_CHARS}")
        if keyword and keyword.casefold() not in {k.casefold() for k in cleaned}:
            cleaned.append(keyword)
    if required and not cleaned:
        raise InvalidSubscription(field, "give at least one keyword, e.g. 'diffusion, retrieval'")
    if len(cleaned) > MAX_KEYWORDS:
        raise InvalidSubscription(field, f"at most {MAX_KEYWORDS} keywords")
    return cleaned


def clean_send_time(value: str) -> str:
    match = SEND_TIME.match((value or "").strip())
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        raise InvalidSubscription("send_time", f"{value!r} is not a time of day as HH:MM (00:00-23:59)")
    return f"{int(match[1]):02d}:{match[2]}"


def clean_timezone(value: str) -> str:
    text = (value or "").strip()
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidSubscription(
            "timezone", f"{text!r} is not a time zone name such as Europe/Paris"
        ) from None
    return text


def clean_digest_size(value: int | str | None, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        size = int(value)
    except (TypeError, ValueError):
        raise InvalidSubscription("digest_size", f"{value!r} is not a whole number") from None
    if not 1 <= size <= MAX_DIGEST_SIZE:
        raise InvalidSubscription("digest_size", f"must be between 1 and {MAX_DIGEST_SIZE}")
    return size


def clean_weekdays(value: str | Iterable[int | str]) -> str:
    items = list(value) if not isinstance(value, str) else list(value.replace(",", "").replace(" ", ""))
    days = {str(item) for item in items}
    if not days or not days <= set("0123456"):
        raise InvalidSubscription("weekdays", "choose at least one day, as digits 0 (Monday) … 6 (Sunday)")
    return "".join(sorted(days))


def clean_choice(field: str, value: str, choices: tuple[StrEnum, ...]) -> StrEnum:
    for choice in choices:
        if value == choice:
            return choice
    raise InvalidSubscription(field, f"{value!r} is not one of {', '.join(choices)}")


def clean_all(checks: dict[str, Callable[[], Any]]) -> dict[str, Any]:
    """Run every check; raise one InvalidSubscription naming every field that failed."""
    cleaned: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, check in checks.items():
        try:
            cleaned[name] = check()
        except InvalidSubscription as exc:
            errors |= {field: message for field, message in exc.errors.items() if field not in errors}
    if errors:
        raise InvalidSubscription.of(errors)
    return cleaned


def clean_preference(field: str, value: Any, default_size: int, keywords_required: bool = True) -> Any:
    """One preference field cleaned; keywords may be left empty by a subscriber with a library."""
    cleaners = {
        "keywords": lambda v: clean_keywords(v, required=keywords_required),
        "excluded_keywords": lambda v: clean_keywords(v, "excluded_keywords", required=False),
        "send_time": clean_send_time,
        "timezone": clean_timezone,
        "digest_size": lambda v: clean_digest_size(v, default_size),
        "weekdays": clean_weekdays,
        "cadence": lambda v: clean_choice("cadence", v, CADENCES),
        "status": lambda v: clean_choice("status", v, STATUSES),
    }
    if field not in cleaners:
        raise InvalidSubscription(field, "this field cannot be changed")
    return cleaners[field](value)


def clean_subscription(
    settings: Settings,
    destinations: dict[str, str | None],
    values: dict[str, Any],
    keywords_required: bool = True,
) -> tuple[Channel, dict[str, str], dict[str, Any]]:
    """The channel, destination and cleaned preferences of a new subscription; every bad field is named."""
    checks = _checks(settings, destinations, values, settings.default_digest_size, keywords_required)
    cleaned = clean_all(checks)
    channel, destination = cleaned.pop("channel")
    return channel, destination, cleaned


def field_errors(
    settings: Settings,
    destinations: dict[str, str | None] | None,
    values: dict[str, Any],
    default_size: int | None = None,
    keywords_required: bool = True,
) -> dict[str, str]:
    """Every problem with these fields (the destination's too, unless None), storing nothing; {} if none."""
    checks = _checks(
        settings, destinations, values, default_size or settings.default_digest_size, keywords_required
    )
    try:
        clean_all(checks)
    except InvalidSubscription as exc:
        return exc.errors
    return {}


def _checks(
    settings: Settings,
    destinations: dict[str, str | None] | None,
    values: dict[str, Any],
    default_size: int,
    keywords_required: bool = True,
) -> dict[str, Callable[[], Any]]:
    checks: dict[str, Callable[[], Any]] = {}
    if destinations is not None:
        given = [destinations.get(name) for name in DESTINATION_FIELDS]
        checks["channel"] = lambda: clean_channel(settings, *given)
    for name, value in values.items():
        checks[name] = lambda name=name, value=value: clean_preference(
            name, value, default_size, keywords_required
        )
    return checks


def clean_channel(
    settings: Settings, email: str | None, webhook: str | None, channel: str | None
) -> tuple[Channel, dict[str, str]]:
    given = [
        name
        for name, value in (("email", email), ("slack_webhook_url", webhook), ("slack_channel", channel))
        if value not in (None, "")
    ]
    if len(given) != 1:
        raise InvalidSubscription(
            given[1] if len(given) > 1 else "email",
            "give exactly one of: an email address, a Slack webhook URL, a Slack channel id",
        )
    if email:
        return Channel.EMAIL, {"email": clean_email(email)}
    if webhook:
        return Channel.SLACK_WEBHOOK, {"slack_webhook_url": clean_webhook_url(webhook, settings)}
    return Channel.SLACK_BOT, {"slack_channel": clean_slack_channel(channel or "")}
