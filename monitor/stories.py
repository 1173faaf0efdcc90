"""Story clustering, pure: shingles, MinHash signatures, LSH bands and the join-or-start decision.

The same event reported by several feeds becomes one story. Each item is reduced to a set of
shingles (content words of title + summary), then to a MinHash signature whose agreement with
another signature estimates the Jaccard similarity of the two sets. Signatures are cut into
LSH bands; items sharing a band are candidates, and `choose_story` decides among candidates.

The decision asks more similarity the further apart two items appeared: coverage of one event
clusters within hours, while a follow-up a day later that merely shares actors and vocabulary
(the next round of talks, another statement by the same minister) must look almost like a
copy to be taken for the same story. The numbers behind the defaults are in docs/decisions.md.

Nothing here does I/O or reads the clock: the store path (monitor/store/stories.py) and the
evaluation (monitor/evaluate_stories.py) both call `plan_batch` with what they looked up.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache

import numpy as np
import numpy.typing as npt

from monitor.settings import StoriesSettings
from monitor.types import Item, MatchResult

#: Permutations per signature (agreement of 128 values: ±0.03 on a similarity of 0.1).
NUM_PERM = 128
#: LSH bands × rows per band; together they use the whole signature.
BANDS = 64
ROWS = 2
#: Seed of the permutations; changing it invalidates every stored signature.
SEED = 1
#: Items with fewer shingles than this are too short to be compared or hashed for duplicates.
MIN_SHINGLES = 3
#: Words are cut to this many characters (a crude stemmer: signed/signing, Zelensky/Zelenskyy).
STEM_CHARS = 6

Signature = npt.NDArray[np.uint32]

_UINT32_MAX = np.uint32(0xFFFFFFFF)
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
    """What clustering keeps of an item: its signature, its LSH bands, how much text it had."""

    signature: Signature
    #: One signed 64-bit hash per band (fits a BIGINT column).
    bands: tuple[int, ...]
    shingle_count: int

    @property
    def comparable(self) -> bool:
        return self.shingle_count >= MIN_SHINGLES


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
    """An already-placed item that shares a band with a new one (looked up by the caller)."""

    item_id: int
    #: Its story, or None when it has none (stored before stories existed).
    story_id: int | None
    appeared_at: datetime
    signature: Signature = field(compare=False)


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


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


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


# --- MinHash ------------------------------------------------------------------------------


def shingle_hash(shingle: str) -> int:
    """The 32-bit hash each shingle gets before the permutations (stable across processes)."""
    return zlib.crc32(shingle.encode("utf-8"))


@cache
def permutations() -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint32]]:
    """The affine permutations (a, b) of datasketch's `affine32` scheme for NUM_PERM and SEED."""
    gen = np.random.RandomState(SEED)
    a = gen.randint(0, 1 << 31, NUM_PERM, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, NUM_PERM, dtype=np.uint32)
    return a, b


def _fmix32(h: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint32]:
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def signatures(sets: Sequence[Collection[str]], chunk: int = 2048) -> npt.NDArray[np.uint32]:
    """MinHash signatures, one row per set, equal to datasketch's
    `MinHash(NUM_PERM, SEED, hashfunc=shingle_hash, scheme="affine32")` but batched in numpy."""
    out = np.full((len(sets), NUM_PERM), _UINT32_MAX, dtype=np.uint32)
    for start in range(0, len(sets), chunk):
        _fill_signatures(sets[start : start + chunk], out[start : start + chunk])
    return out


def _fill_signatures(sets: Sequence[Collection[str]], out: npt.NDArray[np.uint32]) -> None:
    rows = [i for i, s in enumerate(sets) if s]
    if not rows:
        return
    hashes = np.fromiter((shingle_hash(x) for i in rows for x in sets[i]), dtype=np.uint32)
    sizes = np.fromiter((len(sets[i]) for i in rows), dtype=np.int64, count=len(rows))
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    a, b = permutations()
    with np.errstate(over="ignore"):
        permuted = _fmix32(hashes)[:, None] * a[None, :] + b[None, :]
    out[rows] = np.minimum.reduceat(permuted, starts, axis=0)


_M1 = np.uint64(0xFF51AFD7ED558CCD)
_M2 = np.uint64(0xC4CEB9FE1A85EC53)


def band_hashes(sigs: npt.NDArray[np.uint32]) -> npt.NDArray[np.int64]:
    """One signed 64-bit hash per band per signature, shape (n, BANDS)."""
    rows = sigs[:, : BANDS * ROWS].reshape(len(sigs), BANDS, ROWS).astype(np.uint64)
    h = np.zeros((len(sigs), BANDS), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for r in range(ROWS):
            h = (h ^ rows[:, :, r]) * _M1
            h = (h ^ (h >> np.uint64(33))) * _M2
            h = h ^ (h >> np.uint64(29))
    return h.view(np.int64)


def fingerprints(sets: Sequence[Collection[str]]) -> list[Fingerprint]:
    """Signatures and bands for many shingle sets at once (the batched path)."""
    sigs = signatures(sets)
    bands = band_hashes(sigs)
    return [
        Fingerprint(signature=sigs[i], bands=tuple(bands[i].tolist()), shingle_count=len(s))
        for i, s in enumerate(sets)
    ]


def similarity(a: Signature, b: Signature) -> float:
    """Estimated Jaccard similarity: the share of permutations on which the minima agree."""
    return float(np.count_nonzero(a == b)) / NUM_PERM


def signature_bytes(signature: Signature) -> bytes:
    return signature.astype("<u4").tobytes()


def signature_from_bytes(data: bytes) -> Signature:
    sig = np.frombuffer(data, dtype="<u4").astype(np.uint32)
    if sig.shape != (NUM_PERM,):
        raise ValueError(f"stored signature has {sig.size} values, expected {NUM_PERM}")
    return sig


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
    pool = [c for c in candidates if abs(new.appeared_at - c.appeared_at) <= rules.window]
    if not pool:
        return None
    agree = np.count_nonzero(
        np.stack([c.signature for c in pool]) == new.fingerprint.signature, axis=1
    )
    best: tuple[float, datetime, Candidate, float] | None = None
    for cand, count in zip(pool, agree.tolist(), strict=True):
        sim = count / NUM_PERM
        margin = sim - rules.required(new.appeared_at - cand.appeared_at)
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
) -> list[Decision]:
    """Place each new item of a batch, in order of appearance.

    `candidates[item_id]` are stored items sharing a band with the new item; other items of
    the batch placed earlier in this call become candidates too when they share a band.
    `duplicate_story[root_id]` is the story of a stored duplicate root (None: it has none).
    """
    placed: dict[int, Decision] = {}
    band_index: dict[tuple[int, int], list[Prepared]] = defaultdict(list)
    for new in processing_order(batch):
        decision = _decide_one(
            new, candidates.get(new.item_id, ()), band_index, placed, duplicate_story, rules
        )
        placed[new.item_id] = decision
        for band, value in enumerate(new.fingerprint.bands):
            band_index[(band, value)].append(new)
    return [placed[p.item_id] for p in batch]


def _decide_one(
    new: Prepared,
    stored: Sequence[Candidate],
    band_index: Mapping[tuple[int, int], list[Prepared]],
    placed: Mapping[int, Decision],
    duplicate_story: Mapping[int, int | None],
    rules: StoryRules,
) -> Decision:
    root = new.duplicate_of
    if root is not None and root in placed:
        return _follow(new, placed[root], root, 1.0, duplicate_of=root)
    if root is not None and duplicate_story.get(root) is not None:
        return Decision(new.item_id, duplicate_story[root], None, root, root, 1.0)
    in_batch = _batch_candidates(new, band_index, placed)
    choice = choose_story(new, [*stored, *in_batch], rules)
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


def _batch_candidates(
    new: Prepared,
    band_index: Mapping[tuple[int, int], list[Prepared]],
    placed: Mapping[int, Decision],
) -> list[Candidate]:
    seen: dict[int, Candidate] = {}
    for band, value in enumerate(new.fingerprint.bands):
        for other in band_index.get((band, value), ()):
            if other.item_id not in seen:
                seen[other.item_id] = Candidate(
                    other.item_id,
                    placed[other.item_id].story_id,
                    other.appeared_at,
                    other.fingerprint.signature,
                )
    return list(seen.values())


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
