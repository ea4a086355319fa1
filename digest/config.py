"""Every ``DIGEST_*`` setting, read from the environment (and an optional ``.env``) in one place.

``load_settings()`` is the only way the rest of the code gets configuration. A bad value stops start-up
with a :class:`ConfigError` naming the setting. Every field here must be documented in ``.env.example``
and in the README's configuration table (``tests/test_config.py`` fails otherwise).
"""

from __future__ import annotations

import os
import re
import secrets
from functools import cached_property
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from digest.errors import DigestError, describe_os_error, redact

ENV_PREFIX = "DIGEST_"
SECRET_FILE_NAME = "secret_key"
HF_DAILY_URL = "https://huggingface.co/api/daily_papers"
ARXIV_FEED_URL = "https://rss.arxiv.org/rss/"
# arXiv's category names (arxiv.org/category_taxonomy): cs.IR, math.AP, hep-th, astro-ph.CO, q-bio.NC…
ARXIV_CATEGORY = re.compile(r"^[a-z]+(?:-[a-z]+)?(?:\.[A-Za-z]+(?:-[A-Za-z]+)?)?$")
# Settings whose values are never shown, not even in an error about them: only their length is.
SECRET_FIELDS = frozenset({"secret_key", "smtp_password", "slack_bot_token", "slack_signing_secret"})


class ConfigError(DigestError):
    """A setting has a bad value; the message names the setting."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # --- storage -------------------------------------------------------------------------------
    data_dir: Path = Path("./var")
    database_url: str | None = None
    inbox_dir: Path | None = None
    outbox_dir: Path | None = None
    max_file_bytes: int = Field(default=50 * 1024 * 1024, gt=0)
    max_library_bytes: int = Field(default=5 * 1024 * 1024, gt=0)

    # --- web -----------------------------------------------------------------------------------
    base_url: str = "http://127.0.0.1:8000"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    secret_key: str | None = None
    token_max_age_days: int = Field(default=60, gt=0)
    subscribe_rate_limit: int = Field(default=5, gt=0)
    forwarded_allow_ips: str = "127.0.0.1"
    openapi: bool = False

    # --- ranking -------------------------------------------------------------------------------
    recency_days: int = Field(default=7, gt=0)
    default_digest_size: int = Field(default=10, ge=1, le=50)
    min_score: float = Field(default=0.0, ge=0.0)

    # --- mail ----------------------------------------------------------------------------------
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_security: Literal["none", "starttls", "ssl"] = "starttls"
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_timeout: float = Field(default=30.0, gt=0)
    mail_from: str = "digest@localhost"

    # --- slack ---------------------------------------------------------------------------------
    slack_bot_token: str | None = None
    slack_api_url: str = "https://slack.com/api/"
    slack_signing_secret: str | None = None
    slack_webhook_hosts: str = "hooks.slack.com,hooks.slack-gov.com"

    # --- scheduling ----------------------------------------------------------------------------
    scheduler: bool = True
    inbox_poll_seconds: int = Field(default=30, gt=0)
    dispatch_interval_seconds: int = Field(default=60, gt=0)
    hf_daily_url: str | None = HF_DAILY_URL
    arxiv_categories: str = ""
    arxiv_feed_url: str = ARXIV_FEED_URL
    celery_broker_url: str | None = None
    celery_queue: str = Field(default="digest", pattern=r"^[A-Za-z0-9_.-]{1,100}$")
    max_failures: int = Field(default=5, gt=0)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("base_url", "slack_api_url")
    @classmethod
    def _http_url(cls, value: str, info: ValidationInfo) -> str:
        parsed = urlparse(value)
        if parsed.scheme not in {"http", "https"} or not parsed.netloc:
            raise ValueError("must be an http(s) URL such as https://digest.example.org")
        # slack-sdk joins method names onto its base URL, so that one keeps (gains) a trailing slash.
        return value.rstrip("/") + ("/" if info.field_name == "slack_api_url" else "")

    @field_validator("hf_daily_url")
    @classmethod
    def _optional_http_url(cls, value: str | None) -> str | None:
        if value and urlparse(value).scheme not in {"http", "https"}:
            raise ValueError("must be an http(s) URL")
        return value or None

    @field_validator("arxiv_feed_url")
    @classmethod
    def _feed_base_url(cls, value: str) -> str:
        parsed = urlparse(value)
        if parsed.scheme not in {"http", "https"} or not parsed.netloc:
            raise ValueError("must be an http(s) URL such as https://rss.arxiv.org/rss/")
        return value.rstrip("/") + "/"  # a category's feed is this URL + its name

    @field_validator("arxiv_categories")
    @classmethod
    def _categories(cls, value: str) -> str:
        names = [name.strip() for name in value.split(",") if name.strip()]
        wrong = [name for name in names if not ARXIV_CATEGORY.match(name)]
        if wrong:
            raise ValueError(f"{wrong[0]!r} is not an arXiv category name such as cs.IR or hep-th")
        return ",".join(dict.fromkeys(names))

    @field_validator("celery_broker_url")
    @classmethod
    def _broker_url(cls, value: str | None) -> str | None:
        if value and urlparse(value).scheme not in {"redis", "rediss", "amqp", "amqps"}:
            raise ValueError("must be a redis:// or amqp:// broker URL such as redis://127.0.0.1:6379/0")
        return value or None

    @field_validator("database_url")
    @classmethod
    def _db_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("sqlite", "postgresql")):
            raise ValueError("must be a sqlite:/// or postgresql:// URL")
        return value or None

    @field_validator("secret_key")
    @classmethod
    def _secret_len(cls, value: str | None) -> str | None:
        if value is not None and len(value) < 16:
            raise ValueError("must be at least 16 characters")
        return value

    # --- derived ---------------------------------------------------------------------------------
    @cached_property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'digest.sqlite3').resolve()}"

    @property
    def base_url_is_set(self) -> bool:
        """DIGEST_BASE_URL was given (else links point at the default, or the address being served)."""
        return "base_url" in self.model_fields_set

    @property
    def is_embedded(self) -> bool:
        return self.db_url.startswith("sqlite")

    @property
    def inbox(self) -> Path:
        return self.inbox_dir or self.data_dir / "inbox"

    @property
    def outbox(self) -> Path:
        return self.outbox_dir or self.data_dir / "outbox"

    @property
    def slack_webhook_host_list(self) -> frozenset[str]:
        return frozenset(h.strip().lower() for h in self.slack_webhook_hosts.split(",") if h.strip())

    @property
    def arxiv_category_list(self) -> list[str]:
        """The arXiv categories pulled each day (none: the pull is off)."""
        return self.arxiv_categories.split(",") if self.arxiv_categories else []

    @property
    def uses_smtp(self) -> bool:
        return bool(self.smtp_host)

    @cached_property
    def secret(self) -> str:
        """The signing key: the setting, or on the embedded default one generated once in the data dir."""
        if self.secret_key:
            return self.secret_key
        if not self.is_embedded:
            raise ConfigError(
                "DIGEST_SECRET_KEY: must be set when DIGEST_DATABASE_URL is not the embedded SQLite default"
            )
        return _data_dir_secret(self.data_dir)


def _data_dir_secret(data_dir: Path) -> str:
    path = data_dir / SECRET_FILE_NAME
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    # O_EXCL: two processes starting at once must not write two different keys.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def load_settings(**overrides: object) -> Settings:
    """Read and check every setting once; raise ConfigError naming the first bad one."""
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    _check_combinations(settings)
    return settings


def _describe(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"{ENV_PREFIX}{field.upper()}: {message} (got {_shown(field, error.get('input'))})")
    return "; ".join(lines)


def _shown(field: str, value: object) -> str:
    if field in SECRET_FIELDS:
        return f"a value of {len(str(value))} characters"
    return redact(repr(value))


def prepare_folders(settings: Settings) -> None:
    """Create the data dir, inbox and outbox; a ConfigError names the setting of one that cannot be."""
    folders = {
        "DIGEST_DATA_DIR": settings.data_dir,
        "DIGEST_INBOX_DIR": settings.inbox,
        "DIGEST_OUTBOX_DIR": settings.outbox,
    }
    for name, folder in folders.items():
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"{name}: cannot create {describe_os_error(exc, str(folder))}") from None
        if not os.access(folder, os.W_OK | os.X_OK):
            raise ConfigError(f"{name}: the folder {folder} is not writable by this user")


def _check_combinations(settings: Settings) -> None:
    if bool(settings.smtp_username) != bool(settings.smtp_password):
        raise ConfigError("DIGEST_SMTP_USERNAME and DIGEST_SMTP_PASSWORD must be set together")
    if settings.database_url is None or settings.is_embedded:
        return
    if not settings.secret_key:
        raise ConfigError(
            "DIGEST_SECRET_KEY: must be set when DIGEST_DATABASE_URL is not the embedded SQLite default"
        )
