"""One entry of a library as every reader hands it over, and the error that names a file's bad entries."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from digest.ingest.normalise import arxiv_id, arxiv_id_of_doi, clean_text, doi, title_key

TITLE_CHARS = 500
ABSTRACT_CHARS = 3_000  # enough for any abstract; a library's texts are kept in the subscriber's model
# An arXiv id as a library writes it: an abs/pdf URL, "arXiv:2401.12345v2", or an eprint field's bare id.
_ARXIV_IN = re.compile(
    r"(?:arxiv\.org/(?:abs|pdf)/|arxiv:\s*|^)(?P<id>\d{4}\.\d{4,5}(?:v\d+)?|[a-z-]+(?:\.[A-Z]{2})?/\d{7}(?:v\d+)?)",
    re.IGNORECASE,
)
_DOI_IN = re.compile(r"\b10\.\d{4,9}/\S+", re.IGNORECASE)


class LibraryError(ValueError):
    """The file is no library, or some of its entries are bad: ``problems`` names each (nothing is used)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        shown = "; ".join(problems[:5]) + (f"; … and {len(problems) - 5} more" if len(problems) > 5 else "")
        super().__init__(shown)


def gathered(readers: Iterable[Callable[[], Reference]], problems: Sequence[str] = ()) -> list[Reference]:
    """Each entry's reference, read by its reader; LibraryError naming every bad entry (after ``problems``
    found before) if any is bad: a file is used whole or not at all."""
    found, references = list(problems), []
    for read in readers:
        try:
            references.append(read())
        except LibraryError as exc:
            found += exc.problems
    if found:
        raise LibraryError(found)
    return references


@dataclass(frozen=True)
class Reference:
    """A paper of the library: what identifies it (arXiv id, DOI, title) and its text (title, abstract)."""

    where: str  # "entry 'vaswani2017' (line 12)", "item 3", "line 4"
    title: str | None
    abstract: str | None = None
    arxiv_id: str | None = None
    doi: str | None = None

    @property
    def title_key(self) -> str:
        return title_key(self.title) if self.title else ""

    @classmethod
    def of(cls, where: str, title: object, abstract: object, identifiers: Iterable[object]) -> Reference:
        """An entry from its fields: ``identifiers`` are the fields that may hold an arXiv id or a DOI (in
        order of trust). Raises LibraryError when it has neither a title nor an identifier."""
        found_doi = found_arxiv = None
        for value in (v for v in identifiers if isinstance(v, str) and v.strip()):
            found_doi = found_doi or doi_in(value)
            of_doi = arxiv_id_of_doi(found_doi) if found_doi else None
            found_arxiv = found_arxiv or arxiv_in(value) or of_doi
        title_text = _cut(title, TITLE_CHARS)
        if not (title_text and title_key(title_text)) and not (found_arxiv or found_doi):
            raise LibraryError([f"{where}: no title, arXiv id or DOI"])
        return cls(where, title_text or None, _cut(abstract, ABSTRACT_CHARS) or None, found_arxiv, found_doi)


def arxiv_in(value: str) -> str | None:
    match = _ARXIV_IN.search(value.strip())
    return arxiv_id(match.group("id")) if match else None


def doi_in(value: str) -> str | None:
    match = _DOI_IN.search(value)
    return doi(match.group().rstrip(".,;)]}")) if match else None


def _cut(value: object, limit: int) -> str:
    text = clean_text(value) if isinstance(value, str) else ""
    return text[:limit]
