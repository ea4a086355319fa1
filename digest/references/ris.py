"""RIS (Zotero's, EndNote's, Mendeley's export), read with rispy. rispy skips a record that never ends (no
``ER`` tag) without a word, so each ``TY`` line must be closed by an ``ER`` before the next one: a file cut
short is bad, naming the record."""

from __future__ import annotations

import re
from functools import partial
from typing import Any

import rispy

from digest.references.entries import LibraryError, Reference, gathered

_TAG = re.compile(r"^([A-Z][A-Z0-9])  - ?")
_IDENTIFIERS = ("doi", "urls", "url", "notes", "number", "note", "custom1", "accession_number")
_TITLES = ("title", "primary_title", "translated_title")
_ABSTRACTS = ("abstract", "notes_abstract")


def parse_ris(text: str) -> list[Reference]:
    starts = _unclosed_records(text)
    records = rispy.loads(text)
    return gathered(
        partial(_reference, record, index, starts) for index, record in enumerate(records, start=1)
    )


def _unclosed_records(text: str) -> list[int]:
    """The line of each record's ``TY``; LibraryError naming those that no ``ER`` closes."""
    starts: list[int] = []
    problems: list[str] = []
    open_at: int | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        tag = _TAG.match(line.lstrip("\ufeff"))
        if tag is None:
            continue
        if tag.group(1) == "TY":
            if open_at is not None:
                problems.append(f"record {len(starts)} (line {open_at}): no ER line ends it")
            open_at = number
            starts.append(number)
        elif tag.group(1) == "ER":
            open_at = None
    if open_at is not None:
        problems.append(f"record {len(starts)} (line {open_at}): no ER line ends it (file cut short?)")
    if problems:
        raise LibraryError(problems)
    return starts


def _reference(record: dict[str, Any], index: int, starts: list[int]) -> Reference:
    line = f" (line {starts[index - 1]})" if index <= len(starts) else ""
    title = next((record[name] for name in _TITLES if isinstance(record.get(name), str)), None)
    abstract = next((record[name] for name in _ABSTRACTS if isinstance(record.get(name), str)), None)
    identifiers = [value for name in _IDENTIFIERS for value in _strings(record.get(name))]
    return Reference.of(f"record {index}{line}", title, abstract, identifiers)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []
