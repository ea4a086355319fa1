"""Which reader a library file gets (by content, whatever its name), and the limits every library keeps to."""

from __future__ import annotations

import json

import pytest

from digest.references import MAX_ENTRIES, LibraryError, read_library

BIB = b"@article{a, title = {Attention Is All You Need}, eprint = {1706.03762}}\n"
CSL = json.dumps([{"id": "a", "title": "Attention Is All You Need"}]).encode()
RIS = b"TY  - JOUR\nTI  - Attention Is All You Need\nER  - \n"
IDS = b"1706.03762\n"


@pytest.mark.parametrize("data", [BIB, CSL, RIS, IDS, b"\xef\xbb\xbf" + RIS, b"% comment\n" + BIB])
def test_each_format_is_recognised_by_its_content(data: bytes) -> None:
    (reference,) = read_library(data, 10_000)
    assert reference.title == "Attention Is All You Need" or reference.arxiv_id == "1706.03762"


def test_a_file_over_the_limit_is_refused_unread() -> None:
    with pytest.raises(LibraryError, match="too big \\(the limit is 70 bytes\\)"):
        read_library(BIB, 70)


def test_binary_or_empty_files_and_files_without_entries_are_refused() -> None:
    with pytest.raises(LibraryError, match="NUL byte"):
        read_library(b"%PDF-1.7\x00\x01", 10_000)
    with pytest.raises(LibraryError, match="empty file"):
        read_library(b"", 10_000)
    with pytest.raises(LibraryError, match="no entries found in this list of arXiv ids and DOIs"):
        read_library(b"# nothing but a comment\n", 10_000)


def test_at_most_max_entries_are_read() -> None:
    many = "".join(f"2401.{n:05d}\n" for n in range(MAX_ENTRIES + 1)).encode()
    with pytest.raises(LibraryError, match=f"{MAX_ENTRIES + 1} entries: at most {MAX_ENTRIES}"):
        read_library(many, 10**6)
