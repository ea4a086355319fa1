"""CSL JSON libraries (Zotero's "CSL JSON" export): items, their identifiers, bad items named."""

from __future__ import annotations

import json

import pytest

from digest.references import LibraryError
from digest.references.csl_json import parse_csl_json

ITEMS = [
    {
        "id": "http://zotero.org/users/1/items/ABCD",
        "type": "article",
        "title": "Attention Is All You Need",
        "abstract": "The dominant sequence transduction models.",
        "DOI": "10.48550/arXiv.1706.03762",
        "number": "arXiv:1706.03762",
        "publisher": "arXiv",
        "URL": "http://arxiv.org/abs/1706.03762",
    },
    {"id": "b", "type": "paper-conference", "title": "Only a title"},
    {
        "id": "c",
        "type": "article-journal",
        "title": "Journal paper",
        "DOI": "https://doi.org/10.1145/3292500.3330701",
    },
]


def test_zotero_items_give_their_titles_abstracts_and_identifiers() -> None:
    found = parse_csl_json(json.dumps(ITEMS))
    assert [(r.title, r.arxiv_id, r.doi) for r in found] == [
        ("Attention Is All You Need", "1706.03762", "10.48550/arxiv.1706.03762"),
        ("Only a title", None, None),
        ("Journal paper", None, "10.1145/3292500.3330701"),
    ]
    assert (
        found[0].abstract == "The dominant sequence transduction models." and found[1].where == "item 2 ('b')"
    )


def test_an_object_with_items_is_read_too() -> None:
    assert len(parse_csl_json(json.dumps({"items": ITEMS}))) == 3


def test_bad_items_and_bad_json_are_named() -> None:
    with pytest.raises(LibraryError) as refused:
        parse_csl_json(json.dumps([*ITEMS, {"id": "d", "type": "book"}, "text"]))
    assert refused.value.problems == ["item 4 ('d'): no title, arXiv id or DOI", "item 5: not an object"]
    with pytest.raises(LibraryError, match="invalid JSON at line 1, column 3"):
        parse_csl_json("[{")
    with pytest.raises(LibraryError, match="expected a list of items"):
        parse_csl_json('"a string"')
