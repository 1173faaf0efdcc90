"""Story clustering, pure: shingles, an inverted index of them, the join-or-start decision.

The same event reported by several feeds becomes one story. Each item is reduced to a set of
shingles (content words of title + summary); the similarity of two items is the Jaccard
similarity of their sets. Candidates come from `ShingleIndex`, an inverted index from shingle
to the latest `POSTINGS_CAP` items carrying it: every carrier of a rare word (a name, a place:
at a threshold as low as 0.08 the real signal), only the newest coverage for a word that is
stop-like in the window ("ukraine", "talks"), so the cost per item stays flat however crowded
the window is. `choose_story` decides among the candidates by exact Jaccard similarity.

The decision asks more similarity the further apart two items appeared: coverage of one event
clusters within hours, while a follow-up a day later that merely shares actors and vocabulary
(the next round of talks, another statement by the same minister) must look almost like a
copy to be taken for the same story. The numbers behind the defaults are in docs/decisions.md.

Nothing here does I/O or reads the clock: the store path (monitor/store/stories.py) and the
evaluation (monitor/evaluate_stories.py) both call `plan_batch` with what they looked up.
"""

from __future__ import annotations

import heapq
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from scipy.sparse import csr_matrix

from monitor.settings import StoriesSettings
from monitor.types import Item, MatchResult

#: Items with fewer shingles than this are too short to be compared or hashed for duplicates.
MIN_SHINGLES = 3
#: Words are cut to this many characters (a crude stemmer: signed/signing, Zelensky/Zelenskyy).
STEM_CHARS = 6
#: A shingle carried by more than this share of the indexed items is stop-like there …
STOP_LIKE_SHARE = 0.005
#: … or by more than this many, in a small index.
MIN_STOP_LIKE = 50

_WORD = re.compile(r"[^\W_]+")
_STOPWORDS = frozenset(
    """
    a about above after again against ago all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each
    either else ever few for from further had has have having he her here hers him his how
    i if in into is it its itself just least less many may me might more most much must my
    near neither no nor not now of off on once one only or other our ours out over own per
    same she should since so some such than that the their theirs them then there these they
    this those through to too under until up upon us very via was we were what when where
    whether which while who whom whose why will with within without would yet you your s t
    said says say saying told tells tell according added adds reported reports report
    new news live latest update updates updated read more full story stories video watch
    monday tuesday wednesday thursday friday saturday sunday today yesterday tomorrow
    week weeks day days year years time times first last next two three
    """.split()  # noqa: SIM905
)


@dataclass(frozen=True, slots=True)
class NewItem:
    """A freshly stored item handed to story assignment, with what the matcher found in it."""

    item_id: int
    item: Item
    #: Actor ids, topic ids and terms from the item's MatchResult (empty when it did not match).
    actors: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()
    terms: tuple[str, ...] = ()

    @classmethod
    def from_match(cls, item_id: int, item: Item, result: MatchResult | None) -> NewItem:
        """Actors and topics of a match that passed; terms are the topic phrases it hit."""
        if result is None or not result.matched:
            return cls(item_id, item)
        terms = tuple(dict.fromkeys(h.phrase.casefold() for h in result.hits if h.kind == "topic"))
        return cls(item_id, item, tuple(result.actors), tuple(result.topics), terms)


@dataclass(frozen=True, slots=True)
class StoryAssignment:
    """Where assignment put one new item (returned to the pipeline, one per new item)."""

    item_id: int
    story_id: int
    #: True when this item started the story.
    new_story: bool
    #: The earliest stored item with the same canonical URL or content hash, if another.
    duplicate_of: int | None
    #: The already-placed item that drew this one into its story, if any.
    via_item_id: int | None
    #: Estimated similarity to `via_item_id` (1.0 for exact duplicates, 0.0 for a new story).
    similarity: float


@dataclass(frozen=True, slots=True)
class StoryRules:
    """The decision's parameters: the window and how much similarity each hour apart needs."""

    window: timedelta
    #: Estimated Jaccard similarity needed between items that appeared at the same moment.
    threshold: float
    #: Added to the threshold for every hour between the two items.
    slope_per_hour: float

    @classmethod
    def from_settings(cls, settings: StoriesSettings) -> StoryRules:
        return cls(
            window=timedelta(seconds=settings.window),
            threshold=settings.threshold,
            slope_per_hour=settings.threshold_slope,
        )

    def required(self, gap: timedelta) -> float:
        """Similarity two items `gap` apart need to be one story (above 1: never)."""
        if abs(gap) > self.window:
            return float("inf")
        return self.threshold + self.slope_per_hour * abs(gap).total_seconds() / 3600


@dataclass(frozen=True, slots=True, eq=False)
class Fingerprint:
    """What clustering keeps of an item: its set of shingles."""

    shingles: frozenset[str]

    @property
    def comparable(self) -> bool:
        return len(self.shingles) >= MIN_SHINGLES


@dataclass(frozen=True, slots=True)
class Prepared:
    """A new item ready for the decision: id, when it appeared, its fingerprint."""

    item_id: int
    appeared_at: datetime
    fingerprint: Fingerprint
    #: The root of its exact-duplicate group (an earlier item with the same URL or text).
    duplicate_of: int | None = None


@dataclass(frozen=True, slots=True)
class Candidate:
    """An already-placed item that shares a shingle with a new one."""

    item_id: int
    #: Its story, or None when it has none (stored before stories existed).
    story_id: int | None
    appeared_at: datetime
    shingles: frozenset[str] = field(compare=False)


@dataclass(frozen=True, slots=True)
class Decision:
    """Which story a new item joins: an existing story, a story started earlier in the batch
    (`leader_id`, the item that started it), or a story of its own (`leader_id` = itself)."""

    item_id: int
    story_id: int | None
    leader_id: int | None
    duplicate_of: int | None
    via_item_id: int | None
    similarity: float

    @property
    def starts_story(self) -> bool:
        return self.story_id is None and self.leader_id == self.item_id


# --- text → shingles ----------------------------------------------------------------------


class _DropCombining(dict[int, str | None]):
    """`str.translate` table deleting combining marks, filled as characters are met."""

    def __missing__(self, code: int) -> str | None:
        value = None if unicodedata.combining(chr(code)) else chr(code)
        self[code] = value
        return value


_DROP_COMBINING = _DropCombining()


def _fold(text: str) -> str:
    folded = text.casefold()
    if folded.isascii():
        return folded
    return unicodedata.normalize("NFKD", folded).translate(_DROP_COMBINING)


def content_words(text: str) -> list[str]:
    """Casefolded, accent-free words without punctuation or stopwords, cut to STEM_CHARS."""
    return [w[:STEM_CHARS] for w in _WORD.findall(_fold(text)) if w not in _STOPWORDS]


def shingles(title: str, summary: str) -> frozenset[str]:
    """The set compared between items: the content words of title and summary."""
    return frozenset(content_words(f"{title}\n{summary}"))


def appeared_at(item: Item) -> datetime:
    """When an item appeared: its published date, unless missing or later than first seen."""
    if item.published_at is None or item.published_at > item.first_seen_at:
        return item.first_seen_at
    return item.published_at


def fingerprints(sets: Iterable[Iterable[str]]) -> list[Fingerprint]:
    """One fingerprint per shingle set."""
    return [Fingerprint(frozenset(s)) for s in sets]


def similarity(a: frozenset[str], b: frozenset[str]) -> float:
    """Jaccard similarity of two shingle sets (0.0 when both are empty)."""
    shared = len(a & b)
    union = len(a) + len(b) - shared
    return shared / union if union else 0.0


# --- the in-memory index ------------------------------------------------------------------


class ShingleIndex:
    """Inverted index shingle → placed items, for candidate lookup within a window.

    Holds `Candidate` records (id, story, appearance, shingles). Each shingle remembers only
    the latest `postings_cap` items that carry it: for a rare word (a name, a place) that is
    every carrier in the window, for a stop-like word of the window ("ukraine", "talks") only
    the newest coverage, so a lookup costs at most `postings_cap` per shingle however crowded
    the window is. Adding an id again replaces its record, so replaying an addition is
    harmless. Removed ids stay in the postings until they outnumber the live items.
    """

    def __init__(self, min_stop_like: int = MIN_STOP_LIKE) -> None:
        self.min_stop_like = min_stop_like
        self._entries: dict[int, Candidate] = {}
        self._postings: dict[str, list[int]] = defaultdict(list)
        self._by_time: list[tuple[datetime, int]] = []
        self._stale = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._entries

    def get(self, item_id: int) -> Candidate | None:
        return self._entries.get(item_id)

    def entries(self) -> list[Candidate]:
        """Every indexed item."""
        return list(self._entries.values())

    def add(self, entries: Iterable[Candidate]) -> None:
        """Index placed items (a record for a known id replaces the old one)."""
        for entry in entries:
            old = self._entries.get(entry.item_id)
            self._entries[entry.item_id] = entry
            if old is not None and old.shingles == entry.shingles:
                continue
            if old is not None:
                self._stale += 1
            for s in entry.shingles:
                self._postings[s].append(entry.item_id)
            heapq.heappush(self._by_time, (entry.appeared_at, entry.item_id))

    def remove(self, item_ids: Iterable[int]) -> None:
        for item_id in item_ids:
            if self._entries.pop(item_id, None) is not None:
                self._stale += 1
        self._compact_if_stale()

    def evict(self, before: datetime) -> int:
        """Forget items that appeared before `before`; how many were dropped."""
        dropped = 0
        while self._by_time and self._by_time[0][0] < before:
            when, item_id = heapq.heappop(self._by_time)
            entry = self._entries.get(item_id)
            if entry is not None and entry.appeared_at == when:
                del self._entries[item_id]
                self._stale += 1
                dropped += 1
        self._compact_if_stale()
        return dropped

    def stop_like(self) -> int:
        """Carriers above which a shingle is stop-like in the current window."""
        return max(self.min_stop_like, int(len(self._entries) * STOP_LIKE_SHARE))

    def lookup(self, shingle_set: frozenset[str], threshold: float) -> list[Candidate]:
        """Indexed items that may reach Jaccard `threshold` with `shingle_set`: they share two
        shingles that are not stop-like in the window, or one when both sets are so short
        that one shared shingle can reach the threshold."""
        limit = self.stop_like()
        carriers: list[int] = []
        for s in shingle_set:
            posting = self._postings.get(s)
            if posting and len(posting) <= limit:
                carriers += posting
        counts = Counter(carriers)
        entries = self._entries
        # One shared shingle reaches the threshold only if |A| + |B| ≤ (1 + t) / t.
        room = (1 + threshold) / threshold - len(shingle_set) if threshold > 0 else float("inf")
        if room < MIN_SHINGLES:
            found = [entries.get(i) for i, n in counts.items() if n > 1]
        else:
            found = [
                entries.get(i)
                for i, n in counts.items()
                if n > 1 or (i in entries and len(entries[i].shingles) <= room)
            ]
        return [e for e in found if e is not None]

    def _compact_if_stale(self) -> None:
        if self._stale <= max(1000, len(self._entries)):
            return
        postings: dict[str, list[int]] = defaultdict(list)
        live = sorted(self._entries.values(), key=lambda e: (e.appeared_at, e.item_id))
        for entry in live:
            for s in entry.shingles:
                postings[s].append(entry.item_id)
        self._postings = postings
        self._by_time = [(e.appeared_at, e.item_id) for e in live]
        self._stale = 0


# --- the decision -------------------------------------------------------------------------


def choose_story(
    new: Prepared, candidates: Iterable[Candidate], rules: StoryRules
) -> tuple[Candidate, float] | None:
    """The candidate whose story a new item joins (with the similarity), or None for a new story.

    A candidate qualifies when its similarity reaches what the time between the two items
    requires (`rules.required`); among those, the one with the widest margin wins, the
    earlier one on a tie. Items too short to compare never join by similarity.
    """
    if not new.fingerprint.comparable:
        return None
    mine = new.fingerprint.shingles
    size = len(mine)
    best: tuple[float, datetime, Candidate, float] | None = None
    for cand in candidates:
        gap = new.appeared_at - cand.appeared_at
        if abs(gap) > rules.window:
            continue
        shared = len(mine & cand.shingles)
        sim = shared / (size + len(cand.shingles) - shared)
        margin = sim - rules.required(gap)
        if margin >= 0 and (best is None or (-margin, cand.appeared_at) < best[:2]):
            best = (-margin, cand.appeared_at, cand, sim)
    return None if best is None else (best[2], best[3])


def processing_order(batch: Sequence[Prepared]) -> list[Prepared]:
    """New items in the order they appeared (ties: by id), so the first reporter leads."""
    return sorted(batch, key=lambda p: (p.appeared_at, p.item_id))


def plan_batch(
    batch: Sequence[Prepared],
    candidates: Mapping[int, Sequence[Candidate]],
    duplicate_story: Mapping[int, int | None],
    rules: StoryRules,
    min_stop_like: int = MIN_STOP_LIKE,
) -> list[Decision]:
    """Place each new item of a batch, in order of appearance.

    `candidates` holds already-placed items new ones may join (any grouping: every value is
    pooled; the store path passes the window's items under one key). Items of the batch
    placed earlier in this call are candidates too. `duplicate_story[root_id]` is the story
    of a stored duplicate root (None: it has none).
    """
    pooled = {c.item_id: c for group in candidates.values() for c in group}
    ordered = processing_order(batch)
    best = best_candidates(ordered, list(pooled.values()), rules, min_stop_like)
    placed: dict[int, Decision] = {}
    for new in ordered:
        placed[new.item_id] = _decide_one(new, best.get(new.item_id), placed, duplicate_story)
    return [placed[p.item_id] for p in batch]


def _decide_one(
    new: Prepared,
    choice: tuple[Candidate, float] | None,
    placed: Mapping[int, Decision],
    duplicate_story: Mapping[int, int | None],
) -> Decision:
    root = new.duplicate_of
    if root is not None and root in placed:
        return _follow(new, placed[root], root, 1.0, duplicate_of=root)
    if root is not None and duplicate_story.get(root) is not None:
        return Decision(new.item_id, duplicate_story[root], None, root, root, 1.0)
    if choice is None:
        return Decision(new.item_id, None, new.item_id, root, None, 0.0)
    cand, sim = choice
    if cand.item_id in placed:
        return _follow(new, placed[cand.item_id], cand.item_id, sim, duplicate_of=root)
    if cand.story_id is None:
        return Decision(new.item_id, None, new.item_id, root, None, 0.0)
    return Decision(new.item_id, cand.story_id, None, root, cand.item_id, sim)


def _follow(
    new: Prepared, leader: Decision, via: int, sim: float, *, duplicate_of: int | None
) -> Decision:
    return Decision(new.item_id, leader.story_id, leader.leader_id, duplicate_of, via, sim)


# --- the vectorised candidate choice ------------------------------------------------------

#: Rows of the batch multiplied at once (bounds the memory of one sparse product).
ROWS_PER_STEP = 2000


@dataclass(frozen=True, slots=True)
class _Matrix:
    """Stored candidates then comparable batch items (in processing order) as sparse rows."""

    nodes: list[Candidate]
    first_new: int
    #: Non-stop-like shingles, one row per node (CSR, 0/1).
    rare: csr_matrix
    #: Stop-like shingles, one row per node, as packed bits.
    common_bits: np.ndarray
    sizes: np.ndarray
    hours: np.ndarray


def best_candidates(
    ordered: Sequence[Prepared],
    stored: Sequence[Candidate],
    rules: StoryRules,
    min_stop_like: int = MIN_STOP_LIKE,
) -> dict[int, tuple[Candidate, float]]:
    """For each comparable new item (in processing order), the candidate whose story it joins
    and their similarity: a stored item or an earlier item of `ordered`.

    A shingle carried by more than max(`min_stop_like`, STOP_LIKE_SHARE of all nodes) items
    (stored and new) is stop-like: it still counts in the similarity but cannot make two
    items candidates. Candidates share two non-stop-like shingles, or one when both sets are
    so short that one shared shingle can reach the threshold; `choose_story`'s rule picks.
    """
    new_nodes = [
        Candidate(p.item_id, None, p.appeared_at, p.fingerprint.shingles)
        for p in ordered
        if p.fingerprint.comparable
    ]
    if not new_nodes:
        return {}
    nodes = [c for c in stored if len(c.shingles) >= MIN_SHINGLES] + new_nodes
    matrix = _matrix(nodes, len(nodes) - len(new_nodes), min_stop_like)
    out: dict[int, tuple[Candidate, float]] = {}
    for start in range(matrix.first_new, len(nodes), ROWS_PER_STEP):
        stop = min(start + ROWS_PER_STEP, len(nodes))
        for row, col, sim in _best_in_rows(matrix, start, stop, rules):
            out[nodes[row].item_id] = (nodes[col], sim)
    return out


def _matrix(nodes: Sequence[Candidate], first_new: int, min_stop_like: int) -> _Matrix:
    vocab: dict[str, int] = {}
    columns: list[int] = []
    sizes = np.fromiter((len(n.shingles) for n in nodes), dtype=np.int64, count=len(nodes))
    for n in nodes:
        columns.extend(vocab.setdefault(s, len(vocab)) for s in n.shingles)
    cols = np.asarray(columns, dtype=np.int64)
    rows = np.repeat(np.arange(len(nodes), dtype=np.int64), sizes)
    carriers = np.bincount(cols, minlength=len(vocab))
    limit = max(min_stop_like, int(len(nodes) * STOP_LIKE_SHARE))
    common = carriers[cols] > limit
    rare = csr_matrix(
        (np.ones(int((~common).sum()), dtype=np.int32), (rows[~common], cols[~common])),
        shape=(len(nodes), len(vocab)),
    )
    common_ids = np.cumsum(carriers > limit) - 1
    bit = common_ids[cols[common]]
    words = max(1, (int((carriers > limit).sum()) + 63) // 64)
    packed = np.zeros((len(nodes), words), dtype=np.uint64)
    np.bitwise_or.at(
        packed,
        (rows[common], bit // 64),
        np.left_shift(np.uint64(1), (bit % 64).astype(np.uint64)),
    )
    epoch = nodes[0].appeared_at
    hours = np.fromiter(
        ((n.appeared_at - epoch).total_seconds() / 3600 for n in nodes),
        dtype=np.float64,
        count=len(nodes),
    )
    return _Matrix(list(nodes), first_new, rare, packed, sizes, hours)


def _best_in_rows(
    m: _Matrix, start: int, stop: int, rules: StoryRules
) -> Iterator[tuple[int, int, float]]:
    """(row, best earlier column, similarity) for the rows start..stop that have one."""
    shared = (m.rare[start:stop] @ m.rare[:stop].T).tocoo()
    row = shared.row.astype(np.int64) + start
    col = shared.col.astype(np.int64)
    count = shared.data.astype(np.int64)
    one_is_enough = (1 + rules.threshold) / rules.threshold
    keep = (col < row) & ((count >= 2) | (m.sizes[row] + m.sizes[col] <= one_is_enough))
    row, col, count = row[keep], col[keep], count[keep]
    gap = np.abs(m.hours[row] - m.hours[col])
    near = gap <= rules.window.total_seconds() / 3600
    row, col, count, gap = row[near], col[near], count[near], gap[near]
    both = np.bitwise_count(m.common_bits[row] & m.common_bits[col]).sum(axis=1)
    total = count + both
    sim = total / (m.sizes[row] + m.sizes[col] - total)
    margin = sim - (rules.threshold + rules.slope_per_hour * gap)
    ok = margin >= 0
    row, col, sim, margin = row[ok], col[ok], sim[ok], margin[ok]
    # Widest margin first, then the earlier candidate, then the one placed first.
    order = np.lexsort((col, m.hours[col], -margin, row))
    row, col, sim = row[order], col[order], sim[order]
    first = np.ones(len(row), dtype=bool)
    first[1:] = row[1:] != row[:-1]
    yield from zip(row[first].tolist(), col[first].tolist(), sim[first].tolist(), strict=True)


# --- exact duplicates ---------------------------------------------------------------------


def duplicate_roots(
    items: Sequence[tuple[int, str | None, str | None]],
) -> dict[int, int]:
    """Root of each item's exact-duplicate group: the lowest id sharing its URL or content key.

    `items` are (id, url, content_key) of every item involved, stored and new alike; a None
    key never matches. Returns only the items that have a root other than themselves.
    """
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(x: int, y: int) -> None:
        rx, ry = find(x), find(y)
        if rx != ry:
            parent[max(rx, ry)] = min(rx, ry)

    first_by_key: dict[tuple[str, str], int] = {}
    for item_id, url, key in items:
        find(item_id)
        for kind, value in (("url", url), ("hash", key)):
            if value is not None:
                union(item_id, first_by_key.setdefault((kind, value), item_id))
    return {x: find(x) for x in parent if find(x) != x}


# --- merging story aggregates -------------------------------------------------------------


def union_sorted(*groups: Iterable[str]) -> list[str]:
    """Union of string groups, sorted (JSON columns stay stable and comparable)."""
    return sorted({value for group in groups for value in group})
