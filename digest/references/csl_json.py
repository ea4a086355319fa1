"""CSL JSON: the citation data Zotero exports ("CSL JSON", and Better BibTeX's "Better CSL JSON"), a list
of items (or an object holding them under ``items``) with ``title``, ``abstract``, ``DOI``, ``URL`` and, for
arXiv preprints, ``number`` ("arXiv:2401.12345"). Read with the standard library's JSON parser."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

from digest.references.entries import LibraryError, Reference, gathered

_IDENTIFIERS = ("DOI", "number", "URL", "archive_location", "note", "container-title", "eprint")


def parse_csl_json(text: str) -> list[Reference]:
    items = _items(text)
    return gathered(partial(_reference, item, index) for index, item in enumerate(items, start=1))


def _items(text: str) -> list[Any]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LibraryError([f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"]) from None
    except (RecursionError, ValueError):
        raise LibraryError(["invalid JSON (nested too deeply, or a number too long)"]) from None
    if isinstance(document, dict) and isinstance(document.get("items"), list):
        document = document["items"]
    if not isinstance(document, list):
        raise LibraryError(["not CSL JSON: expected a list of items"])
    return document


def _reference(item: Any, index: int) -> Reference:
    if not isinstance(item, dict):
        raise LibraryError([f"item {index}: not an object"])
    label = item.get("id")
    where = f"item {index}" + (f" ({label!r})" if isinstance(label, str | int) else "")
    identifiers = [item.get(name) for name in _IDENTIFIERS]
    return Reference.of(where, item.get("title"), item.get("abstract"), identifiers)
