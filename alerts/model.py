"""Frozen records of the digest stage and the stable JSON form of a digest (schema version 1).

`PendingMatch` comes out of storage, `Digest` goes into storage (as its JSON payload) and on
to the renderers and transports. `Digest.to_json()` / `Digest.from_json()` round-trip exactly,
so a recorded digest can be re-sent identically; docs/digest-json.md documents the schema.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class SourceReport:
    """One outlet's report of a story, as shown under an entry."""

    feed_name: str
    title: str
    #: http(s) link or None.
    link: str | None
    #: When the monitor first saw this report.
    seen_at: datetime


@dataclass(frozen=True, slots=True)
class DeliveredStory:
    """What a channel was already told about a story (a story_deliveries row)."""

    digest_id: int
    actors: frozenset[str]
    topics: frozenset[str]
    terms: frozenset[str]
    item_count: int


@dataclass(frozen=True, slots=True)
class PendingMatch:
    """A stored match not yet delivered on a channel, joined with its item, feed and story."""

    match_id: int
    item_id: int
    score: float
    #: Topics that passed, best first.
    topics: tuple[str, ...]
    actors: tuple[str, ...]
    #: Watched phrases found (from the evidence hits).
    terms: tuple[str, ...]
    #: Excerpt with hits marked as **term**.
    snippet: str
    matched_at: datetime
    title: str
    url: str | None
    published_at: datetime | None
    first_seen_at: datetime
    feed_id: int
    feed_name: str
    story_id: int | None = None
    duplicate_of: int | None = None
    #: Every item of the story (matched or not), in order of first appearance.
    story_members: tuple[SourceReport, ...] = ()
    #: What this channel was already told about the story, if anything.
    delivered: DeliveredStory | None = None
    #: True when the item duplicates an item already delivered on this channel.
    duplicate_delivered: bool = False


@dataclass(frozen=True, slots=True)
class FailingFeed:
    """A feed currently failing, for the digest footer."""

    name: str
    url: str
    since: datetime | None
    error_count: int
    last_error: str | None


@dataclass(frozen=True, slots=True)
class DigestEntry:
    """One story in a digest: its representative report and what folded under it."""

    match_id: int
    item_id: int
    story_id: int | None
    #: The topic the entry is listed under (its best topic carried by the channel).
    topic: str
    title: str
    #: http(s) link or None (any other scheme is dropped).
    link: str | None
    feed_name: str
    published: datetime | None
    first_seen: datetime
    topics: tuple[str, ...]
    actors: tuple[str, ...]
    terms: tuple[str, ...]
    #: Excerpt with hits marked as **term**.
    snippet: str
    score: float
    #: Outlets in order of first appearance, one report each.
    sources: tuple[SourceReport, ...]
    #: Other headlines of the same story, folded under the entry.
    other_headlines: tuple[str, ...]
    #: True when the story was delivered before and this coverage adds something.
    is_update: bool = False
    new_actors: tuple[str, ...] = ()
    new_topics: tuple[str, ...] = ()
    new_terms: tuple[str, ...] = ()
    #: Every match settled by this entry (the representative and the folded ones).
    match_ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class TopicSection:
    topic: str
    entries: tuple[DigestEntry, ...]


@dataclass(frozen=True, slots=True)
class BriefEntry:
    """An entry past `max_entries`, listed on one line under "and N more"."""

    match_id: int
    topic: str
    title: str
    link: str | None
    feed_name: str
    score: float


@dataclass(frozen=True, slots=True)
class Count:
    name: str
    count: int


@dataclass(frozen=True, slots=True)
class DigestHeader:
    entry_count: int
    match_count: int
    new_stories: int
    updates: int
    per_topic: tuple[Count, ...]
    per_source: tuple[Count, ...]
    #: Entries beyond max_entries (listed briefly in `Digest.more`).
    more_count: int


@dataclass(frozen=True, slots=True)
class Digest:
    """A digest for one channel, as built, recorded, rendered and re-sent."""

    channel: str
    title: str
    created_at: datetime
    #: The previous digest's end on this channel (None for the first digest).
    period_start: datetime | None
    period_end: datetime
    header: DigestHeader
    sections: tuple[TopicSection, ...]
    more: tuple[BriefEntry, ...]
    failing_feeds: tuple[FailingFeed, ...]
    #: Every match this digest settles for the channel: shown, folded, listed briefly or
    #: passed over (filtered out by topic or score, or a repeat adding nothing new).
    match_ids: tuple[int, ...]
    #: Stories told to the channel, with what they were told (for later updates).
    story_marks: tuple[StoryMark, ...] = ()
    #: Assigned when recorded; None in a preview.
    id: int | None = None
    message_id: str | None = None

    @property
    def entries(self) -> tuple[DigestEntry, ...]:
        return tuple(e for s in self.sections for e in s.entries)

    @property
    def is_empty(self) -> bool:
        return not self.sections and not self.more

    def with_identity(self, digest_id: int, message_id: str) -> Digest:
        return replace(self, id=digest_id, message_id=message_id)

    def to_json(self) -> dict[str, Any]:
        return _digest_to_json(self)

    @staticmethod
    def from_json(data: dict[str, Any]) -> Digest:
        return _digest_from_json(data)


@dataclass(frozen=True, slots=True)
class StoryMark:
    """What a digest tells a channel about one story (becomes a story_deliveries row)."""

    story_id: int
    actors: tuple[str, ...]
    topics: tuple[str, ...]
    terms: tuple[str, ...]
    item_count: int


@dataclass(frozen=True, slots=True)
class Rendered:
    """A digest rendered in every format a transport may need."""

    subject: str
    text: str
    html: str
    markdown: str
    json: str
    #: The channel's Atom feed document (latest entries across digests), when wanted.
    atom: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


# --- JSON (schema version 1) ------------------------------------------------------------------


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _parse_time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _required_time(value: Any) -> datetime:
    parsed = _parse_time(value)
    if parsed is None:
        raise ValueError(f"expected an ISO 8601 time, got {value!r}")
    return parsed


def _source_to_json(s: SourceReport) -> dict[str, Any]:
    return {"feed": s.feed_name, "title": s.title, "link": s.link, "seen_at": _time(s.seen_at)}


def _source_from_json(d: dict[str, Any]) -> SourceReport:
    return SourceReport(
        feed_name=str(d["feed"]),
        title=str(d["title"]),
        link=d.get("link"),
        seen_at=_required_time(d["seen_at"]),
    )


def _entry_to_json(e: DigestEntry) -> dict[str, Any]:
    return {
        "match_id": e.match_id,
        "item_id": e.item_id,
        "story_id": e.story_id,
        "topic": e.topic,
        "title": e.title,
        "link": e.link,
        "feed": e.feed_name,
        "published": _time(e.published),
        "first_seen": _time(e.first_seen),
        "topics": list(e.topics),
        "actors": list(e.actors),
        "terms": list(e.terms),
        "snippet": e.snippet,
        "score": e.score,
        "sources": [_source_to_json(s) for s in e.sources],
        "other_headlines": list(e.other_headlines),
        "is_update": e.is_update,
        "new": {
            "actors": list(e.new_actors),
            "topics": list(e.new_topics),
            "terms": list(e.new_terms),
        },
        "match_ids": list(e.match_ids),
    }


def _entry_from_json(d: dict[str, Any]) -> DigestEntry:
    new = d.get("new") or {}
    return DigestEntry(
        match_id=int(d["match_id"]),
        item_id=int(d["item_id"]),
        story_id=d.get("story_id"),
        topic=str(d["topic"]),
        title=str(d["title"]),
        link=d.get("link"),
        feed_name=str(d["feed"]),
        published=_parse_time(d.get("published")),
        first_seen=_required_time(d["first_seen"]),
        topics=tuple(d.get("topics", ())),
        actors=tuple(d.get("actors", ())),
        terms=tuple(d.get("terms", ())),
        snippet=str(d.get("snippet", "")),
        score=float(d["score"]),
        sources=tuple(_source_from_json(s) for s in d.get("sources", ())),
        other_headlines=tuple(d.get("other_headlines", ())),
        is_update=bool(d.get("is_update", False)),
        new_actors=tuple(new.get("actors", ())),
        new_topics=tuple(new.get("topics", ())),
        new_terms=tuple(new.get("terms", ())),
        match_ids=tuple(int(m) for m in d.get("match_ids", ())),
    )


def _counts(items: tuple[Count, ...]) -> list[dict[str, Any]]:
    return [{"name": c.name, "count": c.count} for c in items]


def _counts_from(items: Any) -> tuple[Count, ...]:
    return tuple(Count(str(c["name"]), int(c["count"])) for c in items or ())


def _digest_to_json(d: Digest) -> dict[str, Any]:
    h = d.header
    return {
        "version": SCHEMA_VERSION,
        "id": d.id,
        "message_id": d.message_id,
        "channel": d.channel,
        "title": d.title,
        "created_at": _time(d.created_at),
        "period": {"start": _time(d.period_start), "end": _time(d.period_end)},
        "header": {
            "entries": h.entry_count,
            "matches": h.match_count,
            "new_stories": h.new_stories,
            "updates": h.updates,
            "per_topic": _counts(h.per_topic),
            "per_source": _counts(h.per_source),
            "more": h.more_count,
        },
        "sections": [
            {"topic": s.topic, "entries": [_entry_to_json(e) for e in s.entries]}
            for s in d.sections
        ],
        "more": [
            {
                "match_id": b.match_id,
                "topic": b.topic,
                "title": b.title,
                "link": b.link,
                "feed": b.feed_name,
                "score": b.score,
            }
            for b in d.more
        ],
        "failing_feeds": [
            {
                "name": f.name,
                "url": f.url,
                "since": _time(f.since),
                "error_count": f.error_count,
                "last_error": f.last_error,
            }
            for f in d.failing_feeds
        ],
        "match_ids": list(d.match_ids),
        "story_marks": [
            {
                "story_id": m.story_id,
                "actors": list(m.actors),
                "topics": list(m.topics),
                "terms": list(m.terms),
                "item_count": m.item_count,
            }
            for m in d.story_marks
        ],
    }


def _digest_from_json(data: dict[str, Any]) -> Digest:
    if data.get("version") != SCHEMA_VERSION:
        raise ValueError(f"unsupported digest schema version {data.get('version')!r}")
    h = data["header"]
    return Digest(
        id=data.get("id"),
        message_id=data.get("message_id"),
        channel=str(data["channel"]),
        title=str(data["title"]),
        created_at=_required_time(data["created_at"]),
        period_start=_parse_time(data["period"].get("start")),
        period_end=_required_time(data["period"]["end"]),
        header=DigestHeader(
            entry_count=int(h["entries"]),
            match_count=int(h["matches"]),
            new_stories=int(h["new_stories"]),
            updates=int(h["updates"]),
            per_topic=_counts_from(h.get("per_topic")),
            per_source=_counts_from(h.get("per_source")),
            more_count=int(h.get("more", 0)),
        ),
        sections=tuple(
            TopicSection(str(s["topic"]), tuple(_entry_from_json(e) for e in s["entries"]))
            for s in data.get("sections", ())
        ),
        more=tuple(
            BriefEntry(
                match_id=int(b["match_id"]),
                topic=str(b["topic"]),
                title=str(b["title"]),
                link=b.get("link"),
                feed_name=str(b["feed"]),
                score=float(b["score"]),
            )
            for b in data.get("more", ())
        ),
        failing_feeds=tuple(
            FailingFeed(
                name=str(f["name"]),
                url=str(f["url"]),
                since=_parse_time(f.get("since")),
                error_count=int(f.get("error_count", 0)),
                last_error=f.get("last_error"),
            )
            for f in data.get("failing_feeds", ())
        ),
        match_ids=tuple(int(m) for m in data.get("match_ids", ())),
        story_marks=tuple(
            StoryMark(
                story_id=int(m["story_id"]),
                actors=tuple(m.get("actors", ())),
                topics=tuple(m.get("topics", ())),
                terms=tuple(m.get("terms", ())),
                item_count=int(m.get("item_count", 0)),
            )
            for m in data.get("story_marks", ())
        ),
    )
