"""The inbox watcher: finds new digest files in a folder and ingests each once it has stopped changing."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from stat import S_ISREG

from sqlalchemy.exc import DBAPIError

from digest.db import Database
from digest.ingest.service import ingest_paths

log = logging.getLogger(__name__)

# Names a writer uses while a file is still being written. Writers should write to such a name (or
# outside the inbox) and rename into place when done: a rename is atomic on one file system.
IGNORED_PREFIXES = (".", "~")
IGNORED_SUFFIXES = (".part", ".tmp", ".partial", ".crdownload", ".swp", "~")


class InboxWatcher:
    """Finds new digest files in the inbox and ingests each once it has stopped changing.

    A file is read only when (a) its name is not a temporary one (see ``IGNORED_*``), and (b) its size
    and mtime are the same on two polls in a row, or it has not been modified for ``settle_seconds``
    (files already there at start-up). Files are never moved or changed. A file seen with the same
    path, size and mtime is skipped without being read; after a restart each file is offered once
    more and ingestion skips it by content hash.
    """

    def __init__(
        self, db: Database, inbox: Path, *, settle_seconds: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.db, self.inbox, self.settle_seconds, self.clock = db, inbox, settle_seconds, clock
        self._pending: dict[Path, tuple[int, int]] = {}
        self._done: dict[Path, tuple[int, int]] = {}
        self._unreadable: set[Path] = set()

    def poll(self) -> list[Path]:
        """Ingest every ready file; return their paths."""
        found = dict(self._scan())
        for gone in set(self._done) - set(found):
            del self._done[gone]
        ready = [path for path, signature in found.items() if self._ready(path, signature)]
        for path in ready:
            self._ingest(path, found[path])
        return ready

    def _scan(self) -> Iterator[tuple[Path, tuple[int, int]]]:
        if not self.inbox.is_dir():
            return
        try:
            entries = sorted(self.inbox.iterdir())
        except OSError as exc:  # unreadable right now (permissions): try again next poll
            log.warning("inbox: cannot list %s: %s", self.inbox, exc.strerror or exc)
            return
        for path in entries:
            if path.name.startswith(IGNORED_PREFIXES) or path.name.endswith(IGNORED_SUFFIXES):
                continue
            try:
                stat = path.stat()
            except FileNotFoundError:  # renamed or removed between listing and stat
                continue
            except OSError as exc:  # a symlink loop (ELOOP), a dangling mount…: this entry only
                self._skip(path, exc)
                continue
            if S_ISREG(stat.st_mode):
                yield path, (stat.st_size, stat.st_mtime_ns)

    def _skip(self, path: Path, exc: OSError) -> None:
        # Logged once per entry, not every poll: it stays unreadable until someone fixes it.
        if path not in self._unreadable:
            log.warning("inbox: skipping %s: %s", path.name, exc.strerror or exc)
            self._unreadable.add(path)

    def _ready(self, path: Path, signature: tuple[int, int]) -> bool:
        if self._done.get(path) == signature:
            return False
        previous, self._pending[path] = self._pending.get(path), signature
        settled = self.clock() - signature[1] / 1e9 >= self.settle_seconds
        return previous == signature or settled

    def _ingest(self, path: Path, signature: tuple[int, int]) -> None:
        # Marked done whatever happens: a file that makes ingestion fail is retried only once it changes.
        self._done[path] = signature
        self._pending.pop(path, None)
        try:
            report = ingest_paths(self.db, [path])
        except DBAPIError:
            self._done.pop(path, None)  # the database, not the file: offer it again on the next poll
            raise
        except Exception:
            log.exception("inbox: ingesting %s failed", path)
            return
        log.info("inbox: %s: %s", path.name, report.as_dict())
