"""A plain list of arXiv ids and DOIs, one per line, in every spelling people paste."""

from __future__ import annotations

import pytest

from digest.references import LibraryError
from digest.references.identifiers import parse_identifiers


def test_every_spelling_of_an_arxiv_id_or_doi_is_read() -> None:
    text = """# papers I like
2401.12345
arXiv:2312.00001v2  a title pasted beside it

https://arxiv.org/abs/hep-th/9901001
https://arxiv.org/pdf/2402.00002v1
10.1145/3292500.3330701
https://doi.org/10.48550/arXiv.2301.00001
"""
    assert [(r.where, r.arxiv_id, r.doi) for r in parse_identifiers(text)] == [
        ("line 2", "2401.12345", None),
        ("line 3", "2312.00001", None),
        ("line 5", "hep-th/9901001", None),
        ("line 6", "2402.00002", None),
        ("line 7", None, "10.1145/3292500.3330701"),
        ("line 8", "2301.00001", "10.48550/arxiv.2301.00001"),
    ]


def test_a_line_that_is_neither_is_named() -> None:
    with pytest.raises(LibraryError) as refused:
        parse_identifiers("2401.12345\nAttention is all you need\n12345\n")
    assert refused.value.problems == [
        "line 2: 'Attention is all you need' is neither an arXiv id nor a DOI",
        "line 3: '12345' is neither an arXiv id nor a DOI",
    ]
