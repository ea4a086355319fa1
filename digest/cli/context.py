"""What every ``digest`` command shares: settings and database opened on first use, the one place where
failures become one-line messages, help that shows each command's purpose uncut, JSON output, dates."""

from __future__ import annotations

import datetime as dt
import json
import os
import traceback
from typing import Any

import click

from digest.config import Settings, load_settings
from digest.db import Database, shown_url
from digest.errors import explain
from digest.subscribers import FLAGS, InvalidSubscription


class Context:
    """Settings and database, opened on first use so `--help` needs neither."""

    def __init__(self) -> None:
        self._settings: Settings | None = None
        self._db: Database | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings()
        return self._settings

    @property
    def db(self) -> Database:
        """The database; one that does not migrate itself must answer and have the current schema."""
        if self._db is None:
            database = Database(self.settings)
            try:
                if not self.settings.is_embedded:
                    database.check()
            except BaseException:
                database.dispose()
                raise
            self._db = database
        return self._db

    def explain(self, exc: Exception) -> click.ClickException | None:
        """The one-line message for an operational failure (None: a bug, whose traceback is the report)."""
        settings = self._settings
        failure = explain(
            exc,
            database_url=self._db.url if self._db else _database_url(settings),
            broker_url=settings.celery_broker_url if settings else None,
        )
        return click.ClickException(str(failure)) if failure is not None else None

    def debugging(self) -> bool:
        level = self._settings.log_level if self._settings else os.environ.get("DIGEST_LOG_LEVEL", "")
        return level.upper() == "DEBUG"


def _database_url(settings: Settings | None) -> str | None:
    return shown_url(settings.db_url) if settings else None


class Commands(click.Group):
    """A command group whose listing shows each command's first paragraph whole, and whose commands'
    operational failures (database, disk, network, settings) end as one line and exit status 1."""

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        if cmd.short_help is None and cmd.help:
            cmd.short_help = " ".join(cmd.help.split("\n\n", 1)[0].split())
        super().add_command(cmd, name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except InvalidSubscription as exc:
            raise click.ClickException(flag_message(exc)) from None
        except Exception as exc:
            app = ctx.find_object(Context) or Context()
            message = app.explain(exc)
            if message is None:
                raise
            if app.debugging():
                traceback.print_exception(exc)
            raise message from None


def flag_message(exc: InvalidSubscription) -> str:
    """Each bad field as the command-line flag the user typed: ``--time: '25:00' is not a time …``."""
    return "; ".join(f"{FLAGS.get(field, field)}: {message}" for field, message in exc.errors.items())


pass_context = click.make_pass_decorator(Context, ensure=True)


def emit_json(payload: dict[str, Any]) -> None:
    """Machine-readable output: one JSON object, always the last line."""
    click.echo(json.dumps(payload, sort_keys=True, default=str, ensure_ascii=False))


def parse_date(value: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value) if value else None
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date as YYYY-MM-DD", param_hint="--date") from None
