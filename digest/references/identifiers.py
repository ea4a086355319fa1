"""A plain list of papers: one arXiv id ("2401.12345", "arXiv:2401.12345v2", an arxiv.org link) or DOI
("10.1145/…", a doi.org link) per line; blank lines and lines starting with ``#`` are skipped, and
anything after the identifier on its line (a title pasted beside it) is left aside."""

from __future__ import annotations

from digest.ingest.normalise import arxiv_id_of_doi
from digest.references.entries import LibraryError, Reference, arxiv_in, doi_in


def parse_identifiers(text: str) -> list[Reference]:
    problems: list[str] = []
    references: list[Reference] = []
    for number, line in enumerate(text.splitlines(), start=1):
        value = line.strip().lstrip("\ufeff")
        if not value or value.startswith("#"):
            continue
        word = value.split()[0]
        found_doi = doi_in(word)
        found_arxiv = arxiv_in(word) or (arxiv_id_of_doi(found_doi) if found_doi else None)
        if not (found_arxiv or found_doi):
            problems.append(f"line {number}: {value[:60]!r} is neither an arXiv id nor a DOI")
            continue
        references.append(Reference(f"line {number}", None, None, found_arxiv, found_doi))
    if problems:
        raise LibraryError(problems)
    return references
