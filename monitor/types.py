"""Immutable records that cross the pipeline's boundaries; imports nothing else of ours.

Each record is named for the direction it travels: `FeedForUpdate` comes out of storage,
`FetchResult` out of the fetcher, `ParsedFeed` out of the parser, `Item` out of the
normaliser, `MatchResult` out of the matcher (and `MatchRecord`, what is stored of it),
`FeedUpdateIntent` goes back into storage.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Literal, Protocol, TypeVar

Lang = Literal["en", "ru", "uk", "other"]
FieldName = Literal["title", "summary", "content"]
FeedKind = Literal["rss", "atom", "rdf", "json"]

_Record = TypeVar("_Record", bound=type)


def pickled_as_arguments(cls: _Record) -> _Record:
    """Pickle a record as its class and its field values, rebuilt by calling the class.

    Parse workers send every item and match result back to the parent. A slotted dataclass
    pickles through state methods that look its fields up again for every instance, both
    ways; this takes 40 % less time to unpickle (bench items: 0.44 → 0.25 s per cycle, in
    the parent's results thread) and 15 % less to pickle."""
    names = [f.name for f in fields(cls)]
    assert len(names) > 1, "attrgetter of one name gives a value, not a tuple"
    values = operator.attrgetter(*names)

    def reduce_to_arguments(self: Any) -> tuple[type, tuple[Any, ...]]:
        return (cls, values(self))

    setattr(cls, "__reduce__", reduce_to_arguments)  # noqa: B010 (a method on a finished class)
    return cls


@dataclass(frozen=True, slots=True)
class FeedForUpdate:
    """A feed as storage hands it to the pipeline for one poll."""

    id: int
    #: The URL to request (after recorded permanent redirects).
    url: str
    name: str | None
    #: Validators from the last successful fetch, for a conditional GET.
    etag: str | None
    last_modified: str | None
    #: Consecutive failures so far (0 when the last poll succeeded).
    error_count: int
    #: Poll interval in seconds configured for this feed.
    interval_s: int
    #: Language hint from config; items are still detected one by one.
    lang: str | None = None
    #: Whether a fetch of it ever succeeded (False: its first poll, where every item is new).
    fetched_before: bool = True


class Admission(Protocol):
    """A feed's place among those a caller holds at once (`monitor.pipeline.FeedPlace`):
    the fetcher takes it once a request has its host slot, and gives it back while it waits
    for another host's slot (a redirect), so waiting for a host never holds a place."""

    async def enter(self) -> None: ...

    def leave(self) -> None: ...


@dataclass(frozen=True, slots=True)
class FetchResult:
    """What the fetcher brings back from one conditional GET (a success or a 304)."""

    #: The URL finally answered, after redirects.
    url: str
    status: int
    #: Response headers, lower-cased names.
    headers: Mapping[str, str]
    #: Decoded body; None when the server answered 304 Not Modified.
    body: bytes | None
    etag: str | None
    last_modified: str | None
    #: Set when a 301/308 in the chain moved the feed for good.
    permanent_url: str | None = None
    #: Seconds the server asked us to wait (Cache-Control max-age or Expires), if any.
    max_age_s: int | None = None
    elapsed_s: float = 0.0

    @property
    def not_modified(self) -> bool:
        return self.body is None


@dataclass(frozen=True, slots=True)
class RawEntry:
    """One entry as the parser found it, before normalising (text may hold HTML)."""

    guid: str | None
    link: str | None
    title: str | None
    summary: str | None
    content: str | None
    author: str | None
    #: Dates as parsed (UTC, timezone-aware) or None when missing or unreadable.
    published: datetime | None
    updated: datetime | None
    lang: str | None = None


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """A parsed feed document: its metadata and entries in document order."""

    kind: FeedKind
    title: str | None
    link: str | None
    lang: str | None
    #: RSS <ttl> in minutes, when given.
    ttl_min: int | None
    entries: tuple[RawEntry, ...]
    #: Non-fatal problem the parser reported (feedparser's bozo exception), if any.
    warning: str | None = None


@pickled_as_arguments
@dataclass(frozen=True, slots=True)
class Item:
    """A normalised item, ready to be deduplicated, matched and stored."""

    #: Stable identity within its feed: GUID, else link, else hash of title + summary.
    identity: str
    guid: str | None
    #: Canonical URL (tracking parameters and fragment removed), or None.
    url: str | None
    title: str
    summary: str
    content: str
    author: str | None
    published_at: datetime | None
    updated_at: datetime | None
    first_seen_at: datetime
    lang: Lang
    #: Hash of the normalised title + summary, for exact cross-feed duplicates.
    content_hash: str


@pickled_as_arguments
@dataclass(frozen=True, slots=True)
class Hit:
    """One watched phrase found in one field of an item."""

    #: "actor" or "topic".
    kind: Literal["actor", "topic"]
    #: The actor id or topic id the phrase belongs to.
    target: str
    #: The phrase as written in the watchlist (alias or term).
    phrase: str
    field: FieldName
    start: int
    end: int
    #: The text as it stands in the item.
    text: str


@pickled_as_arguments
@dataclass(frozen=True, slots=True)
class TopicScore:
    """A topic's score for one item, broken into its parts."""

    topic: str
    score: float
    threshold: float
    #: Named parts that add up to `score` (actors, terms, co-occurrence, title, similarity).
    parts: Mapping[str, float]
    #: Why the topic was vetoed or passed over (exclusions, missing context), if it was.
    notes: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return self.score >= self.threshold and not self.notes


@pickled_as_arguments
@dataclass(frozen=True, slots=True)
class MatchResult:
    """The matcher's verdict on one item, with the evidence a person can check."""

    matched: bool
    #: Best topic score (0 when nothing passed).
    score: float
    #: Topics that passed, best first.
    topics: tuple[str, ...]
    #: Actor ids found (after context and exclusion rules).
    actors: tuple[str, ...]
    hits: tuple[Hit, ...]
    topic_scores: tuple[TopicScore, ...]
    #: A short excerpt with hits marked as **term**.
    snippet: str
    nearest_seed: str | None
    seed_similarity: float
    watchlist_version: str
    #: Human-readable notes: rules applied, actors dropped for lack of context, etc.
    notes: tuple[str, ...] = field(default=())


@pickled_as_arguments
@dataclass(frozen=True, slots=True)
class MatchRecord:
    """What storage keeps of a match (`matches` row) and what story clustering takes from
    it, made where the item was matched (`monitor.match.match_record`).

    A parse worker sends this, not the MatchResult: unpickling a result's many small
    records (hits, topic scores) cost the parent's results thread 0.25 s for the 3,163
    matches of a cold bench cycle, the plain values of the evidence a fraction of that, and
    its JSON text next to nothing."""

    score: float
    topics: tuple[str, ...]
    actors: tuple[str, ...]
    #: `monitor.match.evidence_to_json` of the result (hits, score parts, snippet, seed) as
    #: JSON text, encoded where the item was matched: the parent neither unpickles its many
    #: small values nor encodes them for the `matches` row.
    evidence_json: str
    watchlist_version: str
    #: The topic phrases hit, casefolded, each once (what a story counts as its terms).
    terms: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SaveReport:
    """What storage really added for one feed (storage decides what is new)."""

    new_items: int
    new_matches: int


@dataclass(frozen=True, slots=True)
class FeedUpdateIntent:
    """What the pipeline tells storage about a feed after one poll (validators last)."""

    feed_id: int
    fetched_at: datetime
    next_fetch_at: datetime
    #: New validators; None keeps nothing (the server sent none).
    etag: str | None = None
    last_modified: str | None = None
    #: True on success or 304; False on failure.
    ok: bool = True
    error: str | None = None
    http_status: int | None = None
    permanent_url: str | None = None
    title: str | None = None
    not_modified: bool = False
