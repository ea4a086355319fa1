"""The corpus of a database as the service holds it: the statistics in memory (read again when another
process wrote them), other papers' rows weighed from their stored term counts when they are needed.

Memory is bounded by the statistics (three arrays over the hashed columns), the day's candidate window
(``digest.rank.window``) and a bounded cache of decoded counts, whatever the number of papers stored.

Over 400 lines because indexing new papers, reading stored ones and the model's corpus interface share
the one per-process cache they must keep consistent.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Hashable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from cachetools import LRUCache
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from digest.models import Paper, PaperTerms, SubscriberModel
from digest.rank import embeddings, store
from digest.rank.corpus import MIN_BORROW, borrowing_share, nearest, paper_text, smoothed
from digest.rank.statistics import CorpusStatistics
from digest.rank.tfidf import N_FEATURES, term_counts

COUNTS_CACHE = 5_000  # decoded papers kept per process (~7 KB each for an abstract)
ROWS_CACHE = 10_000  # weighed rows kept per process (~8 KB each)
# Keyword sets' expansions and keyword-only weights kept per process: ~60 and ~120 KB each (expanded keyword
# vectors reach thousands of character columns; bench_daily), so a count of 100,000 subscribers' distinct
# sets would be gigabytes. Both are stored in the database: a miss is one indexed read (~0.2 ms).
KEYWORD_SETS_KEPT = 512
EMBEDDINGS_CACHE = (
    20_000  # decoded embeddings kept per process (1.5 KB each): the liked papers of many models
)
# A short new paper's neighbours are looked for among the papers that arrive with it and at most this many
# of the window's latest: the search is bounded by the day's papers, whatever a file's size.
NEIGHBOUR_POOL = 5_000
DEFAULT_WINDOW = dt.timedelta(days=7)  # the candidate window before the service has built one


@dataclass
class NewPaper:
    """A paper to count in the statistics: stored already, not yet indexed."""

    id: int
    text: str
    first_seen: dt.datetime


class Library:
    """One database's statistics and decoded counts, shared by every session of this process."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.lock = threading.RLock()
        self.statistics = CorpusStatistics()
        self.stamp: tuple[int, str] | None = None
        self.counts: LRUCache[int, tuple[sp.csr_matrix, tuple[int, ...]]] = LRUCache(maxsize=COUNTS_CACHE)
        self.embeddings: LRUCache[int, np.ndarray] = LRUCache(maxsize=EMBEDDINGS_CACHE)
        self.memo = _memo()  # per statistics version (keyword expansions)
        # Kept across versions: values that say themselves when they are stale (keyword weights' basis).
        self.lasting: LRUCache[Hashable, object] = LRUCache(maxsize=KEYWORD_SETS_KEPT)
        # Weighed rows of papers outside the window (liked papers an explanation compares), this version's.
        self.rows: LRUCache[int, sp.csr_matrix] = LRUCache(maxsize=ROWS_CACHE)
        self.windows: dict[Hashable, object] = {}  # the candidate windows (``digest.rank.window``)
        self.window_start: dt.datetime | None = None  # where the last candidate window began
        self.current: Any = None  # that window (``digest.rank.window.Window``), while the statistics hold

    def refresh(self, session: Session) -> None:
        """Read the statistics again if they are not the ones the database holds now."""
        stamp = store.stamp_of(session)
        if stamp == self.stamp:
            return
        with self.lock:
            self.statistics, state = store.load_statistics(session)
            self.stamp = None if state is None else (state.version, state.stamp)
            self.memo, self.windows, self.current = _memo(), {}, None
            self.rows.clear()

    def adopt(self, statistics: CorpusStatistics, stamp: tuple[int, str]) -> None:
        """Statistics this process just wrote (a rolled-back write shows as a stamp the database lacks)."""
        with self.lock:
            self.statistics, self.stamp = statistics, stamp
            self.memo, self.windows, self.current = _memo(), {}, None
            self.rows.clear()


def _memo() -> LRUCache[Hashable, object]:
    return LRUCache(maxsize=KEYWORD_SETS_KEPT)


_LIBRARIES: dict[str, Library] = {}
_LOCK = threading.Lock()


def library_for(session: Session, deferred: Deferred | None = None) -> LibraryView:
    """This database's corpus, current, seen through ``session`` (``deferred``: where a pick leaves its
    writes)."""
    url = session.get_bind().url.render_as_string(hide_password=True)
    with _LOCK:
        library = _LIBRARIES.get(url)
        if library is None:  # built only when missing: a Library holds arrays over the hashed columns
            library = _LIBRARIES[url] = Library(url)
    library.refresh(session)
    return LibraryView(library, session, deferred)


@dataclass
class Deferred:
    """Writes a pick may leave for later, so that many processes picking at once hold no write lock while
    they pick: derived weights to store beside their models, keyword sets' best matches."""

    weights: list[dict[str, object]] = field(default_factory=list)
    matches: dict[tuple[str, ...], tuple[list[int], int]] = field(default_factory=dict)
    keyword_weights: dict[tuple[str, ...], tuple[bytes, int]] = field(default_factory=dict)

    def write(self, session: Session) -> None:
        """Store them (in the caller's, short, transaction); a model voted on meanwhile keeps its state."""
        if self.weights:
            table = SubscriberModel.__table__  # executemany through Core: the ORM wants primary keys
            session.execute(
                update(table)
                .where(table.c.subscriber_id == bindparam("sid"), table.c.version == bindparam("seen"))
                .values(
                    weights=bindparam("blob"),
                    weights_version=bindparam("seen"),
                    weights_basis=bindparam("basis"),
                ),
                self.weights,
            )
        for keywords, (papers, marker) in self.matches.items():
            store.store_matches(session, keywords, papers, marker)
        for keywords, (blob, basis) in self.keyword_weights.items():
            store.store_keyword_weights(session, keywords, blob, basis)


class LibraryView:
    """A library seen through one session: the corpus interface the subscriber model asks for
    (``digest.rank.source.PaperSource``), reading and writing in that session's transaction (or, with
    ``deferred``, leaving the writes of a pick for later)."""

    def __init__(self, library: Library, session: Session, deferred: Deferred | None = None) -> None:
        self.library, self.session, self.deferred = library, session, deferred

    @property
    def identity(self) -> Hashable:
        return self.library.url

    @property
    def statistics(self) -> CorpusStatistics:
        return self.library.statistics

    @property
    def version(self) -> int:
        return self.statistics.version

    @property
    def memo(self) -> MutableMapping[Hashable, object]:
        return self.library.memo

    @property
    def lasting(self) -> LRUCache[Hashable, object]:
        return self.library.lasting

    def __len__(self) -> int:
        return self.statistics.papers

    def encode(self, texts: Sequence[str]) -> sp.csr_matrix:
        return self.statistics.terms.weigh(term_counts(texts))

    def known(self, ids: Sequence[Hashable]) -> list[Hashable]:
        """Those of ``ids`` that are stored papers (counted in the statistics: indexed first if needed)."""
        counts = self._counts([int(i) for i in ids])  # type: ignore[call-overload]
        return [i for i in ids if int(i) in counts]  # type: ignore[call-overload]

    def rows_of(self, ids: Sequence[Hashable], *, cache: bool = True) -> sp.csr_matrix:
        """The papers' rows under the current IDF, short ones smoothed by their neighbours: those of the day's
        window as it holds them, the others weighed from their stored counts (``cache``: keep the decoded
        counts for the next call)."""
        wanted = [int(i) for i in ids]  # type: ignore[call-overload]
        window = self.library.current
        if window is not None and wanted and all(i in window.position for i in wanted):
            return window.rows[[window.position[i] for i in wanted]]
        if not cache:
            return self._weighed(wanted, cache)
        cached = self.library.rows
        found = {i: cached[i] for i in wanted if i in cached}
        missing = [i for i in dict.fromkeys(wanted) if i not in found]
        if missing:  # weighing may index papers first, which empties the cache: keep them here too
            found.update(zip(missing, self._weighed(missing, cache), strict=True))
            for paper in missing:
                cached[paper] = found[paper]
        return sp.vstack([found[i] for i in wanted], format="csr") if wanted else self.weigh([])

    def _weighed(self, wanted: list[int], cache: bool) -> sp.csr_matrix:
        counts = self._counts(wanted, cache)
        neighbours = [counts[i][1] for i in wanted]
        around = sorted({n for found in neighbours for n in found} - set(wanted))
        more = self._counts(around, cache)
        pool = wanted + [n for n in around if n in more]
        position = {paper: at for at, paper in enumerate(pool)}
        rows = self.weigh([counts.get(i, more.get(i))[0] for i in pool])  # type: ignore[index]
        found = [tuple(position[n] for n in near if n in position) for near in neighbours]
        return smoothed(rows[: len(wanted)], found, rows)

    def own_of(self, ids: Sequence[Hashable]) -> sp.csr_matrix:
        wanted = [int(i) for i in ids]  # type: ignore[call-overload]
        counts = self._counts(wanted)
        return self.weigh([counts[i][0] for i in wanted])

    def embeddings_of(self, ids: Sequence[Hashable]) -> np.ndarray | None:
        """Stored embeddings (a paper never changes its text's embedding, so they are cached as read)."""
        wanted = [int(i) for i in ids]  # type: ignore[call-overload]
        cache = self.library.embeddings
        missing = [i for i in dict.fromkeys(wanted) if i not in cache]
        found = embeddings.stored(self.session, missing) if missing else {}
        cache.update(found)
        rows = np.zeros((len(wanted), embeddings.DIMENSION), dtype=np.float32)
        for at, paper in enumerate(wanted):
            vector = found.get(paper)
            if vector is None:
                vector = cache.get(paper)
            if vector is not None:
                rows[at] = vector
        return rows

    def weigh(self, rows: Sequence[sp.csr_matrix]) -> sp.csr_matrix:
        if not rows:
            return sp.csr_matrix((0, N_FEATURES), dtype=np.float32)
        return self.statistics.terms.weigh(sp.vstack(rows, format="csr"))

    def newer_than(self, marker: int) -> tuple[list[Hashable], int]:
        """Papers stored after paper ``marker`` (ids grow), and only those of the candidate window (the last
        one built, else the week before the newest paper): a keyword set's matches never scan the history."""
        start = self.library.window_start or self._default_start()
        # The window through the first_seen_at index, then the marker: with ``id > marker`` in the query
        # SQLite walks the id range instead, every paper since the marker (150,000 papers: 205 ms, not 2).
        window = self.session.scalars(select(Paper.id).where(Paper.first_seen_at >= start))
        ids = sorted(i for i in window if i > marker)
        return ids, max([marker, *ids])  # type: ignore[return-value]

    def _default_start(self) -> dt.datetime:
        newest = self.session.scalar(select(func.max(Paper.first_seen_at)))
        return (newest or dt.datetime.min + DEFAULT_WINDOW) - DEFAULT_WINDOW

    def matches(self, keywords: tuple[str, ...]) -> tuple[list[Hashable], int] | None:
        return store.stored_matches(self.session, keywords)  # type: ignore[return-value]

    def keep_matches(self, keywords: tuple[str, ...], papers: list[Hashable], marker: int) -> None:
        ids = [int(p) for p in papers]  # type: ignore[call-overload]
        if self.deferred is not None:
            self.deferred.matches[keywords] = (ids, marker)
        else:
            store.store_matches(self.session, keywords, ids, marker)

    def background_mean(self) -> np.ndarray | None:
        return self.statistics.background_mean()

    def generality(self, rows: sp.csr_matrix) -> np.ndarray:
        return self.statistics.generality(rows)

    # --- decoded counts, indexing what is not indexed yet ---------------------------------------------
    def _counts(self, ids: list[int], keep: bool = True) -> dict[int, tuple[sp.csr_matrix, tuple[int, ...]]]:
        cache = self.library.counts if keep else {}
        found = {i: cache[i] for i in ids if i in cache}
        missing = [i for i in dict.fromkeys(ids) if i not in found]
        if missing:
            stored = store.stored_counts(self.session, missing)
            unindexed = [i for i in missing if i not in stored]
            if unindexed:  # indexed here, or meanwhile by another process: read again either way
                index_stored(self.session, unindexed)
                stored.update(store.stored_counts(self.session, unindexed))
            rows = store.decode_counts([stored[i][0] for i in missing if i in stored])
            for row, paper in enumerate(i for i in missing if i in stored):
                found[paper] = cache[paper] = (rows[row], stored[paper][1])
        return found


# --- indexing new papers --------------------------------------------------------------------------------


def index_stored(session: Session, ids: Sequence[int], window_days: float = 7.0) -> int:
    """Index stored papers that are not yet (stored before this version, or by hand): their counts, the
    statistics. Returns how many papers that was. Another process indexing at the same time wins: its
    work is taken (the attempt is undone to a savepoint and read again)."""
    for attempt in range(3):
        query = select(Paper.id, Paper.title, Paper.abstract, Paper.first_seen_at).where(
            Paper.id.in_(list(ids)), ~Paper.id.in_(select(PaperTerms.paper_id))
        )
        papers = [
            NewPaper(r.id, paper_text(r.title, r.abstract), r.first_seen_at) for r in session.execute(query)
        ]
        try:
            with session.begin_nested():
                index_papers(session, papers, window_days)
            return len(papers)
        except (store.StatisticsChanged, IntegrityError):
            if attempt == 2:
                raise
            library_for(session)  # read what the other process wrote
    return 0


@dataclass
class Prepared:
    """New papers counted, ready to store: the work of ``prepare_index`` without a write lock held."""

    statistics: CorpusStatistics
    read: tuple[int, str] | None
    counts: dict[int, tuple[bytes, tuple[int, ...]]]
    encoded: dict[str, object]


def index_papers(session: Session, papers: Sequence[NewPaper], window_days: float) -> None:
    """Count new papers in the statistics and store their counts, in the caller's transaction.
    Raises ``store.StatisticsChanged`` if another process wrote the statistics meanwhile (retry)."""
    prepared = prepare_index(session, papers, window_days)
    if prepared is not None:
        write_index(session, prepared)


def prepare_index(session: Session, papers: Sequence[NewPaper], window_days: float) -> Prepared | None:
    """Hash the papers not indexed yet, find the short ones' neighbours among them and the window's
    papers, add them and their rows to a copy of the statistics, encode it all; writes nothing."""
    ids = [p.id for p in papers]
    done = (
        set(session.scalars(select(PaperTerms.paper_id).where(PaperTerms.paper_id.in_(ids))))
        if ids
        else set()
    )
    papers = [p for p in papers if p.id not in done]
    if not papers:
        return None
    view = library_for(session)
    statistics = view.statistics.copy()
    counts = term_counts([p.text for p in papers])
    statistics.count(counts)
    plain = statistics.terms.weigh(counts)
    neighbours, positions, pool = _borrowing(view, statistics, papers, plain, window_days)
    statistics.add_rows(smoothed(plain, positions, pool))
    blobs = {p.id: (store.encode_counts(counts[i]), neighbours[i]) for i, p in enumerate(papers)}
    return Prepared(statistics, view.library.stamp, blobs, store.encoded_statistics(statistics))


def write_index(session: Session, prepared: Prepared) -> None:
    """Store what ``prepare_index`` made (StatisticsChanged if the statistics moved since it read them)."""
    store.store_counts(session, prepared.counts)
    stamp = store.save_statistics(session, prepared.statistics, prepared.read, encoded=prepared.encoded)
    library_for(session).library.adopt(prepared.statistics, (prepared.statistics.version, stamp))


def revise_papers(session: Session, papers: Sequence[NewPaper]) -> None:
    """Papers whose text grew (an abstract arrived with a later listing): their counts replaced, the
    document frequencies and the corpus-mean sum moved from the old text to the new one."""
    if not papers:
        return
    view = library_for(session)
    old = view._counts([p.id for p in papers], keep=False)
    papers = [p for p in papers if p.id in old]
    if not papers:
        return
    statistics = view.statistics.copy()
    before = sp.vstack([old[p.id][0] for p in papers], format="csr")
    after = term_counts([p.text for p in papers])
    statistics.terms.replace(before, after)
    statistics.version += 1
    statistics.mean_sum -= np.bincount(
        (weighed := statistics.terms.weigh(before)).indices, weighed.data, minlength=N_FEATURES
    )
    statistics.add_rows(statistics.terms.weigh(after))
    for paper, row in zip(papers, after, strict=True):
        stored = session.get(PaperTerms, paper.id)
        if stored is not None:
            stored.counts = store.encode_counts(row)
        view.library.counts.pop(paper.id, None)
    stamp = store.save_statistics(session, statistics, view.library.stamp)
    view.library.adopt(statistics, (statistics.version, stamp))


def _borrowing(
    view: LibraryView,
    statistics: CorpusStatistics,
    papers: Sequence[NewPaper],
    plain: sp.csr_matrix,
    window_days: float,
) -> tuple[list[tuple[int, ...]], list[tuple[int, ...]], sp.csr_matrix]:
    """For each new paper, the ids of the papers it borrows from (none for a paper with an abstract), the
    same as positions in a pool of rows, and that pool: the new papers and the window's, under
    ``statistics``."""
    short = np.flatnonzero(borrowing_share(plain) >= MIN_BORROW)
    if short.size == 0:
        return [()] * len(papers), [()] * len(papers), plain
    new = {p.id for p in papers}
    since = max(p.first_seen for p in papers) - dt.timedelta(days=window_days)
    query = (
        select(PaperTerms.paper_id)
        .join(Paper)
        .where(Paper.first_seen_at >= since)
        .order_by(PaperTerms.paper_id.desc())
        .limit(NEIGHBOUR_POOL)
    )
    others = [i for i in view.session.scalars(query) if i not in new]
    stored = view._counts(others, keep=False)
    others = [i for i in others if i in stored]
    rows = [stored[i][0] for i in others]
    pool = (
        sp.vstack([plain, statistics.terms.weigh(sp.vstack(rows, format="csr"))], format="csr")
        if rows
        else plain
    )
    row, found = nearest(pool, statistics.terms.df, statistics.papers, short)
    positions: list[list[int]] = [[] for _ in papers]
    for r, f in zip(row, found, strict=True):
        positions[int(r)].append(int(f))
    pool_ids = [p.id for p in papers] + others
    ids = [tuple(pool_ids[f] for f in found_at) for found_at in positions]
    return ids, [tuple(f) for f in positions], pool
