"""BibTeX libraries: identifiers from any field a reference manager uses, LaTeX decoded, bad blocks named."""

from __future__ import annotations

import pytest

from digest.references import LibraryError
from digest.references.bibtex import parse_bibtex

ZOTERO = r"""
@misc{vaswani_attention_2017,
	title = {Attention {Is} {All} {You} {Need}},
	url = {http://arxiv.org/abs/1706.03762},
	doi = {10.48550/arXiv.1706.03762},
	abstract = {The dominant sequence transduction models are based on complex recurrent networks.},
	publisher = {arXiv},
	author = {Vaswani, Ashish and Shazeer, Noam},
	year = {2017},
	note = {arXiv:1706.03762 [cs]},
}

@inproceedings{devlin-etal-2019-bert,
    title = "{BERT}: Pre-training of Deep Bidirectional Transformers for Language Understanding",
    doi = "10.18653/v1/N19-1423",
}

@article{scholar,
  title={Sch{\"o}lkopf's kernels revisited},
  journal={arXiv preprint arXiv:2401.01234},
}

@article{eprint, title = {An eprint}, eprint = {2312.00001v2}, archivePrefix = {arXiv}}
"""


def test_a_zotero_export_gives_titles_abstracts_and_identifiers() -> None:
    found = parse_bibtex(ZOTERO)
    assert [(r.arxiv_id, r.doi) for r in found] == [
        ("1706.03762", "10.48550/arxiv.1706.03762"),
        (None, "10.18653/v1/n19-1423"),
        ("2401.01234", None),  # Google Scholar's "arXiv preprint arXiv:…" journal
        ("2312.00001", None),
    ]
    assert found[0].title == "Attention Is All You Need" and found[0].abstract.startswith("The dominant")
    assert found[2].title == "Schölkopf's kernels revisited"
    assert found[1].where == "entry 'devlin-etal-2019-bert' (line 13)"


def test_every_bad_entry_is_named_with_its_line() -> None:
    broken = ZOTERO + "\n@article{nothing, year = {2020}}\n@misc{cut,\n  title = {Never closed\n"
    with pytest.raises(LibraryError) as refused:
        parse_bibtex(broken + "@article{scholar, title={Twice}}\n")
    problems = refused.value.problems
    assert sorted(problems) == [
        "entry 'nothing' (line 25): no title, arXiv id or DOI",
        "entry 'scholar' (line 28): the key is used twice",
        # the block bibtexparser could not read, in its words
        "line 26: Unexpected block start: `@article`. Was still looking for field-value closing `}`",
    ]
