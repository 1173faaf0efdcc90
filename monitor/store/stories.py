"""Story storage: places a cycle's new items in stories, in one batch, and lists stories.

`assign_pending` runs once at the end of each poll cycle (and at its start, to catch up
after a crash), in one transaction:

    the pending items: stored, no story yet, first seen within the window
        (ids by one query; their records from the hints `Storage.save_items` left,
         read back only for items without one)
    → bring the in-memory StoryIndex up to date            (first use: load the window; then
                                                              one primary-key range query)
    → every pending item starts a story of its own,         (written only for the items
                                                              with a match; the others'
                                                              links name no story: on
                                                              SQLite one statement over a
                                                              JSON array of their ids)
      while best_candidates finds each item's best          (pure, monitor.stories; numpy, in
      candidate                                              a helper thread)
      and the exact duplicates are looked up by URL /       (one self-join per key, in another
      content hash                                           helper, by a second connection
                                                             that reads what is committed)
    → decide_in_order decides join-or-start for the items   (pure, monitor.stories; only
      in company                                             the few `in_company` keeps)
    → move the items that join another story there,         (`_regroup`: nothing to do for
      delete the stories they left, rewrite the rest,        a batch of lone items)
      write the unwritten stories they join
    → stage the placed items in the StoryIndex              (indexed on its next use,
                                                              confirmed at the next call)

The database stays the truth: the index holds only what `items` says (the stored shingle
hashes, or hashes taken again from title and summary), so a restart rebuilds it and a
rolled-back transaction cannot leave a phantom behind: items staged by one call are checked
against `items` at the next one.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from itertools import chain
from typing import Any, NamedTuple, cast

from sqlalchemy import (
    Connection,
    Engine,
    Select,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    select,
    text,
    type_coerce,
    update,
)
from sqlalchemy.exc import SQLAlchemyError

from monitor.errors import StorageError
from monitor.settings import StoriesSettings
from monitor.shingles import story_shingles
from monitor.store.bulk import executemany
from monitor.store.engine import reading, reads_beside_a_writer
from monitor.store.schema import UtcDateTime, feeds, item_stories, items, matches, stories
from monitor.stories import (
    STOP_LIKE,
    Candidate,
    Decision,
    PlacedWindow,
    StoryRules,
    appeared_at,
    best_candidates,
    comparable,
    decide_in_order,
    in_company,
    processing_order,
    roots_of_pairs,
    shingle_hashes,
    union_sorted,
)
from monitor.types import Item, MatchRecord

#: Ids per IN (...) statement (well under SQLite's and PostgreSQL's parameter limits).
CHUNK = 5000

StoryKey = tuple[str, int]


@dataclass(frozen=True, slots=True)
class StoryMember:
    """One item of a story, as listed to a person."""

    item_id: int
    link: str | None
    title: str
    feed: str
    published_at: datetime | None
    first_seen_at: datetime
    appeared_at: datetime
    duplicate_of: int | None


@dataclass(frozen=True, slots=True)
class StoryView:
    """A story with its members in order of first appearance (who reported it, who first)."""

    id: int
    first_seen_at: datetime
    last_seen_at: datetime
    item_count: int
    representative_item_id: int | None
    actors: tuple[str, ...]
    topics: tuple[str, ...]
    terms: tuple[str, ...]
    members: tuple[StoryMember, ...]

    @property
    def title(self) -> str:
        for m in self.members:
            if m.item_id == self.representative_item_id:
                return m.title
        return self.members[0].title if self.members else ""

    @property
    def sources(self) -> tuple[str, ...]:
        """Feed names, first reporter first, each once."""
        return tuple(dict.fromkeys(m.feed for m in self.members))


# --- the in-memory index and its sync with the database -----------------------------------


class StoryIndex:
    """The placed items of one database that new items may join, kept in memory.

    Created empty (by `Storage`, one per engine) and filled from `items` on first use. It
    reflects every committed item with a story that appeared at or after `floor` and whose id
    is at most `high_water`, plus `staged` items placed by the last call, not yet known to be
    committed. Each call first reads committed items above `high_water` (its own staged ones
    and any written by another process) and drops staged items the database does not have.
    """

    def __init__(self, stop_like: int = STOP_LIKE) -> None:
        self._window = PlacedWindow(stop_like)
        self.floor: datetime | None = None
        self.high_water = 0
        self.staged: dict[int, int] = {}
        #: Items saved since the last assignment, as `assign_pending` would read them back
        #: (recorded after their transaction committed; a missing hint only costs a read).
        self.hints: dict[int, Pending] = {}
        #: What `stage` was given and has not yet indexed.
        self._unstaged: list[tuple[Sequence[Pending], Mapping[int, int]]] = []

    def __len__(self) -> int:
        return len(self.window)

    @property
    def window(self) -> PlacedWindow:
        """The placed items, staged ones included."""
        self.settle()
        return self._window

    def hint(self, saved: Iterable[Pending]) -> None:
        """Remember committed new items, so assignment need not read them back."""
        self.hints.update((p.item_id, p) for p in saved)

    def stage(self, placed: Sequence[Pending], story_of: Mapping[int, int]) -> None:
        """Index items just placed (in a transaction not yet committed) in the stories
        `story_of` gives them, on the index's next use (`settle`): that is the next cycle's
        start in a running monitor (`load_window`, while its first requests are out), and
        never in a one-off poll, so the cycle's end does not wait for it."""
        self._unstaged.append((placed, story_of))

    def settle(self) -> None:
        """Index the items `stage` was given."""
        unstaged, self._unstaged = self._unstaged, []
        for placed, story_of in unstaged:
            entries = [
                Candidate(p.item_id, story_of[p.item_id], p.appeared_at, p.hashes) for p in placed
            ]
            self._window.add(entries)
            self.staged.update((c.item_id, story_of[c.item_id]) for c in entries)


#: When a stored item appeared (`monitor.stories.appeared_at`), worked out by the database:
#: one datetime per row to convert instead of two.
_APPEARED = type_coerce(
    case(
        (
            and_(items.c.published_at.is_not(None), items.c.published_at <= items.c.first_seen_at),
            items.c.published_at,
        ),
        else_=items.c.first_seen_at,
    ),
    UtcDateTime(),
).label("appeared")

#: What the index keeps of a placed item. Title and summary are read only for the items
#: without stored hashes (`_stored_hashes`): reading them for every item of the window was
#: most of what loading it cost.
_INDEX_COLUMNS = (items.c.id, item_stories.c.story_id, items.c.story_hashes, _APPEARED)
#: Placed items: those with a story.
_PLACED = items.join(item_stories, item_stories.c.item_id == items.c.id)


def _placed(*where: Any) -> Select[Any]:
    """`_INDEX_COLUMNS` of the placed items that meet `where`."""
    return select(*_INDEX_COLUMNS).select_from(_PLACED).where(*where)


#: A row of `_placed`: item id, story id (`known_story`), stored hashes (or None), when it
#: appeared.
PlacedRow = tuple[int, int, bytes | None, datetime]


def known_story(item_id: int, story_id: int | None) -> int:
    """An item's story as the index and the decision know it: its written story, or, for an
    item whose story of one is not written (`item_stories.story_id` NULL), minus its own id."""
    return -item_id if story_id is None else story_id


def unwritten(story_id: int) -> bool:
    """Whether a story id from `known_story` stands for a story of one not yet written."""
    return story_id < 0


def _placed_rows(conn: Connection, query: Select[Any]) -> list[PlacedRow]:
    """The rows of a `_placed` query as plain tuples, read from the driver's cursor with
    only the appearance converted (by its type's result processor): the Core's per-row
    processing was half of loading a 30,000-item window (0.21-0.31 s against 0.10-0.13 s
    read this way, on SQLite)."""
    dialect = conn.dialect
    process = _APPEARED.type.dialect_impl(dialect).result_processor(dialect, None)
    assert process is not None  # UtcDateTime converts on every backend
    appeared = cast(Callable[[Any], datetime], process)  # `_APPEARED` is never NULL
    result = conn.execute(query)
    try:
        raw = result.cursor.fetchall()
    finally:
        result.close()
    return [
        (item_id, known_story(item_id, story), blob, appeared(when))
        for item_id, story, blob, when in raw
    ]


def _unplaced(rows: Any = items) -> Any:
    """The condition "this item has no story yet", for `items` or an alias of it."""
    return ~exists().where(item_stories.c.item_id == rows.c.id)


def sync_index(conn: Connection, index: StoryIndex, floor: datetime, exclude: set[int]) -> None:
    """Bring `index` up to date with committed items appeared ≥ `floor` (ids in `exclude`,
    the batch being placed, are left out)."""
    index.settle()
    if index.floor is None:
        _load(conn, index, floor, exclude)
        return
    _catch_up(conn, index, exclude)
    if floor < index.floor:
        _extend(conn, index, floor, exclude)
    else:
        index.window.evict(floor)
        index.floor = floor


def load_window(
    conn: Connection, index: StoryIndex, settings: StoriesSettings, now: datetime
) -> None:
    """Fill a fresh `index` with the placed items an assignment at `now` would look at (two
    windows back); an index already filled is left for the next assignment to bring up to
    date."""
    if index.floor is None:
        _load(conn, index, now - 2 * StoryRules.from_settings(settings).window, set())
    index.settle()


def _load(conn: Connection, index: StoryIndex, floor: datetime, exclude: set[int]) -> None:
    # The newest placed item: the last key of `item_stories`.
    top = select(func.max(item_stories.c.item_id))
    index.high_water = int(conn.execute(top).scalar() or 0)
    rows = _placed_rows(conn, _window_query(floor))
    index.window.add(_indexable(conn, _up_to(rows, index.high_water), floor, exclude))
    index.floor = floor
    index.staged.clear()


def _window_query(floor: datetime) -> Select[Any]:
    """Placed items first seen since `floor`, by the first_seen_at index: the bound on ids
    is applied in Python (`_up_to`), since in SQL it would make SQLite walk the primary key
    through all history instead."""
    return _placed(items.c.first_seen_at >= floor)


def _up_to(rows: Sequence[PlacedRow], high_water: int) -> list[PlacedRow]:
    return [r for r in rows if r[0] <= high_water]


def _catch_up(conn: Connection, index: StoryIndex, exclude: set[int]) -> None:
    assert index.floor is not None
    # By primary key alone: a few rows (the last call's), whatever the window holds. The ids
    # come from `item_stories` first: with the range on the join alone, SQLite walked every
    # item above the mark (the whole pending batch: 0.013 s of a cold cycle's pass).
    newer = select(item_stories.c.item_id).where(item_stories.c.item_id > index.high_water)
    rows = _placed_rows(conn, _placed(items.c.id.in_(newer)))
    staged, index.staged = index.staged, {}
    fresh = [r for r in rows if staged.get(r[0]) != r[1]]
    index.window.add(_indexable(conn, fresh, index.floor, exclude))
    if rows:
        index.high_water = max(index.high_water, max(r[0] for r in rows))
    confirmed = {r[0] for r in rows}
    unconfirmed = [i for i in staged if i not in confirmed]
    if unconfirmed:
        _recheck(conn, index, unconfirmed, exclude)


def _recheck(conn: Connection, index: StoryIndex, ids: list[int], exclude: set[int]) -> None:
    """Staged items the range read did not confirm: keep those the database has, drop others
    (their transaction rolled back)."""
    assert index.floor is not None
    found: list[PlacedRow] = []
    for chunk in _chunks(sorted(ids)):
        found.extend(_placed_rows(conn, _placed(item_stories.c.item_id.in_(chunk))))
    index.window.remove(ids)
    index.window.add(_indexable(conn, found, index.floor, exclude))


def _extend(conn: Connection, index: StoryIndex, floor: datetime, exclude: set[int]) -> None:
    """Load the stretch [floor, index.floor) when a call reaches further back than before."""
    assert index.floor is not None
    upper = index.floor
    found = _up_to(_placed_rows(conn, _window_query(floor)), index.high_water)
    rows = [r for r in found if r[0] not in index.window]
    index.window.add(c for c in _indexable(conn, rows, floor, exclude) if c.appeared_at < upper)
    index.floor = floor


def _indexable(
    conn: Connection, rows: Iterable[PlacedRow], floor: datetime, exclude: set[int]
) -> list[Candidate]:
    """Window entries for rows of `_placed` that appeared ≥ `floor`, except `exclude`."""
    kept = [r for r in rows if r[3] >= floor and r[0] not in exclude]
    stored = _stored_hashes(conn, [(r[0], r[2]) for r in kept])
    return [
        Candidate(item_id, story, when, hashes)
        for (item_id, story, _, when), hashes in zip(kept, stored, strict=True)
        if comparable(hashes)
    ]


def _stored_hashes(conn: Connection, rows: Sequence[tuple[int, bytes | None]]) -> list[bytes]:
    """The packed shingle hashes of (item id, stored `story_hashes`) pairs: as stored, or
    taken from the item's title and summary when it has none (stored before they were kept,
    or while stories were off; their texts are read here, by id)."""
    out = [b"" if blob is None else bytes(blob) for _, blob in rows]
    missing = {item_id: i for i, (item_id, blob) in enumerate(rows) if blob is None}
    for chunk in _chunks(sorted(missing)):
        query = select(items.c.id, items.c.title, items.c.summary).where(items.c.id.in_(chunk))
        texts = conn.execute(query).all()
        taken = shingle_hashes([story_shingles(title, summary) for _, title, summary in texts])
        for (item_id, _, _), hashes in zip(texts, taken, strict=True):
            out[missing[item_id]] = hashes
    return out


# --- assignment ---------------------------------------------------------------------------


class Pending(NamedTuple):
    """A stored item without a story, with what its match found (actors, topics, terms,
    each sorted and once: `canonical`); a named tuple, made once per new item (see
    `monitor.stories.Fingerprint`)."""

    item_id: int
    appeared_at: datetime
    #: Its shingles, hashed and packed (`Fingerprint.hashes`).
    hashes: bytes
    actors: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()
    terms: tuple[str, ...] = ()
    #: Whether it has a match row: then its story is written as it is placed (`_start_alone`).
    matched: bool = False
    #: The root of its exact-duplicate group, once looked up (`_duplicate_roots`).
    duplicate_of: int | None = None

    @classmethod
    def from_item(
        cls, item_id: int, item: Item, match: MatchRecord | None, hashes: bytes | None = None
    ) -> Pending:
        """The record `_pending` would read back for an item just stored with its match
        (None: it did not match) and its shingles' `hashes` (None: taken from its text)."""
        if hashes is None:
            [hashes] = shingle_hashes([story_shingles(item.title, item.summary)])
        at = appeared_at(item)
        if match is None:
            return cls(item_id, at, hashes)
        return cls(
            item_id,
            at,
            hashes,
            canonical(match.actors),
            canonical(match.topics),
            canonical(match.terms),
            matched=True,
        )


def pending_records(
    ids: Mapping[str, int],
    items: Sequence[Item],
    matches: Sequence[MatchRecord | None],
    hashes: Sequence[bytes],
) -> list[Pending]:
    """`Pending.from_item` for the items of one save that were stored (`ids`: identity →
    id; the others were already known), with their matches and shingle hashes."""
    return [
        Pending.from_item(item_id, item, match, h)
        for item, match, h in zip(items, matches, hashes, strict=True)
        if (item_id := ids.get(item.identity)) is not None
    ]


def assign_pending(
    conn: Connection, index: StoryIndex, settings: StoriesSettings, now: datetime
) -> int:
    """Place every stored item with no story that was first seen within the window
    (≥ now − window) in a story, in one batch; returns how many were placed.

    Older items without a story (stored while stories were disabled, or before they
    existed) are left alone: they could only join stories that have closed. Running it
    twice places nothing the second time. `index` is the caller's kept `StoryIndex`.

    The items must have been committed before (as `Storage.save_items` does): their exact
    duplicates are looked up through a second connection, which sees only what is
    committed.
    """
    rules = StoryRules.from_settings(settings)
    since = now - rules.window
    hints, index.hints = index.hints, {}
    try:
        pending = _pending(conn, since, hints)
        if not pending:
            return 0
        _place(conn, pending, rules, now, index)
    except SQLAlchemyError as e:
        raise StorageError(f"cannot assign stories: {e}") from e
    return len(pending)


def _pending(conn: Connection, since: datetime, hints: Mapping[int, Pending]) -> list[Pending]:
    """Items without a story first seen since `since`, with their match: from `hints` where
    there is one, else read back (one query per CHUNK ids)."""
    query = select(items.c.id).where(items.c.first_seen_at >= since, _unplaced())
    result = conn.execute(query)
    try:  # the ids straight from the driver, all at once
        ids = [i for (i,) in result.cursor.fetchall()]
    finally:
        result.close()
    ids.sort()
    found = list(map(hints.get, ids))
    if all(found):  # every one has its hint (the cycle's own items, as nearly always)
        return cast(list[Pending], found)
    missing = [i for i, p in zip(ids, found, strict=True) if p is None]
    read = {p.item_id: p for chunk in _chunks(missing) for p in _read_pending(conn, chunk)}
    return [p or read[i] for i, p in zip(ids, found, strict=True) if p or i in read]


def _read_pending(conn: Connection, ids: Sequence[int], *, placed: bool = False) -> list[Pending]:
    """The records of the items `ids` that have no story yet, or (`placed`) that have one."""
    query = (
        select(
            items.c.id,
            items.c.story_hashes,
            items.c.published_at,
            items.c.first_seen_at,
            matches.c.actors,
            matches.c.topics,
            matches.c.evidence,
            matches.c.item_id.is_not(None).label("matched"),
        )
        .select_from(items.outerjoin(matches, matches.c.item_id == items.c.id))
        .where(items.c.id.in_(ids), ~_unplaced() if placed else _unplaced())
    )
    rows = list(conn.execute(query))
    hashes = _stored_hashes(conn, [(r.id, r.story_hashes) for r in rows])
    return [
        Pending(
            r.id,
            _appeared(r.published_at, r.first_seen_at),
            h,
            canonical(r.actors or ()),
            canonical(r.topics or ()),
            canonical(topic_terms(r.evidence)),
            matched=bool(r.matched),
        )
        for r, h in zip(rows, hashes, strict=True)
    ]


def topic_terms(evidence: Any) -> tuple[str, ...]:
    """The topic phrases a stored match hit (as `Pending.from_item` takes them)."""
    hits = evidence.get("hits", ()) if isinstance(evidence, dict) else ()
    return tuple(
        dict.fromkeys(
            str(h["phrase"]).casefold()
            for h in hits
            if isinstance(h, dict) and h.get("kind") == "topic" and "phrase" in h
        )
    )


def _place(
    conn: Connection,
    pending: Sequence[Pending],
    rules: StoryRules,
    now: datetime,
    index: StoryIndex,
) -> None:
    """Place `pending` (the items without a story first seen within the window)."""
    sync_index(conn, index, now - 2 * rules.window, {p.item_id for p in pending})
    lower = lower_bound(pending, rules, now)
    stored = [c for c in index.window.entries() if c.appeared_at >= lower]
    ordered = processing_order(pending)  # the records as they are (`Placing`)
    # Every item is first written in a story of its own, as nearly all stay; meanwhile
    # helper threads find the candidates (numpy, mostly without the GIL) and the exact
    # duplicates (by a second connection, which reads the committed items while this one
    # writes; SQLite steps without the GIL). The few items that join another story are then
    # moved (`_regroup`).
    with ThreadPoolExecutor(2, thread_name_prefix="monitor-stories") as helpers:
        found = helpers.submit(best_candidates, ordered, stored, rules, index.window.stop_like)
        if reads_beside_a_writer(conn.engine):
            duplicates = helpers.submit(_read_duplicates, conn.engine, pending)
            own = _start_alone(conn, pending)
            roots, duplicate_story = duplicates.result()
        else:  # one connection (an in-memory database): one thing after the other
            roots, duplicate_story = _exact_duplicates(conn, pending)
            own = _start_alone(conn, pending)
        best = found.result()
    rooted = [
        p._replace(duplicate_of=roots[p.item_id]) if p.item_id in roots else p
        for p in in_company(ordered, best, roots)
    ]
    decided = decide_in_order(rooted, best, duplicate_story)
    story_of, woken = _regroup(conn, rooted, decided, own)
    index.stage([p for p in chain(pending, woken) if comparable(p.hashes)], story_of)


def lower_bound(batch: Sequence[Pending], rules: StoryRules, now: datetime) -> datetime:
    """Oldest appearance a stored candidate may have: a window before the batch's oldest item,
    but never more than two windows before `now` (a backfill of old items does not make the
    lookup scan history; such items only meet recent ones and each other)."""
    oldest = min(p.appeared_at for p in batch)
    return max(oldest - rules.window, now - 2 * rules.window)


def _chunks(values: Iterable[Any], size: int = CHUNK) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for v in values:
        chunk.append(v)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _read_duplicates(
    engine: Engine, pending: Sequence[Pending]
) -> tuple[dict[int, int], dict[int, int | None]]:
    """`_exact_duplicates` through a connection of its own (`reading`)."""
    with reading(engine) as reader:
        return _exact_duplicates(reader, pending)


def _exact_duplicates(
    conn: Connection, pending: Sequence[Pending]
) -> tuple[dict[int, int], dict[int, int | None]]:
    """The exact-duplicate root of each pending item that has one (`_duplicate_roots`),
    and the story of each root outside the batch (None: it has none)."""
    records = {p.item_id: p for p in pending}
    roots = _duplicate_roots(conn, records)
    return roots, _story_ids(conn, {r for r in roots.values() if r not in records})


def _duplicate_roots(conn: Connection, pending: Mapping[int, Pending]) -> dict[int, int]:
    """Pending item id → earliest stored item with the same canonical URL or content hash
    (`pending`: the records by id).

    One self-join per key finds, for every item without a story in the id range of the
    pending ones (nearly always just them: the newest items), the other items sharing its
    key; only those pairs are read, so a cycle without duplicates reads nothing. So it runs
    before the pending items get their own stories (`_start_alone`), or beside that, on
    another connection, which sees only what is committed. Content hashes of items too
    short to compare are ignored (a bare "Live updates" title is not a duplicate): only
    comparable items are linked by content hash."""
    if not pending:
        return {}
    new, other = items.alias("new"), items.alias("other")
    pairs: list[tuple[int, int]] = []
    earlier_root: dict[int, int] = {}
    for key in ("url", "content_hash"):
        query = (
            select(new.c.id.label("new_id"), other.c.id, other.c.duplicate_of)
            .join(other, and_(other.c[key] == new.c[key], other.c.id != new.c.id))
            .where(new.c.id.between(min(pending), max(pending)), _unplaced(new))
        )
        for row in conn.execute(query):
            record = pending.get(row.new_id)
            if record is None or (key == "content_hash" and not comparable(record.hashes)):
                continue
            pairs.append((row.new_id, row.id))
            if row.duplicate_of is not None:
                earlier_root[row.id] = row.duplicate_of
    roots = roots_of_pairs(pairs)
    return {i: earlier_root.get(r, r) for i, r in roots.items() if i in pending}


def _appeared(published: datetime | None, first_seen: datetime) -> datetime:
    """`monitor.stories.appeared_at` for a stored row."""
    return published if published is not None and published <= first_seen else first_seen


def _story_ids(conn: Connection, item_ids: Iterable[int]) -> dict[int, int | None]:
    """The story of each of these items (`known_story`; None: it has none)."""
    out: dict[int, int | None] = dict.fromkeys(item_ids)
    for chunk in _chunks(sorted(out)):
        query = select(item_stories.c.item_id, item_stories.c.story_id).where(
            item_stories.c.item_id.in_(chunk)
        )
        out.update({row.item_id: known_story(*row) for row in conn.execute(query)})
    return out


class BatchStories(dict[int, int]):
    """Item id → story id (`known_story`) for the items of a batch being placed: an item
    without an entry is alone in its unwritten story of one (minus its id). Only the
    written stories get entries: a cold cycle's 26,000 unmatched items need none."""

    def __missing__(self, item_id: int) -> int:
        return -item_id


def _start_alone(conn: Connection, pending: Sequence[Pending]) -> BatchStories:
    """Place every pending item in a story of its own; item id → story id (`known_story`).

    Only the stories of the items with a match (about one in ten) are written now: a digest
    names the stories it delivers. The others' links name no story (NULL): nearly all stay
    alone, and their stories of one are written only if another item joins them
    (`_regroup`), which left a cold cycle's assignment a tenth of its story rows to write."""
    written = _write_own_stories(conn, [p for p in pending if p.matched])
    own = BatchStories((item_id, story_id) for story_id, item_id in written)
    _link_items(conn, list(own.items()), [p.item_id for p in pending if not p.matched])
    return own


def write_matched_stories(conn: Connection, item_ids: Iterable[int]) -> int:
    """Write a story of one for each item of `item_ids` that was placed alone without a
    match (its link names no story) and has a match now (`monitor rematch` added it), and
    link the item to it: a matched item has a written story, as when it is placed with its
    match, so its digests are told by story. Returns how many stories were written.

    Items without a link (not placed yet) are left to the next assignment, and items
    already in a written story to it. A kept index of another process that still holds
    such a story as unwritten joins the written one when an item joins it (`_woken`)."""
    linked = _story_ids(conn, item_ids)
    lone = sorted(i for i, story in linked.items() if story is not None and unwritten(story))
    found = [p for chunk in _chunks(lone) for p in _read_pending(conn, chunk, placed=True)]
    written = _write_own_stories(conn, [p for p in found if p.matched])
    _move_items(conn, written, [])
    return len(written)


def _write_own_stories(conn: Connection, records: Sequence[Pending]) -> list[tuple[int, int]]:
    """Write a story of one item for each record, from it; (story id, item id) pairs."""
    ids = _new_story_ids(conn, len(records))
    _insert_new_stories(
        conn,
        [
            (story_id, p.item_id, p.appeared_at, p.appeared_at, 1, p.actors, p.topics, p.terms)
            for story_id, p in zip(ids, records, strict=True)
        ],
    )
    return [(story_id, p.item_id) for story_id, p in zip(ids, records, strict=True)]


def _regroup(
    conn: Connection,
    rooted: Sequence[Pending],
    decided: Mapping[int, Decision],
    own: BatchStories,
) -> tuple[BatchStories, list[Pending]]:
    """Carry out the decisions of the items in company (`rooted`: their records, with
    their duplicate roots) over the stories of their own `_start_alone` gave every item.
    Returns item id → story id for every item, and the records of the stored items whose
    unwritten stories were joined (the index learns their story).

    Each group's story is written (`_write_groups`); an item that joins another story is
    moved there, and its own, now empty, deleted if written; copies get their
    `duplicate_of`."""
    groups: dict[StoryKey, list[Pending]] = {}
    for p in rooted:
        groups.setdefault(_key(decided[p.item_id]), []).append(p)
    target, woken = _write_groups(conn, groups, own)
    story_of = BatchStories(own)
    for key, members in groups.items():
        story_of.update((p.item_id, target[key]) for p in members)
    moved = [(story_of[i], i) for i in (p.item_id for p in rooted) if story_of[i] != own[i]]
    emptied = [own[i] for _, i in moved if not unwritten(own[i])]
    for p, stored in woken:
        story_of[p.item_id] = target[("stored", -p.item_id)]
        if unwritten(stored):  # its link named no story until now
            moved.append((story_of[p.item_id], p.item_id))
    _move_items(conn, moved, emptied)
    # Only the copies: on SQLite, assigning the self-referencing `duplicate_of` at all, even
    # NULL over NULL, costs a foreign-key check per row.
    copies = [(d.duplicate_of, i) for i, d in decided.items() if d.duplicate_of is not None]
    marked = update(items).where(items.c.id == bindparam("id"))
    executemany(conn, marked.values(duplicate_of=bindparam("dup")), ("dup", "id"), copies)
    return story_of, [p for p, _ in woken]


def _write_groups(
    conn: Connection, groups: Mapping[StoryKey, Sequence[Pending]], own: BatchStories
) -> tuple[dict[StoryKey, int], list[tuple[Pending, int]]]:
    """Write the story of each group of new items (`_regroup`); the story id of each group,
    and the stored items whose unwritten stories were joined, with their story as stored
    before (`_woken`).

    A story started in the batch keeps its first item's own story, rewritten for all its
    members, or is written now if that was unwritten. A stored story joined is rewritten
    with its new members, or, unwritten, written with its one stored item and them."""
    target = {k: own[k[1]] if k[0] == "new" else k[1] for k in groups}
    started = {k[1]: m for k, m in groups.items() if k[0] == "new" and len(m) > 1}
    joined: dict[int, list[Pending]] = {}
    for (kind, story), members in groups.items():
        if kind == "stored":
            joined.setdefault(story, []).extend(members)
    woken = _woken(conn, [-s for s in joined if unwritten(s)])
    asleep = []
    for p, stored in woken:
        if unwritten(stored):
            asleep.append(p)
        else:  # written since the index read it, by another writer: joined as any other
            target[("stored", -p.item_id)] = stored
            joined.setdefault(stored, []).extend(joined.pop(-p.item_id))
    fresh = [leader for leader in started if unwritten(own[leader])]
    ids = iter(_new_story_ids(conn, len(fresh) + len(asleep)))
    written = []
    for leader in fresh:
        target[("new", leader)] = story = next(ids)
        written.append((story, *_aggregate(started[leader])))
    for p in asleep:
        target[("stored", -p.item_id)] = story = next(ids)
        written.append((story, *_aggregate([p, *joined.pop(-p.item_id)])))
    _insert_new_stories(conn, written)
    rows = [(*_aggregate(m), own[k]) for k, m in started.items() if not unwritten(own[k])]
    _rewrite_stories(conn, rows + _merged_rows(conn, joined))
    return target, woken


def _woken(conn: Connection, item_ids: Sequence[int]) -> list[tuple[Pending, int]]:
    """The records of the stored items whose unwritten stories new items join, each with
    its story as stored now (`known_story`): still unwritten, or written since the index
    last read it, by another writer. Their matches are read now: one may have come since
    they were placed."""
    if not item_ids:
        return []
    stored = _story_ids(conn, item_ids)
    found = [
        p for chunk in _chunks(sorted(item_ids)) for p in _read_pending(conn, chunk, placed=True)
    ]
    if len(found) != len(item_ids):  # each found item has its link row (`placed`)
        missing = sorted(set(item_ids) - {p.item_id for p in found})
        raise StorageError(f"items {missing} were joined but have no story stored")
    return [(p, cast(int, stored[p.item_id])) for p in found]


def _move_items(conn: Connection, moved: Sequence[tuple[int, int]], emptied: Sequence[int]) -> None:
    """Point each (story id, item id) of `moved` at its story, then delete the written
    stories they left (`emptied`: each held just its one item)."""
    relink = update(item_stories).where(item_stories.c.item_id == bindparam("item"))
    executemany(conn, relink.values(story_id=bindparam("story")), ("story", "item"), moved)
    for chunk in _chunks(emptied):
        conn.execute(delete(stories).where(stories.c.id.in_(chunk)))


def _alone_as_json(conn: Connection) -> bool:
    """Whether `_link_items` links the items to no story by one statement, their ids sent
    as a JSON array: on SQLite 3.38 and later (JSON built in)."""
    return conn.dialect.name == "sqlite" and sqlite3.sqlite_version_info >= (3, 38)


#: Links of items to no story, by one statement on SQLite (`ids`: a JSON array of item ids).
_LINK_ALONE = text(
    "INSERT INTO item_stories (item_id, story_id) SELECT value, NULL FROM json_each(:ids)"
)


def _link_items(conn: Connection, written: Sequence[tuple[int, int]], alone: Sequence[int]) -> None:
    """Record each item's story: (item id, story id) for the `written` ones, no story (NULL)
    for the items `alone` in an unwritten story of one; one `item_stories` row per item.

    The story goes to its own narrow table: setting a column of the wide `items` rows
    rewrote every page holding a placed item (0.13 s of updates and a 35 MB commit on
    SQLite for a cold cycle's 29,550 items, against 0.02-0.04 s and 1.7 MB).

    On SQLite the links naming no story (nearly all) go by one statement, their item ids
    as one JSON array that SQLite takes apart itself (`_alone_as_json`), in one step
    without the GIL, where an executemany took it back for every row while the candidate
    search needed it beside (`_place`)."""
    links: list[tuple[int, int | None]] = list(written)
    if alone and _alone_as_json(conn):
        conn.execute(_LINK_ALONE, {"ids": json.dumps(alone)})
    else:
        links += [(item_id, None) for item_id in alone]
    statement = insert(item_stories).values(item_id=bindparam("item"), story_id=bindparam("story"))
    executemany(conn, statement, ("item", "story"), links)


def _key(d: Decision) -> StoryKey:
    if d.story_id is not None:
        return ("stored", d.story_id)
    assert d.leader_id is not None
    return ("new", d.leader_id)


#: The columns of a story computed from its members, in this order (`_aggregate`).
_STORY_COLUMNS = (
    "representative_item_id",
    "first_seen_at",
    "last_seen_at",
    "item_count",
    "actors",
    "topics",
    "terms",
)


def _aggregate(members: Sequence[Pending]) -> tuple[Any, ...]:
    """Story columns (`_STORY_COLUMNS`) computed from a group of new members
    (representative: the earliest); the JSON lists as tuples (hashable: `executemany`)."""
    first = min(members, key=lambda p: (p.appeared_at, p.item_id))
    return (
        first.item_id,
        first.appeared_at,
        max(p.appeared_at for p in members),
        len(members),
        tuple(union_sorted(*(p.actors for p in members))),
        tuple(union_sorted(*(p.topics for p in members))),
        tuple(union_sorted(*(p.terms for p in members))),
    )


def canonical(values: Iterable[str]) -> tuple[str, ...]:
    """Values sorted, each once: how a pending item holds its actors, topics and terms, so a
    story of one item takes them as they are."""
    return tuple(sorted(set(values)))


def _insert_new_stories(conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert story rows: the id, then `_STORY_COLUMNS`."""
    if not rows:
        return
    names = ("id", *_STORY_COLUMNS)
    statement = insert(stories).values({n: bindparam(n) for n in names})
    _write_story_rows(conn, statement, names, rows, {n: stories.c[n].type for n in names})


def _write_story_rows(
    conn: Connection,
    statement: Any,
    names: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    types: Mapping[str, Any],
) -> None:
    """Run `statement` once per row of story columns (values in the order of `names`): by
    the driver-level executemany on SQLite, where the Core's per-row parameter handling cost
    more than the writes (29,550 updates of stored stories: 2.1 s against 0.84 s); through the
    Core elsewhere (psycopg adapts JSON itself, and its executemany is fast enough)."""
    if conn.dialect.name == "sqlite":
        executemany(conn, statement, names, rows, types)
    else:
        conn.execute(statement, [dict(zip(names, r, strict=True)) for r in rows])


def _new_story_ids(conn: Connection, count: int) -> list[int]:
    """Ids for `count` new stories, taken before inserting them (so the insert needs no
    RETURNING and can go through `executemany`): from the sequence on PostgreSQL; on SQLite,
    above the highest id, which is safe because the assignment transaction holds the write
    lock (BEGIN IMMEDIATE)."""
    if conn.dialect.name == "postgresql":
        query = text(
            "SELECT nextval(pg_get_serial_sequence('stories', 'id')) FROM generate_series(1, :n)"
        )
        return [int(i) for i in conn.execute(query, {"n": count}).scalars()]
    top = conn.execute(select(func.coalesce(func.max(stories.c.id), 0))).scalar_one()
    return list(range(int(top) + 1, int(top) + 1 + count))


def _merged_rows(
    conn: Connection, joined: Mapping[int, Sequence[Pending]]
) -> list[tuple[Any, ...]]:
    """For stored stories (story id → the new items that join it): their columns
    (`_STORY_COLUMNS`) with the new members merged in, then the id."""
    current = {}
    for chunk in _chunks(sorted(joined)):
        current.update(
            {r.id: r for r in conn.execute(select(stories).where(stories.c.id.in_(chunk)))}
        )
    return [
        (*_merged(current[story_id], _aggregate(members)), story_id)
        for story_id, members in joined.items()
    ]


def _rewrite_stories(conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Set `_STORY_COLUMNS` of stored stories: each row holds them, then the story id."""
    if not rows:
        return
    names = tuple(f"b_{c}" for c in (*_STORY_COLUMNS, "id"))
    statement = (
        update(stories)
        .where(stories.c.id == bindparam("b_id"))
        .values({c: bindparam(f"b_{c}") for c in _STORY_COLUMNS})
    )
    _write_story_rows(
        conn, statement, names, rows, {f"b_{c}": stories.c[c].type for c in _STORY_COLUMNS}
    )


def _merged(row: Any, added: Sequence[Any]) -> tuple[Any, ...]:
    """A stored story's columns (`_STORY_COLUMNS`) with those `_aggregate` computed for its
    new members merged in (JSON lists as tuples, as `_aggregate` gives them)."""
    representative, first_seen, last_seen, count, actors, topics, terms = added
    earlier = first_seen < row.first_seen_at or row.representative_item_id is None
    return (
        representative if earlier else row.representative_item_id,
        min(row.first_seen_at, first_seen),
        max(row.last_seen_at, last_seen),
        row.item_count + count,
        tuple(union_sorted(row.actors or (), actors)),
        tuple(union_sorted(row.topics or (), topics)),
        tuple(union_sorted(row.terms or (), terms)),
    )


# --- listing ------------------------------------------------------------------------------


def list_stories(conn: Connection, since: datetime, limit: int = 50) -> list[StoryView]:
    """Stories with coverage since `since`, most recently updated first, with their members."""
    query = (
        select(stories)
        .where(stories.c.last_seen_at >= since)
        .order_by(stories.c.last_seen_at.desc(), stories.c.id.desc())
        .limit(limit)
    )
    rows = list(conn.execute(query))
    members = _members(conn, [r.id for r in rows])
    return [_view(r, members.get(r.id, [])) for r in rows]


def get_story(conn: Connection, story_id: int) -> StoryView | None:
    """One story with its members, or None when there is no such story."""
    row = conn.execute(select(stories).where(stories.c.id == story_id)).first()
    if row is None:
        return None
    return _view(row, _members(conn, [story_id]).get(story_id, []))


def _members(conn: Connection, story_ids: Sequence[int]) -> dict[int, list[StoryMember]]:
    out: dict[int, list[StoryMember]] = defaultdict(list)
    feed_name = func.coalesce(feeds.c.name, feeds.c.title, feeds.c.url)
    for chunk in _chunks(story_ids):
        query = (
            select(
                items.c.id,
                item_stories.c.story_id,
                items.c.url,
                items.c.title,
                items.c.published_at,
                items.c.first_seen_at,
                items.c.duplicate_of,
                feed_name.label("feed"),
            )
            .select_from(_PLACED)
            .join(feeds, feeds.c.id == items.c.feed_id)
            .where(item_stories.c.story_id.in_(chunk))
        )
        for r in conn.execute(query):
            seen = _appeared(r.published_at, r.first_seen_at)
            out[r.story_id].append(
                StoryMember(
                    r.id,
                    r.url,
                    r.title,
                    r.feed,
                    r.published_at,
                    r.first_seen_at,
                    seen,
                    r.duplicate_of,
                )
            )
    for members in out.values():
        members.sort(key=lambda m: (m.appeared_at, m.item_id))
    return out


def _view(row: Any, members: Sequence[StoryMember]) -> StoryView:
    return StoryView(
        id=row.id,
        first_seen_at=row.first_seen_at,
        last_seen_at=row.last_seen_at,
        item_count=row.item_count,
        representative_item_id=row.representative_item_id,
        actors=tuple(row.actors or ()),
        topics=tuple(row.topics or ()),
        terms=tuple(row.terms or ()),
        members=tuple(members),
    )
