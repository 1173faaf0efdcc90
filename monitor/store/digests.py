"""Digest rows: pending matches per channel, the outbox (record before send), retries, history.

A digest is recorded as `pending` together with its digest_matches and story_deliveries rows in
ONE transaction before anything is sent; a send then marks it `sent` or `failed` (retried with
exponential backoff). A crash between send and mark leaves it `pending`, so it is re-sent (same
payload, same Message-ID) once its lease has run out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, delete, exists, func, insert, or_, select, update

from alerts.model import DeliveredStory, Digest, FailingFeed, PendingMatch, SourceReport
from alerts.text import one_line, truncate
from monitor.errors import StorageError
from monitor.settings import DigestSettings
from monitor.store.schema import (
    digest_matches,
    digests,
    feeds,
    item_stories,
    items,
    matches,
    stories,
    story_deliveries,
)

PENDING = "pending"
SENT = "sent"
FAILED = "failed"
#: Settled matches no one needed to see (filtered out, repeats); never sent.
SKIPPED = "skipped"

#: Matches read per delivery at most (the rest wait for the next digest, oldest first).
DEFAULT_PENDING_LIMIT = 1000
#: Reports listed per story at most.
MAX_STORY_MEMBERS = 50
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class DigestRecord:
    """A digests row as the service and the CLI see it."""

    id: int
    channel: str
    status: str
    created_at: datetime
    period_start: datetime | None
    period_end: datetime
    message_id: str
    entry_count: int
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    sent_at: datetime | None
    payload: Mapping[str, Any]

    def digest(self) -> Digest:
        """The digest as recorded; a payload this version cannot read raises StorageError."""
        try:
            return Digest.from_json(dict(self.payload))
        except (KeyError, TypeError, ValueError) as e:
            raise StorageError(f"digest {self.id}: unreadable payload: {e}") from e


def _chunks(values: Sequence[int]) -> Iterable[Sequence[int]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def _terms(evidence: Any) -> tuple[str, ...]:
    hits = evidence.get("hits") if isinstance(evidence, dict) else None
    terms: list[str] = []
    for hit in hits if isinstance(hits, list) else ():
        if isinstance(hit, dict):
            if hit.get("kind", "topic") != "topic":
                continue  # actor aliases show up as actors, not terms
            phrase = hit.get("phrase") or hit.get("text")
            if isinstance(phrase, str) and phrase.strip():
                terms.append(phrase.strip())
        elif isinstance(hit, str):
            terms.append(hit)
    return tuple(dict.fromkeys(terms))


def _snippet(evidence: Any) -> str:
    snippet = evidence.get("snippet") if isinstance(evidence, dict) else None
    return snippet if isinstance(snippet, str) else ""


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list | tuple) else ()


def _feed_name(name: str | None, title: str | None, url: str) -> str:
    return name or title or url


def pending_matches(
    conn: Connection, channel: str, *, limit: int = DEFAULT_PENDING_LIMIT
) -> list[PendingMatch]:
    """Matches not yet settled on `channel`, oldest first, with their story context."""
    settled = exists().where(
        digest_matches.c.channel == channel, digest_matches.c.match_id == matches.c.id
    )
    rows = conn.execute(
        select(
            matches.c.id,
            matches.c.item_id,
            matches.c.score,
            matches.c.topics,
            matches.c.actors,
            matches.c.evidence,
            matches.c.matched_at,
            items.c.title,
            items.c.url,
            items.c.published_at,
            items.c.first_seen_at,
            items.c.feed_id,
            item_stories.c.story_id,
            items.c.duplicate_of,
            feeds.c.name.label("feed_name"),
            feeds.c.title.label("feed_title"),
            feeds.c.url.label("feed_url"),
        )
        .select_from(matches.join(items, items.c.id == matches.c.item_id))
        .join(feeds, feeds.c.id == items.c.feed_id)
        .outerjoin(item_stories, item_stories.c.item_id == items.c.id)
        .where(~settled)
        .order_by(matches.c.id)
        .limit(limit)
    ).all()
    story_ids = sorted({r.story_id for r in rows if r.story_id is not None})
    members = _story_members(conn, story_ids)
    told = _delivered_stories(conn, channel, story_ids)
    dup_told = _delivered_items(conn, channel, [r.duplicate_of for r in rows if r.duplicate_of])
    return [
        PendingMatch(
            match_id=r.id,
            item_id=r.item_id,
            score=float(r.score),
            topics=_strings(r.topics),
            actors=_strings(r.actors),
            terms=_terms(r.evidence),
            snippet=_snippet(r.evidence),
            matched_at=r.matched_at,
            title=r.title,
            url=r.url,
            published_at=r.published_at,
            first_seen_at=r.first_seen_at,
            feed_id=r.feed_id,
            feed_name=_feed_name(r.feed_name, r.feed_title, r.feed_url),
            story_id=r.story_id,
            duplicate_of=r.duplicate_of,
            story_members=members.get(r.story_id, ()) if r.story_id is not None else (),
            delivered=told.get(r.story_id) if r.story_id is not None else None,
            duplicate_delivered=r.duplicate_of in dup_told,
        )
        for r in rows
    ]


def _story_members(
    conn: Connection, story_ids: Sequence[int]
) -> dict[int, tuple[SourceReport, ...]]:
    out: dict[int, list[SourceReport]] = {}
    for chunk in _chunks(story_ids):
        rows = conn.execute(
            select(
                item_stories.c.story_id,
                items.c.title,
                items.c.url,
                items.c.first_seen_at,
                feeds.c.name,
                feeds.c.title.label("feed_title"),
                feeds.c.url.label("feed_url"),
            )
            .select_from(item_stories.join(items, items.c.id == item_stories.c.item_id))
            .join(feeds, feeds.c.id == items.c.feed_id)
            .where(item_stories.c.story_id.in_(chunk))
            .order_by(item_stories.c.story_id, items.c.first_seen_at, items.c.id)
        )
        for r in rows:
            reports = out.setdefault(r.story_id, [])
            if len(reports) < MAX_STORY_MEMBERS:
                name = _feed_name(r.name, r.feed_title, r.feed_url)
                reports.append(SourceReport(name, r.title, r.url, r.first_seen_at))
    return {k: tuple(v) for k, v in out.items()}


def _delivered_stories(
    conn: Connection, channel: str, story_ids: Sequence[int]
) -> dict[int, DeliveredStory]:
    out: dict[int, DeliveredStory] = {}
    sd = story_deliveries.c
    for chunk in _chunks(story_ids):
        rows = conn.execute(
            select(sd.story_id, sd.digest_id, sd.actors, sd.topics, sd.terms, sd.item_count).where(
                sd.channel == channel, sd.story_id.in_(chunk)
            )
        )
        for r in rows:
            out[r.story_id] = DeliveredStory(
                digest_id=r.digest_id,
                actors=frozenset(_strings(r.actors)),
                topics=frozenset(_strings(r.topics)),
                terms=frozenset(_strings(r.terms)),
                item_count=r.item_count,
            )
    return out


def _delivered_items(conn: Connection, channel: str, item_ids: Sequence[int]) -> set[int]:
    """Items among `item_ids` whose match was already settled on `channel`."""
    wanted = sorted(set(item_ids))
    found: set[int] = set()
    for chunk in _chunks(wanted):
        found.update(
            conn.execute(
                select(matches.c.item_id)
                .join(digest_matches, digest_matches.c.match_id == matches.c.id)
                .where(digest_matches.c.channel == channel, matches.c.item_id.in_(chunk))
            ).scalars()
        )
    return found


def failing_feeds(conn: Connection) -> list[FailingFeed]:
    """Enabled feeds whose last poll failed, longest failing first."""
    rows = conn.execute(
        select(
            feeds.c.name,
            feeds.c.title,
            feeds.c.url,
            feeds.c.first_error_at,
            feeds.c.error_count,
            feeds.c.last_error,
        )
        .where(feeds.c.error_count > 0, feeds.c.enabled.is_(True))
        .order_by(feeds.c.first_error_at, feeds.c.url)
    )
    return [
        FailingFeed(
            name=one_line(_feed_name(r.name, r.title, r.url)),
            url=r.url,
            since=r.first_error_at,
            error_count=r.error_count,
            last_error=truncate(one_line(r.last_error), 200) if r.last_error else None,
        )
        for r in rows
    ]


def previous_digest_at(conn: Connection, channel: str) -> datetime | None:
    """End of the period of the channel's latest digest, or None before the first."""
    value = conn.execute(
        select(digests.c.period_end)
        .where(digests.c.channel == channel, digests.c.status != SKIPPED)
        .order_by(digests.c.id.desc())
        .limit(1)
    ).scalar()
    return value if isinstance(value, datetime) else None


def message_id_for(digest_id: int, channel: str, host: str) -> str:
    """`<digest-{id}.{channel}@{host}>`, with characters a Message-ID cannot hold replaced."""
    safe_channel = "".join(
        c if c.isascii() and (c.isalnum() or c in "-_") else "-" for c in channel
    )
    safe_host = "".join(c if c.isascii() and (c.isalnum() or c in "-.") else "-" for c in host)
    return f"<digest-{digest_id}.{safe_channel}@{safe_host or 'localhost'}>"


def record_digest(
    conn: Connection, digest: Digest, *, host: str, now: datetime, lease: timedelta
) -> Digest:
    """Record a digest as pending with its matches and story marks (call inside a transaction).

    The returned digest carries its id and Message-ID. It counts as one attempt already and is
    not re-sent by `due_digests` before `now + lease`.
    """
    recorded = _insert_digest(
        conn,
        digest,
        host=host,
        status=PENDING,
        entry_count=digest.header.entry_count,
        attempts=1,
        next_attempt_at=now + lease,
    )
    _record_story_marks(conn, recorded)
    return recorded


def record_skipped(conn: Connection, digest: Digest, *, host: str) -> int:
    """Settle matches that produced no entry (filtered out or repeats) under a skipped digest."""
    recorded = _insert_digest(
        conn, digest, host=host, status=SKIPPED, entry_count=0, attempts=0, next_attempt_at=None
    )
    assert recorded.id is not None
    return recorded.id


def _insert_digest(
    conn: Connection,
    digest: Digest,
    *,
    host: str,
    status: str,
    entry_count: int,
    attempts: int,
    next_attempt_at: datetime | None,
) -> Digest:
    """Insert the digest row and its digest_matches rows; the Message-ID derives from the id."""
    digest_id = conn.execute(
        insert(digests)
        .values(
            channel=digest.channel,
            status=status,
            created_at=digest.created_at,
            period_start=digest.period_start,
            period_end=digest.period_end,
            message_id="",
            entry_count=entry_count,
            payload={},
            attempts=attempts,
            next_attempt_at=next_attempt_at,
        )
        .returning(digests.c.id)
    ).scalar_one()
    recorded = digest.with_identity(digest_id, message_id_for(digest_id, digest.channel, host))
    conn.execute(
        update(digests)
        .where(digests.c.id == digest_id)
        .values(message_id=recorded.message_id, payload=recorded.to_json())
    )
    if digest.match_ids:
        conn.execute(
            insert(digest_matches),
            [
                {"channel": digest.channel, "match_id": m, "digest_id": digest_id}
                for m in digest.match_ids
            ],
        )
    return recorded


def _record_story_marks(conn: Connection, digest: Digest) -> None:
    if not digest.story_marks:
        return
    ids = [m.story_id for m in digest.story_marks]
    for chunk in _chunks(ids):
        conn.execute(
            delete(story_deliveries).where(
                story_deliveries.c.channel == digest.channel, story_deliveries.c.story_id.in_(chunk)
            )
        )
    existing: set[int] = set()
    for chunk in _chunks(ids):
        existing.update(conn.execute(select(stories.c.id).where(stories.c.id.in_(chunk))).scalars())
    rows = [
        {
            "channel": digest.channel,
            "story_id": m.story_id,
            "digest_id": digest.id,
            "actors": list(m.actors),
            "topics": list(m.topics),
            "terms": list(m.terms),
            "item_count": m.item_count,
        }
        for m in digest.story_marks
        if m.story_id in existing
    ]
    if rows:
        conn.execute(insert(story_deliveries), rows)


def claim(
    conn: Connection, digest_id: int, now: datetime, lease: timedelta, *, force: bool
) -> bool:
    """Take a recorded digest for one send attempt; False when it is not due (or already sent).

    `force` (a manual resend) takes it whatever its status or retry time.
    """
    due = and_(
        digests.c.status.in_((PENDING, FAILED)),
        digests.c.next_attempt_at.is_not(None),
        digests.c.next_attempt_at <= now,
    )
    condition = digests.c.id == digest_id if force else and_(digests.c.id == digest_id, due)
    result = conn.execute(
        update(digests)
        .where(condition)
        .values(attempts=digests.c.attempts + 1, next_attempt_at=now + lease)
    )
    return bool(result.rowcount == 1)


def mark_sent(conn: Connection, digest_id: int, now: datetime) -> None:
    conn.execute(
        update(digests)
        .where(digests.c.id == digest_id)
        .values(status=SENT, sent_at=now, next_attempt_at=None)
    )


def retry_delay(attempts: int, settings: DigestSettings) -> timedelta:
    """Exponential backoff: first_retry_delay × 2^(attempts-1), capped at max_retry_delay."""
    factor = 2 ** max(0, min(attempts - 1, 30))
    return timedelta(seconds=min(settings.max_retry_delay, settings.first_retry_delay * factor))


def mark_failed(
    conn: Connection,
    digest_id: int,
    error: str,
    now: datetime,
    settings: DigestSettings,
    *,
    permanent: bool = False,
) -> datetime | None:
    """Record a failed attempt; returns when it will be retried (None: permanent, resend only)."""
    attempts = conn.execute(select(digests.c.attempts).where(digests.c.id == digest_id)).scalar()
    retry_at = None if permanent else now + retry_delay(int(attempts or 1), settings)
    conn.execute(
        update(digests)
        .where(digests.c.id == digest_id)
        .values(status=FAILED, next_attempt_at=retry_at, last_error=truncate(one_line(error), 1000))
    )
    return retry_at


def _record(row: Any) -> DigestRecord:
    return DigestRecord(
        id=row.id,
        channel=row.channel,
        status=row.status,
        created_at=row.created_at,
        period_start=row.period_start,
        period_end=row.period_end,
        message_id=row.message_id,
        entry_count=row.entry_count,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_error=row.last_error,
        sent_at=row.sent_at,
        payload=row.payload if isinstance(row.payload, dict) else {},
    )


def due_digests(conn: Connection, channel: str, now: datetime) -> list[DigestRecord]:
    """The channel's pending or failed digests whose retry time has come, oldest first."""
    rows = conn.execute(
        select(digests)
        .where(
            digests.c.channel == channel,
            digests.c.status.in_((PENDING, FAILED)),
            digests.c.next_attempt_at.is_not(None),
            digests.c.next_attempt_at <= now,
        )
        .order_by(digests.c.id)
    )
    return [_record(r) for r in rows]


def get_digest(conn: Connection, digest_id: int) -> DigestRecord | None:
    row = conn.execute(select(digests).where(digests.c.id == digest_id)).first()
    return _record(row) if row is not None else None


def list_digests(
    conn: Connection, *, channel: str | None = None, limit: int = 50, skipped: bool = False
) -> list[DigestRecord]:
    """History, newest first (skipped ones only when asked)."""
    query = select(digests).order_by(digests.c.id.desc()).limit(limit)
    if channel is not None:
        query = query.where(digests.c.channel == channel)
    if not skipped:
        query = query.where(digests.c.status != SKIPPED)
    return [_record(r) for r in conn.execute(query)]


def recent_digests(
    conn: Connection, channel: str, *, entries: int, include: int | None = None
) -> list[Digest]:
    """The channel's latest sent digests (plus digest `include`) holding about `entries` entries."""
    out: list[Digest] = []
    total = 0
    before: int | None = None
    wanted = (
        or_(digests.c.status == SENT, digests.c.id == include)
        if include
        else (digests.c.status == SENT)
    )
    while total < entries:
        query = (
            select(digests)
            .where(digests.c.channel == channel, wanted, digests.c.entry_count > 0)
            .order_by(digests.c.id.desc())
            .limit(20)
        )
        if before is not None:
            query = query.where(digests.c.id < before)
        batch = [_record(r) for r in conn.execute(query)]
        if not batch:
            break
        for record in batch:
            try:
                digest = record.digest()
            except StorageError:
                continue
            out.append(digest)
            total += len(digest.entries)
        before = batch[-1].id
    return out


def count_settled(conn: Connection, channel: str) -> int:
    return int(
        conn.execute(
            select(func.count())
            .select_from(digest_matches)
            .where(digest_matches.c.channel == channel)
        ).scalar_one()
    )
