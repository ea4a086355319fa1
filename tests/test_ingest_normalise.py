"""Title keys, display text and arXiv ids: what makes two listings one paper."""

from __future__ import annotations

import pytest

from digest.ingest.normalise import MAX_KEY_CHARS, arxiv_id, clean_text, paper_key, title_key


@pytest.mark.parametrize(
    "variant",
    [
        "Trans-LoRA: towards data-free Transferable Parameter Efficient Finetuning",
        "Trans-LoRA: towards data-free Transferable Parameter\n  Efficient Finetuning",
        "$\\textit{Trans-LoRA}$: towards data-free Transferable Parameter Efficient Finetuning",
        "TRANS LORA — Towards Data Free Transferable Parameter-Efficient Finetuning!",
        "Ｔｒａｎｓ-ＬｏＲＡ: towards data-free transferable parameter efficient finetuning",  # NFKC
    ],
)
def test_case_whitespace_punctuation_line_breaks_and_width_do_not_change_the_title_key(variant):
    assert title_key(variant) == "transloratowardsdatafreetransferableparameterefficientfinetuning"


def test_different_words_give_different_keys():
    assert title_key("Attention Is All You Need") != title_key("Attention Is Not All You Need")


def test_letters_of_other_scripts_and_greek_symbols_are_kept():
    assert title_key("$μ$LO: Compute-Efficient Learned Optimizers") == title_key(
        "μLO: Compute-Efficient Learned Optimizers"
    )
    assert title_key("PØDA") == "pøda"


def test_a_title_without_letters_or_digits_has_an_empty_key():
    assert title_key("?! — …") == ""


def test_very_long_titles_get_a_bounded_key_that_still_tells_them_apart():
    first, second = "x" * 2000 + "a", "x" * 2000 + "b"
    assert len(title_key(first)) <= MAX_KEY_CHARS + 17
    assert title_key(first) != title_key(second)
    assert len(paper_key(None, title_key(first))) <= 512


def test_clean_text_joins_lines_and_drops_control_characters():
    assert clean_text("  ConvLLaVA: Hierarchical\n  Backbones\x00 as\u200b Encoders\t") == (
        "ConvLLaVA: Hierarchical Backbones as Encoders"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2405.15738", "2405.15738"),
        ("2405.15738v3", "2405.15738"),
        (" 0704.0001 ", "0704.0001"),
        ("hep-th/9901001v2", "hep-th/9901001"),
        ("math.GT/0309136", "math.GT/0309136"),
        ("2405.157", None),
        ("２４０５.１５７３８", None),  # full-width digits are no arXiv id
        ("not-an-id", None),
        ("", None),
        ("2405.15738" + "1" * 80, None),
    ],
)
def test_arxiv_ids_lose_their_version_and_anything_else_is_none(value, expected):
    assert arxiv_id(value) == expected


def test_paper_key_prefers_the_arxiv_id():
    assert paper_key("2405.15738", "somekey") == "arxiv:2405.15738"
    assert paper_key(None, "somekey") == "title:somekey"
