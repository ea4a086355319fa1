"""Which reader a library file needs, chosen by its content (a browser upload's name and type prove
nothing), and the limits every library is held to."""

from __future__ import annotations

import re
from collections.abc import Callable

from digest.ingest.decode import decode
from digest.ingest.entries import ParseError
from digest.references.bibtex import parse_bibtex
from digest.references.csl_json import parse_csl_json
from digest.references.entries import LibraryError, Reference
from digest.references.identifiers import parse_identifiers
from digest.references.ris import parse_ris

MAX_ENTRIES = 2_000
_BIBTEX = re.compile(r"^\s*@[A-Za-z]+\s*[{(]", re.MULTILINE)
_RIS = re.compile(r"^\ufeff?TY  - ", re.MULTILINE)


def read_library(data: bytes, max_bytes: int) -> list[Reference]:
    """The entries of a library file; LibraryError names what is wrong (too big, not text, bad entries)."""
    if len(data) > max_bytes:
        raise LibraryError([f"the file is too big (the limit is {max_bytes:,} bytes)"])
    try:
        text = decode(data)
    except ParseError as exc:
        raise LibraryError([str(exc)]) from None
    name, reader = _reader(text)
    references = reader(text)
    if not references:
        raise LibraryError([f"no entries found in this {name}"])
    if len(references) > MAX_ENTRIES:
        raise LibraryError([f"{len(references)} entries: at most {MAX_ENTRIES} are read"])
    return references


def _reader(text: str) -> tuple[str, Callable[[str], list[Reference]]]:
    head = text.lstrip("\ufeff \t\r\n")[:1]
    if head in ("[", "{"):
        return "CSL JSON file", parse_csl_json
    if _RIS.search(text):
        return "RIS file", parse_ris
    if _BIBTEX.search(text):
        return "BibTeX file", parse_bibtex
    return "list of arXiv ids and DOIs", parse_identifiers
