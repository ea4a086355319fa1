"""BibTeX (any reference manager's export, Zotero's and Better BibTeX's included), read with bibtexparser.

LaTeX in titles and abstracts is decoded to text (``{\\"u}ber`` → über, braces dropped). arXiv ids come from
``eprint`` (with ``archivePrefix = arXiv``), ``url``, ``doi`` (arXiv's own 10.48550 DOIs) or ``journal``
("arXiv preprint arXiv:2401.12345", Google Scholar's form). A block bibtexparser cannot read, a repeated
key, or an entry with neither title nor identifier is bad, named with its line.
"""

from __future__ import annotations

from functools import partial

import bibtexparser
from bibtexparser import middlewares
from bibtexparser.model import DuplicateBlockKeyBlock, Entry

from digest.references.entries import Reference, gathered

_IDENTIFIERS = ("eprint", "arxiv", "arxivid", "doi", "url", "journal", "note", "howpublished")


def parse_bibtex(text: str) -> list[Reference]:
    library = bibtexparser.parse_string(text, append_middleware=[middlewares.LatexDecodingMiddleware()])
    problems = [_failed(block) for block in library.failed_blocks]
    return gathered((partial(_reference, entry) for entry in library.entries), problems)


def _reference(entry: Entry) -> Reference:
    fields = {field.key.lower(): field.value for field in entry.fields}
    where = f"entry {entry.key!r} (line {entry.start_line + 1})"
    identifiers = [fields.get(name) for name in _IDENTIFIERS]
    return Reference.of(where, fields.get("title"), fields.get("abstract"), identifiers)


def _failed(block: object) -> str:
    line = getattr(block, "start_line", 0) + 1
    if isinstance(block, DuplicateBlockKeyBlock):
        return f"entry {block.key!r} (line {line}): the key is used twice"
    reason = getattr(getattr(block, "error", None), "abort_reason", None) or "not a BibTeX entry"
    return f"line {line}: {' '.join(str(reason).split())}"
