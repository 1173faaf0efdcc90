"""Pure: pending matches of one channel → one digest (filter, fold stories, rank, group, count).

pending matches ─ filter by channel topics and min_score
                ─ fold into stories (same story_id, or exact duplicates via duplicate_of)
                ─ drop stories already told that add nothing new (updates come back flagged)
                ─ rank by score then recency, cap at max_entries ("and N more")
                ─ group under each entry's best topic, count per topic and per source
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from alerts.model import (
    BriefEntry,
    Count,
    DeliveredStory,
    Digest,
    DigestEntry,
    DigestHeader,
    FailingFeed,
    PendingMatch,
    SourceReport,
    StoryMark,
    TopicSection,
)
from alerts.text import MAX_NAME, clean_snippet, clean_title, safe_link
from monitor.settings import AppriseChannel, EmailChannel, FileChannel

ChannelConfig = FileChannel | EmailChannel | AppriseChannel
UpdateKind = str

DEFAULT_UPDATE_ON: tuple[UpdateKind, ...] = ("actor", "topic")


def carries(cfg: ChannelConfig, match: PendingMatch) -> bool:
    """Whether the channel wants this match (topic filter and minimum score)."""
    if match.score < cfg.min_score:
        return False
    return not cfg.topics or any(t in cfg.topics for t in match.topics)


def story_groups(matches: Sequence[PendingMatch]) -> list[list[PendingMatch]]:
    """Matches folded into stories: same story_id, or linked by duplicate_of; in input order."""
    parent = {m.item_id: m.item_id for m in matches}

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: int, b: int) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    first_of_story: dict[int, int] = {}
    for m in matches:
        if m.duplicate_of is not None and m.duplicate_of in parent:
            union(m.item_id, m.duplicate_of)
        if m.story_id is not None:
            union(m.item_id, first_of_story.setdefault(m.story_id, m.item_id))
    groups: dict[int, list[PendingMatch]] = {}
    for m in matches:
        groups.setdefault(find(m.item_id), []).append(m)
    return list(groups.values())


def _ordered_union(values: Iterable[Iterable[str]]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for vs in values for v in vs))


def _by_score(group: Sequence[PendingMatch]) -> list[PendingMatch]:
    return sorted(group, key=lambda m: (-m.score, m.first_seen_at, m.item_id))


def _earliest(group: Sequence[PendingMatch]) -> PendingMatch:
    return min(group, key=lambda m: (m.first_seen_at, m.item_id))


@dataclass(frozen=True, slots=True)
class _Novelty:
    actors: tuple[str, ...]
    topics: tuple[str, ...]
    terms: tuple[str, ...]

    def any_in(self, update_on: Sequence[UpdateKind]) -> bool:
        return bool(
            ("actor" in update_on and self.actors)
            or ("topic" in update_on and self.topics)
            or ("term" in update_on and self.terms)
        )


def _novelty(match: PendingMatch, told: DeliveredStory) -> _Novelty:
    return _Novelty(
        actors=tuple(a for a in match.actors if a not in told.actors),
        topics=tuple(t for t in match.topics if t not in told.topics),
        terms=tuple(t for t in match.terms if t not in told.terms),
    )


def _sources(group: Sequence[PendingMatch]) -> tuple[SourceReport, ...]:
    """One report per outlet, in order of first appearance, from the story and the group."""
    reports = [r for m in group for r in m.story_members]
    reports += [SourceReport(m.feed_name, m.title, m.url, m.first_seen_at) for m in group]
    reports.sort(key=lambda r: r.seen_at)
    by_feed: dict[str, SourceReport] = {}
    for r in reports:
        name = clean_title(r.feed_name, MAX_NAME)
        by_feed.setdefault(
            name, SourceReport(name, clean_title(r.title), safe_link(r.link), r.seen_at)
        )
    return tuple(by_feed.values())


def _other_headlines(title: str, sources: Sequence[SourceReport]) -> tuple[str, ...]:
    seen = {title.casefold()}
    out: list[str] = []
    for s in sources:
        if s.title.casefold() not in seen:
            seen.add(s.title.casefold())
            out.append(s.title)
    return tuple(out)


def _best_topic(topics: Sequence[str], cfg: ChannelConfig) -> str:
    for t in topics:
        if not cfg.topics or t in cfg.topics:
            return t
    return topics[0] if topics else "other"


def _entry(
    cfg: ChannelConfig,
    group: Sequence[PendingMatch],
    representative: PendingMatch,
    novelty: _Novelty | None,
) -> DigestEntry:
    ranked = _by_score(group)
    topics = _ordered_union(m.topics for m in ranked)
    title = clean_title(representative.title)
    sources = _sources(group)
    return DigestEntry(
        match_id=representative.match_id,
        item_id=representative.item_id,
        story_id=representative.story_id,
        topic=_best_topic(topics, cfg),
        title=title,
        link=safe_link(representative.url),
        feed_name=clean_title(representative.feed_name, MAX_NAME),
        published=representative.published_at,
        first_seen=representative.first_seen_at,
        topics=topics,
        actors=_ordered_union(m.actors for m in ranked),
        terms=_ordered_union(m.terms for m in ranked),
        snippet=clean_snippet(representative.snippet),
        score=max(m.score for m in group),
        sources=sources,
        other_headlines=_other_headlines(title, sources),
        is_update=novelty is not None,
        new_actors=novelty.actors if novelty else (),
        new_topics=novelty.topics if novelty else (),
        new_terms=novelty.terms if novelty else (),
        match_ids=tuple(sorted(m.match_id for m in group)),
    )


def _group_entry(
    cfg: ChannelConfig, group: Sequence[PendingMatch], update_on: Sequence[UpdateKind]
) -> DigestEntry | None:
    """The group's entry: new story, update (something new since told), or None (a repeat)."""
    told = next((m.delivered for m in group if m.delivered is not None), None)
    if told is None:
        if all(m.duplicate_delivered for m in group):
            return None
        return _entry(cfg, group, _earliest(group), None)
    novel = [(m, n) for m in group if (n := _novelty(m, told)).any_in(update_on)]
    if not novel:
        return None
    representative = min(novel, key=lambda p: (p[0].first_seen_at, p[0].item_id))[0]
    merged = _Novelty(
        actors=_ordered_union(n.actors for _, n in novel),
        topics=_ordered_union(n.topics for _, n in novel),
        terms=_ordered_union(n.terms for _, n in novel),
    )
    return _entry(cfg, group, representative, merged)


def _story_mark(entry: DigestEntry, group: Sequence[PendingMatch]) -> StoryMark | None:
    if entry.story_id is None:
        return None
    told = next((m.delivered for m in group if m.delivered is not None), None)
    members = max((len(m.story_members) for m in group), default=0)
    return StoryMark(
        story_id=entry.story_id,
        actors=tuple(sorted(set(entry.actors) | (told.actors if told else frozenset()))),
        topics=tuple(sorted(set(entry.topics) | (told.topics if told else frozenset()))),
        terms=tuple(sorted(set(entry.terms) | (told.terms if told else frozenset()))),
        item_count=max(members, len(group), told.item_count if told else 0),
    )


def rank_key(entry: DigestEntry) -> tuple[float, float, int]:
    """Score first, then the most recent, then the match id for a stable order."""
    return (-entry.score, -entry.first_seen.timestamp(), entry.match_id)


def _sections(entries: Sequence[DigestEntry]) -> tuple[TopicSection, ...]:
    by_topic: dict[str, list[DigestEntry]] = {}
    for e in entries:
        by_topic.setdefault(e.topic, []).append(e)
    return tuple(TopicSection(t, tuple(es)) for t, es in by_topic.items())


def _brief(entry: DigestEntry) -> BriefEntry:
    return BriefEntry(
        match_id=entry.match_id,
        topic=entry.topic,
        title=entry.title,
        link=entry.link,
        feed_name=entry.feed_name,
        score=entry.score,
    )


def _header(entries: Sequence[DigestEntry], shown: int) -> DigestHeader:
    topics = Counter(e.topic for e in entries)
    sources = Counter(s.feed_name for e in entries for s in (e.sources or ()))
    return DigestHeader(
        entry_count=len(entries),
        match_count=sum(len(e.match_ids) for e in entries),
        new_stories=sum(not e.is_update for e in entries),
        updates=sum(e.is_update for e in entries),
        per_topic=_sorted_counts(topics),
        per_source=_sorted_counts(sources),
        more_count=len(entries) - shown,
    )


def _sorted_counts(counter: Counter[str]) -> tuple[Count, ...]:
    return tuple(Count(n, c) for n, c in sorted(counter.items(), key=lambda p: (-p[1], p[0])))


def build_digest(
    channel_name: str,
    channel_cfg: ChannelConfig,
    pending: Sequence[PendingMatch],
    failing_feeds: Sequence[FailingFeed],
    previous_digest_at: datetime | None,
    now: datetime,
    *,
    update_on: Sequence[UpdateKind] = DEFAULT_UPDATE_ON,
) -> Digest | None:
    """The digest for one channel, or None when it would be empty and send_empty is off.

    Every pending match ends up in `Digest.match_ids`, shown or not, so nothing stays pending
    forever; use `settled_match_ids` for the matches to settle when this returns None.
    """
    carried = [m for m in pending if carries(channel_cfg, m)]
    entries: list[DigestEntry] = []
    marks: list[StoryMark] = []
    for group in story_groups(carried):
        entry = _group_entry(channel_cfg, group, update_on)
        if entry is not None:
            entries.append(entry)
            if (mark := _story_mark(entry, group)) is not None:
                marks.append(mark)
    if not entries and not channel_cfg.send_empty:
        return None
    entries.sort(key=rank_key)
    shown = entries[: channel_cfg.max_entries]
    return Digest(
        channel=channel_name,
        title=clean_title(channel_cfg.title),
        created_at=now,
        period_start=previous_digest_at,
        period_end=now,
        header=_header(entries, len(shown)),
        sections=_sections(shown),
        more=tuple(_brief(e) for e in entries[channel_cfg.max_entries :]),
        failing_feeds=tuple(failing_feeds),
        match_ids=settled_match_ids(pending),
        story_marks=tuple(sorted(marks, key=lambda m: m.story_id)),
    )


def settled_match_ids(pending: Sequence[PendingMatch]) -> tuple[int, ...]:
    """All pending match ids: shown, folded, filtered out or repeats, each settled once."""
    return tuple(sorted({m.match_id for m in pending}))
