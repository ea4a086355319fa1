"""Bytes to text: UTF-8 (and BOM-marked encodings) in, binary and empty files out with a located error."""

from __future__ import annotations

import codecs

import pytest

from digest.ingest.decode import decode
from digest.ingest.entries import ParseError


def test_utf8_with_or_without_a_bom_is_read():
    assert decode("Pøda: Prompt-driven\n".encode()) == "Pøda: Prompt-driven\n"
    assert decode(codecs.BOM_UTF8 + b"title\n") == "title\n"


def test_utf16_marked_by_its_bom_is_read():
    assert decode("μLO: Learned Optimizers".encode("utf-16")) == "μLO: Learned Optimizers"


@pytest.mark.parametrize(("data", "message"), [(b"", "empty file"), (b" \n\t\n", "only whitespace")])
def test_empty_files_are_refused(data, message):
    with pytest.raises(ParseError, match=message):
        decode(data)


def test_binary_data_is_refused_naming_the_offset_and_line():
    with pytest.raises(ParseError, match=r"binary data, not text: NUL byte at offset 6 \(line 2\)"):
        decode(b"title\n\x00\x01\x02")


def test_bytes_that_are_not_utf8_are_refused_naming_the_offset_and_line():
    with pytest.raises(ParseError, match=r"not utf-8 text \(binary\?\): byte 0xff at offset 8 \(line 3\)"):
        decode(b"one\ntwo\n\xff\xfe\xfd")
