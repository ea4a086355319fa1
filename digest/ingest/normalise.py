"""Clean display text and identity keys for papers: the title key and the arXiv id.

Two titles name the same paper when their *title keys* agree. The key keeps only letters and digits,
after Unicode NFKC folding and case folding, so case, whitespace, line breaks and punctuation do not
matter: "Trans-LoRA: towards data-free…" (API), "$\\textit{Trans-LoRA}$: towards data-free…" (its LaTeX
twin) and "TRANS LORA towards data free…" all give ``transloratowardsdatafree…``. Dropping the spaces as
well as the punctuation is deliberate: sources disagree on "Only-IF:Revealing" vs "Only-IF: Revealing",
while two different papers whose titles differ only in spacing or punctuation do not occur in practice.
LaTeX font commands (``\\textit``, ``\\mathbf``…) are dropped first; symbol commands (``\\times``) stay
words, as the API's plain titles spell them ("LLMtimesMapReduce").
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

# Keys longer than this are cut and suffixed with a hash, so ``title:<key>`` fits the 512-char column.
MAX_KEY_CHARS = 400

_SPACE = re.compile(r"\s+")
# Control and zero-width characters, and lone surrogates (JSON "\ud800" escapes): no database stores
# those (PostgreSQL refuses NUL in text; UTF-8 cannot encode a surrogate).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\ufeff\ud800-\udfff]")
_NOT_WORD = re.compile(r"[\W_]+")
# LaTeX font commands wrap a word without being part of it: "$\\textit{Trans-LoRA}$" is "Trans-LoRA".
_LATEX_FONT = re.compile(r"\\(?:text(?:it|bf|sc|tt|rm|sf|up)?|math(?:rm|bf|it|cal|bb|sf|tt)|emph|mbox)\b")
# arXiv identifier schemes: https://info.arxiv.org/help/arxiv_identifier.html
_ARXIV_NEW = re.compile(r"^(\d{4}\.\d{4,5})(v\d+)?$", re.ASCII)
_ARXIV_OLD = re.compile(r"^([a-z]+(?:-[a-z]+)*(?:\.[A-Z]{2})?/\d{7})(v\d+)?$", re.ASCII)
# DOI syntax (doi.org/the-identifier, "DOI Handbook" 2.2): "10." + registrant code + "/" + any suffix.
_DOI = re.compile(r"^10\.\d{4,9}/\S+$")
_DOI_PREFIX = re.compile(r"^(?:https?://(?:dx\.)?doi\.org/|doi:\s*)", re.IGNORECASE)
# arXiv registers every paper as 10.48550/arXiv.<id> (info.arxiv.org/help/doi.html).
ARXIV_DOI_PREFIX = "10.48550/arxiv."
MAX_DOI_CHARS = 255


def clean_text(value: str) -> str:
    """Display form: NFC, control characters dropped, every run of whitespace (line breaks too) one space."""
    value = unicodedata.normalize("NFC", value)
    value = _CONTROL.sub(" ", value)
    return _SPACE.sub(" ", value).strip()


def storable(value: str) -> str:
    """``value`` with NUL bytes and lone surrogates escaped, so any message or file name can be stored
    and printed (file names may hold undecodable bytes, messages quote bad input)."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def title_key(title: str) -> str:
    """The dedupe key of a title: letters and digits only, NFKC case-folded; '' when it has none."""
    folded = unicodedata.normalize("NFKC", _LATEX_FONT.sub("", title)).casefold()
    key = _NOT_WORD.sub("", folded)
    if len(key) > MAX_KEY_CHARS:
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        key = f"{key[:MAX_KEY_CHARS]}~{digest}"
    return key


def arxiv_id(value: str) -> str | None:
    """The arXiv id without its version suffix, or None when ``value`` is not one."""
    value = value.strip()
    if len(value) > 64:
        return None
    for pattern in (_ARXIV_NEW, _ARXIV_OLD):
        match = pattern.match(value)
        if match:
            return match.group(1)
    return None


def doi(value: str) -> str | None:
    """A DOI in the lower case it is compared in (DOIs are case-insensitive), without a resolver prefix
    ("https://doi.org/", "doi:"); None when ``value`` is not one."""
    text = _DOI_PREFIX.sub("", value.strip()).strip().lower()
    return text if _DOI.match(text) and len(text) <= MAX_DOI_CHARS else None


def arxiv_id_of_doi(value: str) -> str | None:
    """The arXiv id an arXiv DOI (10.48550/arXiv.2401.12345) names, else None."""
    found = doi(value)
    if found is None or not found.startswith(ARXIV_DOI_PREFIX):
        return None
    return arxiv_id(found.removeprefix(ARXIV_DOI_PREFIX))


def paper_key(arxiv: str | None, key: str) -> str:
    """``Paper.key``: the arXiv id when known, else the title key."""
    return f"arxiv:{arxiv}" if arxiv else f"title:{key}"
