"""Bytes to text for every digest format, refusing binary data with a message that says where."""

from __future__ import annotations

import codecs

from digest.ingest.entries import ParseError

# A byte-order mark names the encoding outright (Unicode FAQ, "UTF-8, UTF-16, UTF-32 & BOM").
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def decode(data: bytes) -> str:
    """The text of a digest file: UTF-8 (or a BOM-marked UTF-16/32); binary data raises ParseError."""
    if not data.strip():
        raise ParseError("empty file" if not data else "the file holds only whitespace")
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return _decode(data, encoding)
    nul = data.find(b"\x00")
    if nul >= 0:
        raise ParseError(f"binary data, not text: NUL byte at offset {nul} (line {_line_of(data, nul)})")
    return _decode(data, "utf-8")


def _decode(data: bytes, encoding: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        bad = data[exc.start : exc.start + 1].hex()
        raise ParseError(
            f"not {encoding} text (binary?): byte 0x{bad} at offset {exc.start} "
            f"(line {_line_of(data, exc.start)}): {exc.reason}"
        ) from None


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1
