"""RIS libraries (Zotero's, EndNote's export): records, their identifiers, a record cut short named."""

from __future__ import annotations

import pytest

from digest.references import LibraryError
from digest.references.ris import parse_ris

RIS = """TY  - PREP
TI  - Attention Is All You Need
AU  - Vaswani, Ashish
AB  - The dominant sequence transduction models.
DO  - 10.48550/arXiv.1706.03762
UR  - http://arxiv.org/abs/1706.03762
N1  - arXiv:1706.03762 [cs]
ER  -

TY  - JOUR
T1  - A journal paper with a primary title
DO  - 10.1145/3292500.3330701
ER  -

TY  - CONF
TI  - Title only
ER  -
""".replace("ER  -\n", "ER  - \n")  # as files write it: the tag, two spaces, a dash and a space


def test_records_give_titles_abstracts_and_identifiers() -> None:
    found = parse_ris(RIS)
    assert [(r.title, r.arxiv_id, r.doi) for r in found] == [
        ("Attention Is All You Need", "1706.03762", "10.48550/arxiv.1706.03762"),
        ("A journal paper with a primary title", None, "10.1145/3292500.3330701"),
        ("Title only", None, None),
    ]
    assert (
        found[0].abstract == "The dominant sequence transduction models."
        and found[1].where == "record 2 (line 10)"
    )


def test_a_record_no_er_line_ends_is_named() -> None:
    with pytest.raises(LibraryError) as refused:
        parse_ris(RIS + "TY  - JOUR\nTI  - Cut short\n")
    assert refused.value.problems == ["record 4 (line 18): no ER line ends it (file cut short?)"]


def test_a_record_with_nothing_usable_is_named() -> None:
    with pytest.raises(LibraryError, match=r"record 1 \(line 1\): no title, arXiv id or DOI"):
        parse_ris("TY  - JOUR\nPY  - 2020\nER  - \n")
