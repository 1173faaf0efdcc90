"""Story clustering, pure: shingles, the window of placed items, the join-or-start decision.

The same event reported by several feeds becomes one story. Each item is reduced to a set of
shingles (content words of title + summary), kept as 32-bit hashes packed in bytes
(`word_hashes`, `packed`); the similarity of two items is the Jaccard similarity of their
sets. `best_candidates` compares a batch of new items with the placed items of the window
(`PlacedWindow`) at once, in vectorised passes: two items are candidates when they share two
shingles that are not stop-like in the window (carried by more than `STOP_LIKE` items:
"ukraine", "talks"), so each shingle of an item meets at most `STOP_LIKE` others and the
cost per item stays bounded however crowded the window is; `choose_story` states the same
decision for one item, by exact Jaccard similarity.

The decision asks more similarity the further apart two items appeared: coverage of one event
clusters within hours, while a follow-up a day later that merely shares actors and vocabulary
(the next round of talks, another statement by the same minister) must look almost like a
copy to be taken for the same story. The numbers behind the defaults are in docs/decisions.md.

Nothing here does I/O or reads the clock: the store path (monitor/store/stories.py) and the
evaluation (monitor/evaluate_stories.py) both call `plan_batch` with what they looked up.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from operator import attrgetter
from typing import NamedTuple, Protocol, TypeVar

import numpy as np

from monitor.settings import StoriesSettings
from monitor.types import Item

_number_columns: Callable[[list[bytes], int, np.ndarray], int] | None
try:
    from monitor._shinglehash import number_columns as _number_columns
except ImportError:  # installed without a C compiler: numbered by `distinct` and `column_of`
    _number_columns = None

#: Items with fewer shingles than this are too short to be compared or hashed for duplicates.
MIN_SHINGLES = 3
#: A shingle carried by more than this many items of the window is stop-like there: it counts
#: in the similarity but cannot make two items candidates. A fixed number, not a share of the
#: window, so each item meets at most this many candidates per shingle however crowded the
#: window is (docs/decisions.md: per-item cost flat as the window and history grow).
STOP_LIKE = 50


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


class Fingerprint(NamedTuple):
    """What clustering keeps of an item: its distinct shingles, as hashes (`word_hashes`),
    packed as stored (`packed`).

    This record and the others made once per item of a batch (`Prepared`, `Candidate`,
    `Decision`, and the store's `Pending`) are named tuples: as immutable as frozen
    dataclasses, and made in a third of the time (docs/decisions.md, "The end-of-cycle pass
    on two threads, with lighter records")."""

    hashes: bytes

    @property
    def comparable(self) -> bool:
        return comparable(self.hashes)


class Prepared(NamedTuple):
    """A new item ready for the decision: id, when it appeared, its fingerprint."""

    item_id: int
    appeared_at: datetime
    fingerprint: Fingerprint
    #: The root of its exact-duplicate group (an earlier item with the same URL or text).
    duplicate_of: int | None = None

    @property
    def hashes(self) -> bytes:
        return self.fingerprint.hashes


class Placing(Protocol):
    """What the decision reads of a new item: a `Prepared`, or any record with these fields,
    such as the store's pending items, taken as they are (no record made per item)."""

    @property
    def item_id(self) -> int: ...
    @property
    def appeared_at(self) -> datetime: ...
    @property
    def hashes(self) -> bytes: ...
    @property
    def duplicate_of(self) -> int | None: ...


_Placing = TypeVar("_Placing", bound=Placing)


class Candidate(NamedTuple):
    """An already-placed item that shares a shingle with a new one."""

    item_id: int
    #: Its story, or None when it has none (stored before stories existed).
    story_id: int | None
    appeared_at: datetime
    #: Its distinct shingles, as packed hashes (`Fingerprint.hashes`).
    hashes: bytes


class Decision(NamedTuple):
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


def fingerprints_of(words: Sequence[str]) -> list[Fingerprint]:
    """One fingerprint per `story_words` string (hashed in bulk: `word_hashes`)."""
    return [Fingerprint(packed(h)) for h in word_hashes(words)]


#: Shingle hashes as stored (`items.story_hashes`) and as records hold them: little-endian
#: 4-byte unsigned integers, one `bytes` per item. They become int64 arrays (what the
#: decision's numpy and C code work in) only in bulk, where items are compared: an array
#: per item cost an unpacking per save and twice the memory (docs/decisions.md, "Shingle
#: hashes kept packed").
PACKED = np.dtype("<u4")
#: The bits a shingle hash keeps (docs/decisions.md, "Stored shingle hashes: 32 bits").
HASH_MASK = np.uint64((1 << 32) - 1)


def packed(hashes: np.ndarray) -> bytes:
    """An item's shingle hashes as stored in `items.story_hashes`."""
    return hashes.astype(PACKED).tobytes()


def shingle_count(hashes: bytes) -> int:
    """How many shingle hashes a packed `hashes` holds."""
    return len(hashes) // PACKED.itemsize


#: The packed size of MIN_SHINGLES hashes.
_MIN_PACKED = MIN_SHINGLES * PACKED.itemsize


def comparable(hashes: bytes) -> bool:
    """Whether an item with these packed hashes has shingles enough to be compared."""
    return len(hashes) >= _MIN_PACKED


def as_array(hashes: bytes) -> np.ndarray:
    """Packed hashes (one item's, or several items' joined) as int64."""
    return np.frombuffer(hashes, dtype=PACKED).astype(np.int64)


def fingerprints(sets: Iterable[Iterable[str]]) -> list[Fingerprint]:
    """One fingerprint per set of shingles."""
    return fingerprints_of([" ".join(dict.fromkeys(s)) for s in sets])


def shingle_hashes(taken: Sequence[bytes | str]) -> list[bytes]:
    """Each item's packed shingle hashes from what `monitor.shingles.story_shingles` gave:
    as they came where the compiled module packed them, else its story words hashed here in
    bulk (`word_hashes`) and packed."""
    hashed = iter(word_hashes([t for t in taken if isinstance(t, str)]))
    return [t if isinstance(t, bytes) else packed(next(hashed)) for t in taken]


#: Texts hashed per numpy pass (bounds the temporary arrays to a few megabytes).
HASH_CHUNK = 2000


def word_hashes(texts: Sequence[str]) -> list[np.ndarray]:
    """For each text, the 32-bit hashes of its whitespace-separated words, in order (as int64).

    The same word gets the same hash in every process and on every run (unlike `hash()` of
    a str, which is salted per process), so workers and the parent agree. All the words of
    a chunk of texts are hashed in a few numpy passes (one per character position) instead of
    one Python call per word: a sum of the code points times odd 64-bit multipliers, one per
    position, finished with SplitMix64's mixer, of which the low 32 bits are kept. Two words
    share a hash only on a 32-bit collision.
    """
    out: list[np.ndarray] = []
    for start in range(0, len(texts), HASH_CHUNK):
        out.extend(_hash_chunk(texts[start : start + HASH_CHUNK]))
    return out


_NO_HASHES = np.zeros(0, dtype=np.int64)


def _hash_chunk(texts: Sequence[str]) -> list[np.ndarray]:
    joined = "\n".join(texts).encode("utf-32-le", "surrogatepass")  # one unit per character
    codes = np.frombuffer(joined, dtype=np.uint32)
    # Whitespace and control characters never occur in a word; one more after the end.
    separator = np.append(codes <= 32, True)
    first = np.flatnonzero(~separator[:-1] & np.append(True, separator[:-2]))
    if not len(first):
        return [_NO_HASHES] * len(texts)
    lengths = np.flatnonzero(~separator[:-1] & separator[1:]) - first + 1
    longest = int(lengths.max())
    wide = np.append(codes, np.zeros(longest, dtype=np.uint32)).astype(np.uint64)
    multipliers = _multipliers(longest)
    summed = wide[first] * multipliers[0]
    for position in range(1, longest):  # one pass per character position, over all words
        summed += wide[first + position] * (multipliers[position] * (lengths > position))
    hashes = _mix(summed ^ (lengths.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)))
    offsets = np.cumsum([0] + [len(t) + 1 for t in texts[:-1]])
    bounds = [*np.searchsorted(first, offsets).tolist(), len(first)]
    kept = (hashes & HASH_MASK).view(np.int64)
    return [kept[a:b] for a, b in pairwise(bounds)]


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: every input bit affects every output bit (uint64 wraps)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    out: np.ndarray = x ^ (x >> np.uint64(31))
    return out


def _multipliers(count: int) -> np.ndarray:
    """One odd 64-bit multiplier per position in a word (the same on every call)."""
    return _mix(np.arange(1, count + 1, dtype=np.uint64)) | np.uint64(1)


def appeared_at(item: Item) -> datetime:
    """When an item appeared: its published date, unless missing or later than first seen."""
    if item.published_at is None or item.published_at > item.first_seen_at:
        return item.first_seen_at
    return item.published_at


def similarity(a: bytes, b: bytes) -> float:
    """Jaccard similarity of two sets of distinct shingle hashes, packed (0.0 when both are
    empty)."""
    shared = len(np.intersect1d(as_array(a), as_array(b), assume_unique=True))
    union = shingle_count(a) + shingle_count(b) - shared
    return shared / union if union else 0.0


# --- the in-memory index ------------------------------------------------------------------


class PlacedWindow:
    """The placed items new ones may join: `Candidate` records (id, story, appearance,
    shingles) by id, evicted in order of appearance as the window moves on.

    Adding an id again replaces its record, so replaying an addition is harmless. Candidate
    search itself is vectorised over the whole window (`best_candidates`).
    """

    def __init__(self, stop_like: int = STOP_LIKE) -> None:
        self.stop_like = stop_like
        self._entries: dict[int, Candidate] = {}
        self._by_time: list[tuple[datetime, int]] = []

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._entries

    def get(self, item_id: int) -> Candidate | None:
        return self._entries.get(item_id)

    def entries(self) -> list[Candidate]:
        """Every item in the window."""
        return list(self._entries.values())

    def add(self, entries: Iterable[Candidate]) -> None:
        """Add placed items (a record for a known id replaces the old one)."""
        timed = []
        for entry in entries:
            old = self._entries.get(entry.item_id)
            self._entries[entry.item_id] = entry
            if old is None or old.appeared_at != entry.appeared_at:
                timed.append((entry.appeared_at, entry.item_id))
        if len(timed) > len(self._by_time):  # a load or a cold cycle: one heapify
            self._by_time.extend(timed)
            heapq.heapify(self._by_time)
        else:
            for pair in timed:
                heapq.heappush(self._by_time, pair)

    def remove(self, item_ids: Iterable[int]) -> None:
        for item_id in item_ids:
            self._entries.pop(item_id, None)
        self._compact_if_stale()

    def evict(self, before: datetime) -> int:
        """Forget items that appeared before `before`; how many were dropped."""
        dropped = 0
        while self._by_time and self._by_time[0][0] < before:
            when, item_id = heapq.heappop(self._by_time)
            entry = self._entries.get(item_id)
            if entry is not None and entry.appeared_at == when:
                del self._entries[item_id]
                dropped += 1
        return dropped

    def _compact_if_stale(self) -> None:
        """Drop heap entries of removed items once they outnumber the live ones."""
        if len(self._by_time) <= max(1000, 2 * len(self._entries)):
            return
        self._by_time = sorted((e.appeared_at, e.item_id) for e in self._entries.values())


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
    mine = new.fingerprint.hashes
    best: tuple[float, datetime, Candidate, float] | None = None
    for cand in candidates:
        gap = new.appeared_at - cand.appeared_at
        if abs(gap) > rules.window:
            continue
        sim = similarity(mine, cand.hashes)
        margin = sim - rules.required(gap)
        if margin >= 0 and (best is None or (-margin, cand.appeared_at) < best[:2]):
            best = (-margin, cand.appeared_at, cand, sim)
    return None if best is None else (best[2], best[3])


def processing_order(batch: Sequence[_Placing]) -> list[_Placing]:
    """New items in the order they appeared (ties: by id), so the first reporter leads.

    Two stable sorts, by id then by time, instead of one by a (time, id) tuple: no tuple per
    item, and a batch that comes in id order (the store's) passes the first in one scan."""
    ordered = sorted(batch, key=_ITEM_ID)
    ordered.sort(key=_APPEARED_AT)
    return ordered


_ITEM_ID = attrgetter("item_id")
_APPEARED_AT = attrgetter("appeared_at")


def plan_batch(
    batch: Sequence[Prepared],
    candidates: Mapping[int, Sequence[Candidate]],
    duplicate_story: Mapping[int, int | None],
    rules: StoryRules,
    stop_like: int = STOP_LIKE,
) -> list[Decision]:
    """Place each new item of a batch, in order of appearance.

    `candidates` holds already-placed items new ones may join (any grouping: every value is
    pooled; the store path passes the window's items under one key). Items of the batch
    placed earlier in this call are candidates too. `duplicate_story[root_id]` is the story
    of a stored duplicate root (None: it has none).
    """
    pooled = {c.item_id: c for group in candidates.values() for c in group}
    ordered = processing_order(batch)
    best = best_candidates(ordered, list(pooled.values()), rules, stop_like)
    roots = {p.item_id: p.duplicate_of for p in batch if p.duplicate_of is not None}
    placed = decide_in_order(in_company(ordered, best, roots), best, duplicate_story)
    return [placed.get(p.item_id) or alone(p) for p in batch]


def in_company(
    ordered: Sequence[_Placing],
    best: Mapping[int, tuple[Candidate, float]],
    roots: Mapping[int, int],
) -> list[_Placing]:
    """The items of a batch (kept in processing order) whose decision involves another item:
    those with a best candidate (`best_candidates`) or an exact-duplicate root (`roots`: item
    id → root id), and those that are another's candidate or root. Every other item starts a
    story of its own that nothing in the batch joins (`alone`), so `decide_in_order` needs
    only these: a few hundred of a cold cycle's 30,000 items.

    Leaving the others out changes no decision: `decide_in_order` looks back only at the
    candidates and roots of the item it decides, and those are all kept, in the same order."""
    involved = {c.item_id for c, _ in best.values()}
    involved.update(roots.values())
    involved.update(best)
    involved.update(roots)
    return [p for p in ordered if p.item_id in involved]


def alone(item: Placing) -> Decision:
    """The decision for an item that starts a story of its own, with no duplicate."""
    return Decision(item.item_id, None, item.item_id, None, None, 0.0)


def decide_in_order(
    ordered: Sequence[Placing],
    best: Mapping[int, tuple[Candidate, float]],
    duplicate_story: Mapping[int, int | None],
) -> dict[int, Decision]:
    """`plan_batch`'s decision for each item (by id) of a batch in processing order, from
    the best candidates found for it (`best_candidates`): the part that needs the exact
    duplicates, so a caller can look those up while the candidates are being found."""
    placed: dict[int, Decision] = {}
    for new in ordered:
        placed[new.item_id] = _decide_one(new, best.get(new.item_id), placed, duplicate_story)
    return placed


def _decide_one(
    new: Placing,
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
    new: Placing, leader: Decision, via: int, sim: float, *, duplicate_of: int | None
) -> Decision:
    return Decision(new.item_id, leader.story_id, leader.leader_id, duplicate_of, via, sim)


# --- the vectorised candidate choice ------------------------------------------------------

#: New rows whose candidate pairs are counted at once, and how many (rare occurrence, earlier
#: carrier) pairs at most: together they bound the memory of one step.
ROWS_PER_STEP = 2000
PAIRS_PER_STEP = 1 << 21


@dataclass(frozen=True, slots=True)
class _Matrix:
    """Stored candidates then comparable batch items (in processing order), numbered as
    nodes, with their shingles as columns (only shingles some batch item carries).

    A node's shingles are either rare (carried by at most `stop_like` nodes: they make
    candidates) or stop-like (they only count in the similarity). Rare ones are also kept as
    sorted int64 keys (column × nodes + node), so the carriers of a column are a contiguous
    run found by binary search; stop-like ones node after node, with each node's offset."""

    #: How many nodes: stored candidates, then new items.
    count: int
    first_new: int
    #: Rare occurrences as column × count + node, sorted: a column's carriers in order.
    rare_by_column: np.ndarray
    #: Rare occurrences node after node (ascending nodes), their columns, where their
    #: column's carriers begin in `rare_by_column`, and how many of those come before them.
    rare_node: np.ndarray
    rare_column: np.ndarray
    rare_first: np.ndarray
    rare_earlier: np.ndarray
    #: Every node's columns, node after node (-1: a stored shingle no new node carries),
    #: which of them are stop-like, and where each node's begin (one entry more than there
    #: are nodes).
    cols: np.ndarray
    common: np.ndarray
    starts: np.ndarray
    width: int
    sizes: np.ndarray
    hours: np.ndarray


def best_candidates(
    ordered: Sequence[Placing],
    stored: Sequence[Candidate],
    rules: StoryRules,
    stop_like: int = STOP_LIKE,
) -> dict[int, tuple[Candidate, float]]:
    """For each comparable new item (in processing order), the candidate whose story it joins
    and their similarity: a stored item or an earlier item of `ordered`.

    A shingle carried by more than `stop_like` items (stored and new) is stop-like: it still
    counts in the similarity but cannot make two items candidates. Candidates share two
    non-stop-like shingles, or one when both sets are so short that one shared shingle can
    reach the threshold; `choose_story`'s rule picks.

    The matrices are built from the items' columns (shingles, times) without a record per
    node: a `Candidate` is made only for a new item some later one joins (a cold cycle's
    30,000 records were half of this function's time).
    """
    new = [p for p in ordered if comparable(p.hashes)]
    if not new:
        return {}
    old = [c for c in stored if comparable(c.hashes)]
    matrix = _matrix(
        [c.hashes for c in old] + [p.hashes for p in new],
        [c.appeared_at for c in old] + [p.appeared_at for p in new],
        len(old),
        stop_like,
    )
    first_new = len(old)

    def node(index: int) -> Candidate:
        if index < first_new:
            return old[index]
        p = new[index - first_new]
        return Candidate(p.item_id, None, p.appeared_at, p.hashes)

    out: dict[int, tuple[Candidate, float]] = {}
    for start, stop in _steps(matrix):
        for row, col, sim in _best_in_rows(matrix, start, stop, rules):
            out[new[row - first_new].item_id] = (node(col), sim)
    return out


def _steps(m: _Matrix) -> Iterator[tuple[int, int]]:
    """The new rows in runs of at most ROWS_PER_STEP rows and (unless one row alone has
    more) PAIRS_PER_STEP rare pairs, so a step's arrays stay a few megabytes."""
    pairs = np.bincount(m.rare_node, weights=m.rare_earlier, minlength=m.count)
    done = np.cumsum(pairs[m.first_new :])  # rare pairs of the new rows up to each one
    start = m.first_new
    while start < m.count:
        before = done[start - m.first_new - 1] if start > m.first_new else 0.0
        fits = int(np.searchsorted(done, before + PAIRS_PER_STEP, side="right")) + m.first_new
        stop = min(max(fits, start + 1), start + ROWS_PER_STEP, m.count)
        yield start, stop
        start = stop


def _matrix(
    per_node: list[bytes], appeared: Sequence[datetime], first_new: int, stop_like: int
) -> _Matrix:
    """The matrices of `best_candidates`, with as few arrays as long as all the shingles as
    it takes: a cold cycle's 2.1 million shingles made each such array 8-17 MB of memory
    touched for the first time, and page faults were much of the candidate search's time."""
    count = len(per_node)
    sizes = np.fromiter(map(len, per_node), dtype=np.int64, count=count) // PACKED.itemsize
    cols, width = _columns(per_node, sizes, first_new)
    found = cols >= 0
    # Without stored nodes every shingle is a new node's: no copy of the found ones to count.
    carriers = np.bincount(cols[found] if first_new else cols, minlength=width)
    common = (carriers > stop_like)[cols]
    common &= found  # cols of -1 read the last column's flag
    rare = np.bitwise_xor(found, common, out=found)  # the found ones not stop-like
    starts = np.concatenate(([0], np.cumsum(sizes)))
    rare_at = np.flatnonzero(rare)
    rare_node = np.searchsorted(starts, rare_at, side="right") - 1
    rare_column = cols[rare_at].astype(np.int64)
    epoch = appeared[0]
    hours = np.fromiter(
        ((when - epoch).total_seconds() / 3600 for when in appeared),
        dtype=np.float64,
        count=count,
    )
    rare_by_column = np.sort(rare_column * count + rare_node)
    rare_first = np.searchsorted(rare_by_column, rare_column * count)
    return _Matrix(
        count=count,
        first_new=first_new,
        rare_by_column=rare_by_column,
        rare_node=rare_node,
        rare_column=rare_column,
        rare_first=rare_first,
        rare_earlier=np.searchsorted(rare_by_column, rare_column * count + rare_node) - rare_first,
        cols=cols,
        common=common,
        starts=starts,
        width=width,
        sizes=sizes,
        hours=hours,
    )


def _columns(per_node: list[bytes], sizes: np.ndarray, first_new: int) -> tuple[np.ndarray, int]:
    """The column of each node's each shingle, node after node (int32; -1 for a shingle no
    batch item carries), and the number of columns.

    Columns are shingles, numbered through their hashes: a vectorised vocabulary instead of
    a dict lookup per shingle. Only shingles some new node carries can be shared with a new
    node, so only they become columns (counted over every node, stored and new); the rest of
    the window's shingles matter only through `sizes`. A column's number is only a label:
    where the compiled module was built, one pass over a hash table numbers them in order
    of first appearance (without the GIL), reading each node's packed hashes where they lie
    (a cold cycle's 8 MB of them are not joined first), instead of the sort of `distinct`
    and the probes of `column_of` over them joined and widened to int64."""
    first = int(sizes[:first_new].sum())
    if _number_columns is not None:  # the same columns, numbered in another order
        cols = np.empty(int(sizes.sum()), dtype=np.int32)
        return cols, _number_columns(per_node, first, cols)
    hashes = as_array(b"".join(per_node))
    vocab = distinct(hashes[first:])
    return column_of(vocab, hashes), len(vocab)


def distinct(values: np.ndarray) -> np.ndarray:
    """The distinct values, sorted: `np.unique(values)` by a sort and a neighbour test.

    NumPy 2.4's `np.unique` finds distinct values through a hash table before sorting them,
    which for the 2.1 million shingle hashes of a cold cycle takes 0.12 s (1.3-1.6 s for 2.1
    million random int64); its SIMD sort takes about 0.012 s."""
    ordered = np.sort(values)
    if not len(ordered):
        return ordered
    first = np.empty(len(ordered), dtype=bool)
    first[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    return ordered[first]


#: Keys looked up per pass of `column_of` (bounds its temporary arrays to a few megabytes).
LOOKUP_CHUNK = 1 << 18
#: Most slots of `column_of`'s table (16 MB of int32) unless the vocabulary needs more.
TABLE_BITS = 22


def column_of(vocab: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """The index of each key in `vocab` (distinct int64 hashes), or -1 where it is absent
    (int32).

    A vectorised open-addressing table (linear probing): a few gathers over all keys instead
    of a sort (`np.unique(..., return_inverse=True)`) or a binary search per key
    (`np.searchsorted`), both several times slower here. The table is at most a sixteenth
    full (up to TABLE_BITS), so most absent keys, the many stored shingles no new item
    carries, stop at an empty slot after one gather."""
    sparse = min((16 * len(vocab)).bit_length(), TABLE_BITS)
    bits = max(8, sparse, len(vocab).bit_length() + 1)  # never more than half full
    mask = np.int64((1 << bits) - 1)
    table = np.full(1 << bits, -1, dtype=np.int32)
    todo = np.arange(len(vocab), dtype=np.int32)
    slots = vocab & mask
    while len(todo):  # insert in rounds: each free slot goes to its first claimant
        free = np.flatnonzero(table[slots] == -1)
        _, first = np.unique(slots[free], return_index=True)
        won = free[first]
        table[slots[won]] = todo[won]
        lost = np.ones(len(todo), dtype=bool)
        lost[won] = False
        todo, slots = todo[lost], (slots[lost] + 1) & mask
    out = np.empty(len(keys), dtype=np.int32)
    for start in range(0, len(keys), LOOKUP_CHUNK):
        part = keys[start : start + LOOKUP_CHUNK]
        out[start : start + len(part)] = _probe(table, vocab, part, mask)
    return out


def _probe(table: np.ndarray, vocab: np.ndarray, keys: np.ndarray, mask: np.int64) -> np.ndarray:
    out = np.full(len(keys), -1, dtype=np.int32)
    slots = keys & mask
    at = table[slots]
    # Most keys land on an empty slot (absent): only the others are followed, and the
    # arrays below are as long as they are.
    todo = np.flatnonzero(at >= 0)
    slots, at = slots[todo], at[todo]
    while len(todo):  # probe until the key or an empty slot
        same = vocab[at] == keys[todo]
        out[todo[same]] = at[same]
        todo, slots = todo[~same], (slots[~same] + 1) & mask
        at = table[slots]
        occupied = at >= 0
        todo, slots, at = todo[occupied], slots[occupied], at[occupied]
    return out


def _best_in_rows(
    m: _Matrix, start: int, stop: int, rules: StoryRules
) -> Iterator[tuple[int, int, float]]:
    """(row, best earlier column, similarity) for the rows start..stop that have one."""
    row, col, count = _rare_pairs(m, start, stop)
    one_is_enough = (1 + rules.threshold) / rules.threshold
    keep = (count >= 2) | (m.sizes[row] + m.sizes[col] <= one_is_enough)
    row, col, count = row[keep], col[keep], count[keep]
    gap = np.abs(m.hours[row] - m.hours[col])
    near = gap <= rules.window.total_seconds() / 3600
    row, col, count, gap = row[near], col[near], count[near], gap[near]
    if not len(row):
        return
    total = count + _shared_stop_like(m, row, col)
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


def _rare_pairs(m: _Matrix, start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, col, shared rare shingles) for each row in start..stop and each earlier node
    sharing a rare shingle with it.

    Each rare occurrence (row, column) pairs with the column's carriers numbered below the
    row: a run of `rare_by_column` ending where (column, row) itself sits. A rare column has
    at most `stop_like` carriers, so an occurrence yields at most that many pairs; the
    pairs are then counted by a sort."""
    n = m.count
    lo, hi = np.searchsorted(m.rare_node, [start, stop])
    rows, base = m.rare_node[lo:hi], m.rare_column[lo:hi] * n
    first, earlier = m.rare_first[lo:hi], m.rare_earlier[lo:hi]
    carriers = m.rare_by_column[_runs(first, earlier)] - np.repeat(base, earlier)
    pairs = np.sort(np.repeat(rows, earlier) * n + carriers)
    if not len(pairs):
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    new_pair = np.ones(len(pairs), dtype=bool)
    new_pair[1:] = pairs[1:] != pairs[:-1]
    begins = np.flatnonzero(new_pair)
    counts = np.diff(np.append(begins, len(pairs)))
    distinct_pairs = pairs[begins]
    return distinct_pairs // n, distinct_pairs % n, counts


def _shared_stop_like(m: _Matrix, row: np.ndarray, col: np.ndarray) -> np.ndarray:
    """How many stop-like shingles each (row, col) pair shares. Pairs come grouped by row:
    each row's stop-like columns are flagged in one array the width of the vocabulary, its
    candidates' columns looked up there, and the flags cleared again, so the work and the
    memory grow with the columns read, not with their product. Only stop-like columns are
    ever flagged (stop-like is a column's property), and a stored shingle no new node
    carries (-1) reads the one flag past them, never set."""
    shared = np.zeros(len(row), dtype=np.int64)
    flags = np.zeros(m.width + 1, dtype=bool)
    begins = np.flatnonzero(np.concatenate(([True], row[1:] != row[:-1])))
    ends = np.append(begins[1:], len(row))
    for first, last in zip(begins.tolist(), ends.tolist(), strict=True):
        start, stop = m.starts[row[first]], m.starts[row[first] + 1]
        own = m.cols[start:stop][m.common[start:stop]]
        flags[own] = True
        others = col[first:last]
        lengths = m.sizes[others]
        seen = np.concatenate(([0], np.cumsum(flags[m.cols[_runs(m.starts[others], lengths)]])))
        bounds = np.concatenate(([0], np.cumsum(lengths)))
        shared[first:last] = seen[bounds[1:]] - seen[bounds[:-1]]
        flags[own] = False
    return shared


def _runs(begins: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The indices begins[i] .. begins[i] + lengths[i] - 1 of every run, run after run."""
    total = int(lengths.sum())
    ends = np.cumsum(lengths)
    return np.repeat(begins - ends + lengths, lengths) + np.arange(total, dtype=np.int64)


# --- exact duplicates ---------------------------------------------------------------------


def duplicate_roots(
    items: Sequence[tuple[int, str | None, str | None]],
) -> dict[int, int]:
    """Root of each item's exact-duplicate group: the lowest id sharing its URL or content key.

    `items` are (id, url, content_key) of every item involved, stored and new alike; a None
    key never matches. Returns only the items that have a root other than themselves.
    """
    first_by_key: dict[tuple[str, str], int] = {}
    pairs: list[tuple[int, int]] = []
    for item_id, url, key in items:
        for kind, value in (("url", url), ("hash", key)):
            if value is not None:
                pairs.append((item_id, first_by_key.setdefault((kind, value), item_id)))
    return roots_of_pairs(pairs)


def roots_of_pairs(pairs: Iterable[tuple[int, int]]) -> dict[int, int]:
    """Connected groups of item ids linked in pairs, each item → the lowest id of its group
    (only items whose root is another)."""
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {x: find(x) for x in parent if find(x) != x}


# --- merging story aggregates -------------------------------------------------------------


def union_sorted(*groups: Iterable[str]) -> list[str]:
    """Union of string groups, sorted (JSON columns stay stable and comparable)."""
    return sorted({value for group in groups for value in group})
