"""What every ``digest`` command shares: settings and database opened on first use, JSON output, dates."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import click

from digest.config import ConfigError, Settings, load_settings
from digest.db import Database


class Context:
    """Settings and database, opened on first use so `--help` needs neither."""

    def __init__(self) -> None:
        self._settings: Settings | None = None
        self._db: Database | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = load_settings()
            except ConfigError as exc:
                raise click.ClickException(f"configuration error: {exc}") from None
        return self._settings

    @property
    def db(self) -> Database:
        if self._db is None:
            self._db = Database(self.settings)
        return self._db


pass_context = click.make_pass_decorator(Context, ensure=True)


def emit_json(payload: dict[str, Any]) -> None:
    """Machine-readable output: one JSON object, always the last line."""
    click.echo(json.dumps(payload, sort_keys=True, default=str))


def parse_date(value: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value) if value else None
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date as YYYY-MM-DD", param_hint="--date") from None
