"""Hugging Face "Daily Papers" page dumps: the text a browser copies from huggingface.co/papers.

Two layouts occur (both in the seeds): *blank-lines* — title, blank line, abstract, blank line, … — and
*alternating* — title and abstract on alternate lines with no blank line. Both reduce to the same stream
of non-blank lines, so one line-by-line reader handles both; the layout detector only names the layout
for the record (``DigestFile.format``). Each line is one of:

* page chrome ("new", "Subscribe", "byAK and the research community", "Get trending papers in your
  email inbox!" and its "… once a day!" variant) — dropped. "Subscribe" glued to the first title
  ("SubscribeParameter-Efficient…", the button text run into the list) is cut off.
* a date: "Mar 13", "March 13", "Mar 13, 2024" or "2024-03-13". A date with no year takes the latest
  year that does not put it after the file's own date (``anchor``: the date in the file name, else the
  file's modification date). It dates the entries below it. A month/day that is no calendar date
  ("Feb 30") rejects the file.
* a paper link ("https://huggingface.co/papers/<id>", "https://arxiv.org/abs/<id>", "arXiv:<id>") —
  gives the arXiv id of the entry above it.
* decoration with no letter or digit ("---", "•") — dropped.
* an *abstract*: at least ``ABSTRACT_MIN_CHARS`` characters, or a sentence of at least
  ``ABSTRACT_MIN_WORDS`` words ending in a full stop (no title in 4,024 real API titles ends in one,
  and none is longer than 170 characters). It belongs to the title line just above it; one with no
  title above it (an entry without a title) rejects the file, naming the line.
* otherwise a *title*. A title followed by another title is a title-only entry (no abstract).

A file is only taken for a page dump when it shows the page chrome or at least one title followed by
an abstract of ``ABSTRACT_MIN_CHARS`` or more (real abstracts are one long line; wrapped prose is not).
Anything else (a licence, a README, a word list) is rejected as "no papers found" rather than turned
into junk papers. Markup is refused first: a page copied from a browser has no tags, so a file where
``MARKUP_SHARE`` of the lines are XML/HTML tags (a feed, a saved web page) is no page dump, whatever
else it holds (an arXiv RSS file once became 128 junk papers here).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from digest.ingest.entries import Entry, ParsedDigest, ParseError
from digest.ingest.normalise import arxiv_id, clean_text

ABSTRACT_MIN_CHARS = 200
ABSTRACT_MIN_WORDS = 12
MARKUP_SHARE = 0.1

_CHROME = re.compile(
    r"^(?:new|subscribe|byak and the research community"
    r"|get trending papers in your email inbox(?: once a day)?!?)$",
    re.IGNORECASE,
)
_GLUED_SUBSCRIBE = re.compile(r"^Subscribe(?=[A-Z0-9\"'“(\[])")
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_FULL_MONTHS = "january february march april may june july august september october november december".split()
_MONTH_DAY = re.compile(r"^(?P<month>[A-Za-z]{3,9})\.? (?P<day>\d{1,2})(?:,? (?P<year>\d{4}))?$")
_ISO_DATE = re.compile(r"^(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})$")
# A line that opens with a tag, a closing tag, a declaration or a processing instruction: <item>, </a>,
# <?xml …?>, <!DOCTYPE …>, <dc:creator>…
_TAG_LINE = re.compile(r"^<(?:[/?!]|[A-Za-z][\w:.-]*(?:\s[^<>]*)?/?>)")
_PAPER_LINK = re.compile(
    r"^(?:https?://(?:www\.)?(?:huggingface\.co/papers|arxiv\.org/(?:abs|pdf))/|arxiv:\s*)(?P<id>[^\s?#]+)$",
    re.IGNORECASE,
)


@dataclass
class _Reader:
    """Line-by-line state: the entry being built, the date in force, what was seen so far."""

    anchor: dt.date
    default_date: dt.date | None
    entries: list[Entry] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    pending: Entry | None = None
    current_date: dt.date | None = None
    first_date: dt.date | None = None
    chrome_seen: bool = False
    pairs: int = 0
    orphan: str | None = None  # the first abstract with no title above it
    content_lines: int = 0

    def feed(self, number: int, line: str) -> None:
        if _CHROME.match(line):
            self.chrome_seen = True
            return
        if self.content_lines == 0 and _GLUED_SUBSCRIBE.match(line):
            self.chrome_seen = True
            line = line[len("Subscribe") :]
        self.content_lines += 1
        date = parse_date_line(line, self.anchor, number)
        if date is not None:
            self._set_date(date)
        elif (link := _PAPER_LINK.match(line)) is not None:
            self._link(number, link.group("id"))
        elif not any(ch.isalnum() for ch in line):
            self.notes.append(f"line {number}: ignored decoration {line[:20]!r}")
        elif is_abstract(line):
            self._abstract(number, line)
        else:
            self._title(number, line)

    def _set_date(self, date: dt.date) -> None:
        self.flush()
        self.current_date = date
        self.first_date = self.first_date or date

    def _link(self, number: int, value: str) -> None:
        found = arxiv_id(value)
        if self.pending is None and not self.entries:
            self.notes.append(f"line {number}: paper link before any title ignored")
            return
        target = self.pending or self.entries[-1]
        if found and target.arxiv_id is None:
            target.arxiv_id = found

    def _abstract(self, number: int, line: str) -> None:
        if self.pending is None:
            self.orphan = self.orphan or f"line {number}: an abstract with no title above it: {line[:70]!r}…"
            return
        self.pending.abstract = clean_text(line)
        # Only an unmistakable abstract vouches for the file being a page dump (see the module doc).
        self.pairs += len(line) >= ABSTRACT_MIN_CHARS
        self.flush()

    def _title(self, number: int, line: str) -> None:
        self.flush()
        day = self.current_date or self.default_date
        self.pending = Entry(title=line, where=f"line {number}", digest_date=day)

    def flush(self) -> None:
        if self.pending is not None:
            self.entries.append(self.pending)
            self.pending = None


def parse_text(text: str, *, anchor: dt.date, name_date: dt.date | None = None) -> ParsedDigest:
    """Parse a page dump. ``anchor`` dates year-less dates; ``name_date`` is the date in the file name."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    refuse_markup(lines)
    reader = _Reader(anchor=anchor, default_date=name_date)
    for number, raw in enumerate(lines, start=1):
        line = clean_text(raw)
        if line:
            reader.feed(number, line)
    reader.flush()
    if not reader.entries or not (reader.chrome_seen or reader.pairs):
        raise ParseError(
            "no papers found: neither Daily Papers page chrome nor a title followed by its abstract "
            "(is this a Hugging Face Daily Papers page dump?)"
        )
    if reader.orphan:  # checked second: for a file that is no page dump at all, that is the better news
        raise ParseError(reader.orphan)
    layout = detect_layout(lines)
    digest_date = reader.first_date or name_date
    return ParsedDigest(f"text/{layout}", reader.entries, digest_date, reader.notes)


def refuse_markup(lines: list[str]) -> None:
    """Raise ParseError when ``MARKUP_SHARE`` or more of the non-blank lines are XML/HTML tags."""
    content = [(number, line.strip()) for number, line in enumerate(lines, start=1) if line.strip()]
    tags = [(number, line) for number, line in content if _TAG_LINE.match(line)]
    if content and len(tags) >= MARKUP_SHARE * len(content):
        number, line = tags[0]
        raise ParseError(
            f"markup, not a Daily Papers page dump: {len(tags)} of {len(content)} lines are XML/HTML tags "
            f"(line {number}: {line[:60]!r}); a feed is read as one only when it starts with '<'"
        )


def detect_layout(lines: list[str]) -> str:
    """'blank-lines' when most neighbouring non-blank lines have a blank line between them, else
    'alternating'."""
    numbers = [number for number, line in enumerate(lines) if line.strip()]
    steps = [later - earlier for earlier, later in zip(numbers, numbers[1:], strict=False)]
    gaps = sum(step > 1 for step in steps)
    return "blank-lines" if gaps * 2 > len(steps) else "alternating"


def is_abstract(line: str) -> bool:
    if len(line) >= ABSTRACT_MIN_CHARS:
        return True
    return line.endswith(".") and len(line.split()) >= ABSTRACT_MIN_WORDS


def parse_date_line(line: str, anchor: dt.date, number: int) -> dt.date | None:
    """The date a date line names (year inferred from ``anchor`` when absent), or None if not a date."""
    match = _MONTH_DAY.match(line) or _ISO_DATE.match(line)
    if match is None:
        return None
    month = _month_number(match.group("month"))
    if month is None:
        return None
    day, year = int(match.group("day")), match.group("year")
    try:
        return dt.date(int(year), month, day) if year else infer_year(month, day, anchor)
    except ValueError:
        raise ParseError(f"line {number}: {line!r} is not a calendar date") from None


def infer_year(month: int, day: int, anchor: dt.date) -> dt.date:
    """The latest ``month``/``day`` not after ``anchor`` (Feb 29 walks back to a leap year)."""
    for year in range(anchor.year, anchor.year - 9, -1):
        try:
            candidate = dt.date(year, month, day)
        except ValueError:
            continue
        if candidate <= anchor:
            return candidate
    raise ValueError(f"no year puts {month}/{day} on or before {anchor}")


def _month_number(word: str) -> int | None:
    if word.isdigit():
        return int(word)
    word = word.lower()
    for number, (short, full) in enumerate(zip(_MONTHS, _FULL_MONTHS, strict=True), start=1):
        if word in (short, full) or (len(word) >= 3 and full.startswith(word)):
            return number
    return None
