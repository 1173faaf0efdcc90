"""Story assignment through the real database path (SQLite and PostgreSQL)."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, delete, func, select, update
from sqlalchemy import insert as sa_insert

from monitor.match import match_record
from monitor.settings import StoriesSettings
from monitor.store import Storage, match_row
from monitor.store.engine import make_engine
from monitor.store.items import insert_items, insert_matches
from monitor.store.migrate import upgrade
from monitor.store.schema import feeds, item_stories, items, matches, stories
from monitor.store.stories import (
    BatchStories,
    Pending,
    StoryIndex,
    _read_pending,
    assign_pending,
    get_story,
    known_story,
    list_stories,
    write_matched_stories,
)
from monitor.types import Hit, Item, MatchResult

T0 = datetime(2025, 6, 3, 9, 0, tzinfo=UTC)
SETTINGS = StoriesSettings()

TALKS_A = (
    "Lavrov: Moscow ready for third round of Istanbul talks with Kyiv",
    "Russian Foreign Minister Sergei Lavrov said Moscow is ready to send its delegation to "
    "Istanbul for a third round of direct talks with Ukraine, proposing a memorandum on a "
    "ceasefire and an exchange of wounded prisoners.",
)
TALKS_B = (
    "Russia ready for third Istanbul round, Lavrov says, proposes ceasefire memorandum",
    "Sergei Lavrov told reporters the Russian delegation could travel to Istanbul for a third "
    "round of direct talks with Ukraine and would table a ceasefire memorandum and a wounded "
    "prisoners exchange.",
)
WEATHER = (
    "Heatwave grips southern Spain as temperatures pass 44C",
    "Forecasters issued red alerts across Andalusia on Tuesday as a heatwave pushed "
    "thermometers in Seville and Cordoba above 44 degrees, with water restrictions ordered "
    "in several towns.",
)
LAVROV_LATER = (
    "Lavrov accuses European capitals of arming Kyiv to sabotage diplomacy",
    "In a television interview Sergei Lavrov accused European governments of shipping "
    "long-range missiles to Ukraine to undermine diplomacy, and warned NATO against "
    "deploying troops near Russian borders.",
)


def content_hash(title: str, summary: str) -> str:
    return hashlib.sha256(f"{title.casefold()}\n{summary.casefold()}".encode()).hexdigest()


def make_item(
    identity: str,
    text_: tuple[str, str],
    at: datetime,
    url: str | None = None,
    *,
    seen: datetime | None = None,
) -> Item:
    title, summary = text_
    return Item(
        identity=identity,
        guid=identity,
        url=url or f"https://example.org/{identity}",
        title=title,
        summary=summary,
        content="",
        author=None,
        published_at=at,
        updated_at=None,
        first_seen_at=seen or at + timedelta(minutes=5),
        lang="en",
        content_hash=content_hash(title, summary),
    )


def add_feed(conn: Connection, name: str) -> int:
    row = conn.execute(
        sa_insert(feeds)
        .values(
            url=f"https://{name.lower()}.example/feed",
            name=name,
            tags=[],
            enabled=True,
            interval_s=900,
            error_count=0,
            created_at=T0,
        )
        .returning(feeds.c.id)
    )
    return int(row.scalar_one())


@dataclass(frozen=True)
class Placed:
    """Where one item ended up, read back from the database."""

    item_id: int
    story_id: int
    duplicate_of: int | None
    new_story: bool


def insert_batch(
    engine: Engine, feed: str, batch: Sequence[Item], actors: tuple[str, ...] = ()
) -> list[int]:
    """What the pipeline does for one feed: insert the items (and a match naming `actors`)."""
    with engine.begin() as conn:
        feed_id = conn.execute(select(feeds.c.id).where(feeds.c.name == feed)).scalar()
        if feed_id is None:
            feed_id = add_feed(conn, feed)
        ids = insert_items(conn, feed_id, batch)
        if actors:
            conn.execute(
                sa_insert(matches),
                [
                    {
                        "item_id": ids[i.identity],
                        "score": 1.0,
                        "topics": ["talks"],
                        "actors": list(actors),
                        "evidence": {"hits": [{"kind": "topic", "phrase": "Istanbul Talks"}]},
                        "watchlist_version": "v1",
                        "matched_at": T0,
                    }
                    for i in batch
                ],
            )
        return [ids[i.identity] for i in batch]


def placed(engine: Engine, ids: Sequence[int]) -> list[Placed]:
    with engine.connect() as conn:
        rows = {
            r.id: r
            for r in conn.execute(
                select(
                    items.c.id,
                    item_stories.c.story_id,
                    items.c.duplicate_of,
                    item_stories.c.item_id.is_not(None).label("placed"),
                )
                .outerjoin(item_stories, item_stories.c.item_id == items.c.id)
                .where(items.c.id.in_(ids))
            )
        }
        leaders = dict(
            (r.id, r.representative_item_id)
            for r in conn.execute(select(stories.c.id, stories.c.representative_item_id))
        )
    out = []
    for i in ids:
        row = rows[i]
        assert row.placed, f"item {i} has no story"
        story = known_story(i, row.story_id)  # unwritten: minus the item's id
        out.append(Placed(i, story, row.duplicate_of, story < 0 or leaders[story] == i))
    return out


def store(
    engine: Engine,
    feed: str,
    batch: Sequence[Item],
    now: datetime,
    actors: tuple[str, ...] = (),
    index: StoryIndex | None = None,
) -> list[Placed]:
    """Insert one feed's items, then run the end-of-cycle assignment."""
    ids = insert_batch(engine, feed, batch, actors)
    with engine.begin() as conn:
        assert assign_pending(
            conn, index if index is not None else StoryIndex(), SETTINGS, now
        ) == len(batch)
    return placed(engine, ids)


def reopen(engine: Engine) -> Engine:
    """A fresh engine on the same database: nothing survives but what is stored."""
    url = engine.url.render_as_string(hide_password=False)
    engine.dispose()
    return make_engine(url)


def test_same_story_joined_events_apart_duplicate_linked_across_restart(engine: Engine) -> None:
    [a1] = store(engine, "Wire", [make_item("a1", TALKS_A, T0)], T0, actors=("lavrov",))
    assert a1.new_story and a1.duplicate_of is None

    b1, b2 = store(
        engine,
        "Daily",
        [
            make_item("b1", TALKS_B, T0 + timedelta(hours=1)),
            make_item("b2", WEATHER, T0 + timedelta(hours=1)),
        ],
        T0 + timedelta(hours=2),
        actors=("ukraine",),
    )
    assert b1.story_id == a1.story_id and not b1.new_story
    assert b2.new_story and b2.story_id != a1.story_id

    engine = reopen(engine)
    try:
        c1, c2 = store(
            engine,
            "Mirror",
            [
                make_item("c1", TALKS_B, T0 + timedelta(hours=3), url="https://mirror.example/x"),
                make_item("c2", LAVROV_LATER, T0 + timedelta(hours=27)),
            ],
            T0 + timedelta(hours=28),
        )
        assert c1.duplicate_of == b1.item_id and c1.story_id == a1.story_id
        assert c2.new_story, "a later Lavrov statement on another subject is another story"

        with engine.connect() as conn:
            story = get_story(conn, a1.story_id)
            assert story is not None
            assert [m.item_id for m in story.members] == [a1.item_id, b1.item_id, c1.item_id]
            assert story.sources == ("Wire", "Daily", "Mirror")
            assert story.item_count == 3 and story.representative_item_id == a1.item_id
            assert story.first_seen_at == T0 and story.last_seen_at == T0 + timedelta(hours=3)
            assert story.actors == ("lavrov", "ukraine")
            stored = conn.execute(
                select(item_stories.c.story_id, items.c.duplicate_of)
                .join(item_stories, item_stories.c.item_id == items.c.id)
                .where(items.c.id == c1.item_id)
            ).one()
            assert tuple(stored) == (a1.story_id, b1.item_id)
            # Written stories only: c2, alone without a match, has its story unwritten.
            listed = list_stories(conn, T0 + timedelta(hours=2), limit=10)
            assert [s.id for s in listed] == [a1.story_id] and c2.story_id == -c2.item_id
            assert get_story(conn, 10**9) is None
    finally:
        engine.dispose()


def test_window_keeps_copies_days_apart_in_separate_stories(engine: Engine) -> None:
    [first] = store(engine, "Wire", [make_item("w1", TALKS_A, T0)], T0)
    later = T0 + timedelta(hours=80)
    [second] = store(engine, "Daily", [make_item("w2", TALKS_B, later)], later)
    assert second.new_story and second.story_id != first.story_id


def test_batch_items_cluster_with_each_other(engine: Engine) -> None:
    batch = [
        make_item("x2", TALKS_B, T0 + timedelta(minutes=30)),
        make_item("x1", TALKS_A, T0),
        make_item("x3", WEATHER, T0),
    ]
    b, a, w = store(engine, "Wire", batch, T0 + timedelta(hours=1))
    assert a.new_story and b.story_id == a.story_id
    assert w.new_story and w.story_id == -w.item_id, "alone without a match: unwritten"
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(stories)).scalar() == 1


def pending_count(engine: Engine) -> int:
    with engine.connect() as conn:
        placed = select(item_stories.c.item_id).where(item_stories.c.item_id == items.c.id)
        query = select(func.count()).select_from(items).where(~placed.exists())
        return int(conn.execute(query).scalar_one())


def test_nothing_pending_does_nothing(engine: Engine) -> None:
    with engine.begin() as conn:
        assert assign_pending(conn, StoryIndex(), SETTINGS, T0) == 0


def test_second_call_places_nothing_and_terms_come_from_matches(engine: Engine) -> None:
    index = StoryIndex()
    [a] = store(engine, "Wire", [make_item("s1", TALKS_A, T0)], T0, ("lavrov",), index)
    with engine.begin() as conn:
        assert assign_pending(conn, index, SETTINGS, T0 + timedelta(minutes=1)) == 0
    with engine.connect() as conn:
        story = get_story(conn, a.story_id)
        assert story is not None and story.item_count == 1
        assert story.actors == ("lavrov",) and story.terms == ("istanbul talks",)


def test_items_left_by_a_crash_are_caught_up_next_call(engine: Engine) -> None:
    index = StoryIndex()
    # A cycle stored its items, then died before the end-of-cycle assignment.
    [lost] = insert_batch(engine, "Wire", [make_item("c1", TALKS_A, T0)])
    later = T0 + timedelta(hours=1)
    [fresh, hot] = insert_batch(
        engine, "Daily", [make_item("c2", TALKS_B, later), make_item("c3", WEATHER, later)]
    )
    assert pending_count(engine) == 3
    with engine.begin() as conn:
        assert assign_pending(conn, index, SETTINGS, later) == 3
    a, b, w = placed(engine, [lost, fresh, hot])
    assert a.new_story and b.story_id == a.story_id and not b.new_story
    assert w.new_story and w.story_id != a.story_id
    assert pending_count(engine) == 0


def test_rolled_back_assignment_is_redone_and_leaves_no_phantom(engine: Engine) -> None:
    index = StoryIndex()
    [weather] = store(engine, "Wire", [make_item("k0", WEATHER, T0)], T0, index=index)
    [talks] = insert_batch(engine, "Lost", [make_item("k1", TALKS_A, T0)])
    with pytest.raises(BoomError), engine.begin() as conn:
        assert assign_pending(conn, index, SETTINGS, T0) == 1
        assert talks in index.window
        raise BoomError
    assert pending_count(engine) == 1
    later = T0 + timedelta(hours=1)
    [reword] = insert_batch(engine, "Daily", [make_item("k2", TALKS_B, later)])
    with engine.begin() as conn:
        assert assign_pending(conn, index, SETTINGS, later) == 2
    [b] = placed(engine, [reword])
    # The rolled-back placement is redone in the same batch: k1 leads, k2 joins it.
    [a] = placed(engine, [talks])
    assert a.new_story and b.story_id == a.story_id
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(stories)).scalar() == 1
        story = get_story(conn, a.story_id)
        assert story is not None and story.item_count == 2
    assert weather.item_id in index.window and index.window.get(talks) is not None


def test_fresh_storage_rebuilds_the_index_after_a_restart(engine: Engine) -> None:
    [a] = store(engine, "Wire", [make_item("r1", TALKS_A, T0)], T0)
    engine = reopen(engine)
    try:
        storage = Storage(engine, SETTINGS)
        [copy, reword] = insert_batch(
            engine,
            "Mirror",
            [
                make_item("r2", TALKS_A, T0 + timedelta(hours=1), url="https://example.org/r1"),
                make_item("r3", TALKS_B, T0 + timedelta(hours=2)),
            ],
        )
        assert storage.assign_pending_stories(T0 + timedelta(hours=2)) == 2
        assert len(storage.story_index) == 3
        assert a.story_id == -a.item_id, "alone without a match: its story unwritten"
        [a] = placed(engine, [a.item_id])  # written now that others joined it
        c, r = placed(engine, [copy, reword])
        assert c.story_id == a.story_id > 0 and c.duplicate_of == a.item_id
        assert r.story_id == a.story_id and r.duplicate_of is None
        assert storage.assign_pending_stories(T0 + timedelta(hours=3)) == 0
    finally:
        engine.dispose()


def test_a_rebuilt_index_takes_shingles_from_the_text_of_items_without_stored_hashes(
    engine: Engine,
) -> None:
    """Items placed before their hashes were kept are read back by their title and summary
    (only those: the window's load reads no text otherwise) and can still be joined."""
    [a] = store(engine, "Wire", [make_item("h1", TALKS_A, T0)], T0)
    with engine.begin() as conn:
        conn.execute(update(items).where(items.c.id == a.item_id).values(story_hashes=None))
    engine = reopen(engine)
    try:
        storage = Storage(engine, SETTINGS)
        [reword] = insert_batch(
            engine, "Mirror", [make_item("h2", TALKS_B, T0 + timedelta(hours=1))]
        )
        assert storage.assign_pending_stories(T0 + timedelta(hours=1)) == 1
        [r] = placed(engine, [reword])
        [a] = placed(engine, [a.item_id])
        assert r.story_id == a.story_id > 0 and r.duplicate_of is None
    finally:
        engine.dispose()


def test_preparing_a_cycle_places_leftovers_and_loads_the_window(engine: Engine) -> None:
    store(engine, "Wire", [make_item("p1", TALKS_A, T0)], T0)
    engine = reopen(engine)
    try:
        storage = Storage(engine, SETTINGS)
        assert storage.prepare_stories(T0 + timedelta(hours=1)) == 0
        assert len(storage.story_index) == 1, "the window is loaded with nothing pending"
        [left] = insert_batch(engine, "Mirror", [make_item("p2", TALKS_B, T0 + timedelta(hours=1))])
        assert storage.prepare_stories(T0 + timedelta(hours=2)) == 1
        assert placed(engine, [left])[0].story_id is not None
    finally:
        engine.dispose()


def test_orphans_older_than_the_window_are_left_alone(engine: Engine) -> None:
    [old] = insert_batch(engine, "Wire", [make_item("o0", TALKS_A, T0)])
    later = T0 + timedelta(hours=100)
    [b] = store(engine, "Daily", [make_item("o1", TALKS_B, later)], later)
    assert b.new_story
    with engine.connect() as conn:
        left = conn.execute(select(item_stories).where(item_stories.c.item_id == old)).first()
    assert left is None


class BoomError(Exception):
    pass


def test_kept_index_sees_another_writer_and_a_story_reset(engine: Engine) -> None:
    index = StoryIndex()
    [a] = store(engine, "Wire", [make_item("w1", TALKS_A, T0)], T0, index=index)
    later = T0 + timedelta(hours=1)
    other = StoryIndex()
    [b] = store(engine, "Daily", [make_item("w2", TALKS_B, later)], later, index=other)
    [a] = placed(engine, [a.item_id])
    assert b.story_id == a.story_id > 0 and len(other) == 2
    [c] = store(
        engine,
        "Mirror",
        [make_item("w3", TALKS_B, later, url="https://m.example/w3")],
        later,
        index=index,
    )
    assert c.story_id == a.story_id and c.duplicate_of == b.item_id
    assert b.item_id in index.window
    # An operator clears the stories of some items: they are placed again.
    with engine.begin() as conn:
        conn.execute(delete(item_stories).where(item_stories.c.item_id == c.item_id))
    with engine.begin() as conn:
        assert assign_pending(conn, index, SETTINGS, later) == 1


def test_kept_index_forgets_items_older_than_two_windows(engine: Engine) -> None:
    index = StoryIndex()
    store(engine, "Wire", [make_item("o1", TALKS_A, T0)], T0, index=index)
    later = T0 + timedelta(hours=150)
    [w] = store(engine, "Wire", [make_item("o2", WEATHER, later)], later, index=index)
    assert len(index) == 1 and w.item_id in index.window


def _result(actors: tuple[str, ...], topic_phrases: tuple[str, ...]) -> MatchResult:
    hits = tuple(
        Hit("topic", "talks", phrase, "title", 0, len(phrase), phrase) for phrase in topic_phrases
    ) + tuple(Hit("actor", a, a.title(), "summary", 0, len(a), a.title()) for a in actors)
    return MatchResult(
        matched=True,
        score=1.0,
        topics=("talks",),
        actors=actors,
        hits=hits,
        topic_scores=(),
        snippet="",
        nearest_seed=None,
        seed_similarity=0.0,
        watchlist_version="v1",
    )


def test_items_saved_through_storage_are_placed_from_hints_equal_to_a_read_back(
    engine: Engine,
) -> None:
    storage = Storage(engine, SETTINGS)
    with engine.begin() as conn:
        feed_id = add_feed(conn, "Wire")
    later_than_seen = make_item("h1", TALKS_A, T0 + timedelta(hours=2), seen=T0)
    no_url = replace(make_item("h2", TALKS_B, T0), url=None)
    unmatched = make_item("h3", WEATHER, T0)
    batch = [later_than_seen, no_url, unmatched]
    results = [match_record(_result(("lavrov",), ("Istanbul Talks", "istanbul talks"))), None, None]
    storage.save_items(feed_id, batch, results, T0)
    hints = dict(storage.story_index.hints)
    assert len(hints) == 3
    with engine.connect() as conn:
        read_back = {p.item_id: p for p in _read_pending(conn, sorted(hints))}
    assert read_back == hints  # every field, the packed hashes too
    assert hints[min(hints)].appeared_at == T0 and hints[min(hints)].terms == ("istanbul talks",)
    # Placing from the hints leaves none behind; the copy joins the story of the original.
    assert storage.assign_pending_stories(T0 + timedelta(hours=1)) == 3
    assert storage.story_index.hints == {}
    a, b, _ = placed(engine, sorted(hints))
    assert a.story_id == b.story_id


def test_a_hint_for_an_item_whose_transaction_rolled_back_is_ignored(engine: Engine) -> None:
    storage = Storage(engine, SETTINGS)
    storage.story_index.hint([Pending.from_item(999_999, make_item("x", TALKS_A, T0), None)])
    [kept] = insert_batch(engine, "Wire", [make_item("y", TALKS_B, T0)])
    assert storage.assign_pending_stories(T0 + timedelta(hours=1)) == 1
    [p] = placed(engine, [kept])
    assert p.new_story


def test_storage_takes_the_stop_like_limit_from_settings(engine: Engine) -> None:
    storage = Storage(engine, StoriesSettings(stop_like=120))
    assert storage.story_index.window.stop_like == 120
    assert Storage(engine, None).story_index.window.stop_like == SETTINGS.stop_like


@pytest.mark.parametrize("from_hints", [True, False], ids=["hints", "read-back"])
def test_a_story_of_one_item_lists_its_actors_and_terms_sorted_and_once(
    engine: Engine, from_hints: bool
) -> None:
    storage = Storage(engine, SETTINGS)
    with engine.begin() as conn:
        feed_id = add_feed(conn, "Wire")
    result = _result(("zelensky", "lavrov", "zelensky"), ("Truce", "istanbul talks", "truce"))
    storage.save_items(feed_id, [make_item("s1", TALKS_A, T0)], [match_record(result)], T0)
    if not from_hints:
        storage.story_index.hints.clear()
    assert storage.assign_pending_stories(T0 + timedelta(hours=1)) == 1
    with engine.connect() as conn:
        row = conn.execute(select(stories)).one()
    assert row.item_count == 1
    assert row.actors == ["lavrov", "zelensky"]
    assert row.terms == ["istanbul talks", "truce"]


def _filler(rng: random.Random, n: int, at: datetime) -> Item:
    """An item of made-up words that nothing else shares: a story of its own."""
    words = " ".join(f"{rng.choice('bcdfgklmnprstvz')}{rng.randrange(10**6)}q" for _ in range(14))
    return make_item(f"f{n}", (f"Bulletin {words[:40]}", words), at)


@pytest.mark.parametrize("one_connection", [False, True], ids=["reader-beside", "one-connection"])
def test_items_moved_out_of_their_own_stories_leave_none_empty(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, one_connection: bool
) -> None:
    """Every new item is first written in a story of its own; those that join a stored
    story, an earlier item's new story or an exact duplicate's are moved, and the stories
    they leave are deleted. Whether the duplicates are read beside the writes (a second
    connection) or after them, the stories are the same and each holds exactly its members."""
    if one_connection:
        monkeypatch.setattr("monitor.store.stories.reads_beside_a_writer", lambda _: False)
    rng = random.Random(7)
    [a] = store(engine, "Wire", [make_item("a", TALKS_A, T0)], T0, actors=("lavrov",))
    at = T0 + timedelta(hours=1)
    retitled = ("Andalusia on red alert: Seville passes 44C in heatwave", WEATHER[1])
    batch = [
        _filler(rng, 0, at),
        make_item("b1", TALKS_B, at),
        make_item("w1", WEATHER, at, url="https://daily.example/heat"),
        _filler(rng, 1, at),
        make_item("b2", TALKS_B, at + timedelta(minutes=10), url="https://mirror.example/b2"),
        make_item("w2", retitled, at + timedelta(minutes=20), url="https://daily.example/heat"),
        make_item("l1", LAVROV_LATER, T0 + timedelta(hours=27)),  # another subject, later
        make_item("b3", TALKS_B, at + timedelta(minutes=30), url="https://copy.example/b3"),
        *(_filler(rng, n, at) for n in range(2, 12)),
    ]
    ids = insert_batch(engine, "Daily", batch, actors=("ukraine",))
    with engine.begin() as conn:
        assert assign_pending(conn, StoryIndex(), SETTINGS, T0 + timedelta(hours=28)) == len(batch)
    got = {i.identity: p for i, p in zip(batch, placed(engine, ids), strict=True)}

    talks = {got[k].story_id for k in ("b1", "b2", "b3")}
    assert talks == {a.story_id}
    assert (got["b2"].duplicate_of, got["b3"].duplicate_of) == (got["b1"].item_id,) * 2
    assert got["w2"].story_id == got["w1"].story_id and got["w1"].new_story
    assert got["w2"].duplicate_of == got["w1"].item_id  # the same URL, re-titled
    alone = [got[k] for k in got if k.startswith("f") or k == "l1"]
    assert all(p.new_story for p in alone)
    assert len({p.story_id for p in alone}) == len(alone) == 13
    with engine.connect() as conn:
        members = dict(
            conn.execute(
                select(item_stories.c.story_id, func.count()).group_by(item_stories.c.story_id)
            ).all()
        )
        counts = dict(conn.execute(select(stories.c.id, stories.c.item_count)).all())
        assert counts == members, "a story without members, or a wrong count"
        assert counts[a.story_id] == 4 and counts[got["w1"].story_id] == 2
        story = get_story(conn, a.story_id)
        assert story is not None and story.actors == ("lavrov", "ukraine")
        assert story.last_seen_at == at + timedelta(minutes=30)


def _lone_items() -> list[Item]:
    """Items that each start a story of their own: matched and not, published before they
    were seen, after (a future date: the first-seen time counts) and never."""
    rng = random.Random(11)
    at = T0 + timedelta(hours=1)
    return [
        make_item("m", TALKS_A, at),
        _filler(rng, 0, at),
        make_item("late", WEATHER, at + timedelta(hours=3), seen=at),
        replace(_filler(rng, 1, at), published_at=None),
        replace(_filler(rng, 2, at), identity="later", published_at=at + timedelta(hours=2)),
    ]


def _stored_placement(
    engine: Engine,
) -> tuple[dict[str, tuple[object, ...]], dict[str, bool | None]]:
    """Each written story as SQLite holds it (the stored text, not the Core's values), by
    the identity of its representative; and each item's link, by identity: True when it
    names that item's own written story, None when it names none."""
    written = (
        "SELECT i.identity, l.item_id = s.representative_item_id, s.first_seen_at,"
        " s.last_seen_at, s.item_count, s.actors, s.topics, s.terms FROM stories s"
        " JOIN items i ON i.id = s.representative_item_id"
        " JOIN item_stories l ON l.story_id = s.id"
    )
    linked = (
        "SELECT i.identity, CASE WHEN l.story_id IS NULL THEN NULL"
        " ELSE s.representative_item_id = i.id END FROM item_stories l"
        " JOIN items i ON i.id = l.item_id LEFT JOIN stories s ON s.id = l.story_id"
    )
    with engine.connect() as conn:
        rows = {str(r[0]): tuple(r[1:]) for r in conn.exec_driver_sql(written)}
        links = {
            str(r[0]): None if r[1] is None else bool(r[1]) for r in conn.exec_driver_sql(linked)
        }
    return rows, links


def test_links_sent_as_json_are_those_written_row_by_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite the links naming no story go by one statement, their item ids as a JSON
    array (`_link_items`); row for row, in the form stored, the stories and links are
    those a row-by-row executemany writes (PostgreSQL's way). Only the matched item's story
    of one is written."""
    got = {}
    for way in ("json", "rows"):
        engine = make_engine(f"sqlite:///{tmp_path / way}.db")
        upgrade(engine)
        batch = _lone_items()
        insert_batch(engine, "Wire", batch[:1], actors=("lavrov", "ukraine"))
        insert_batch(engine, "Daily", batch[1:])
        as_json = way == "json"
        monkeypatch.setattr("monitor.store.stories._alone_as_json", lambda _, j=as_json: j)
        with engine.begin() as conn:
            assert assign_pending(conn, StoryIndex(), SETTINGS, T0 + timedelta(hours=6)) == 5
        got[way] = _stored_placement(engine)
        engine.dispose()
    assert got["json"] == got["rows"]
    stories_by_item, links = got["json"]
    assert list(stories_by_item) == ["m"]
    assert stories_by_item["m"][1:3] == ("2025-06-03 10:00:00.000000",) * 2
    assert stories_by_item["m"][4] == '["lavrov", "ukraine"]'
    assert links == {"m": True, "f0": None, "late": None, "f1": None, "later": None}


def test_an_unwritten_story_is_written_when_an_item_joins_it(engine: Engine) -> None:
    """An item placed alone without a match has a link naming no story; when a later item
    joins it, their story is written (the first item its representative, the joiner's
    actors in it) and the first item linked to it, in the kept index too. If that
    transaction rolls back, the index goes back to the story unwritten."""
    index = StoryIndex()
    [a] = store(engine, "Wire", [make_item("u1", TALKS_A, T0)], T0, index=index)
    assert a.story_id == -a.item_id and a.new_story
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(stories)).scalar_one() == 0
        link = select(item_stories.c.story_id).where(item_stories.c.item_id == a.item_id)
        assert conn.execute(link).one() == (None,)
    later = T0 + timedelta(hours=1)
    [lost] = insert_batch(engine, "Lost", [make_item("u2", TALKS_B, later)], actors=("lavrov",))
    with pytest.raises(BoomError), engine.begin() as conn:
        assign_pending(conn, index, SETTINGS, later)
        raise BoomError
    [reword] = insert_batch(engine, "Daily", [make_item("u3", TALKS_B, later)], ("kyiv",))
    with engine.begin() as conn:  # the rolled-back placement is redone beside the new one
        assert assign_pending(conn, index, SETTINGS, later) == 2
    [a], [lost_now], [b] = (placed(engine, [i]) for i in (a.item_id, lost, reword))
    assert a.story_id == b.story_id == lost_now.story_id > 0 and a.new_story
    with engine.connect() as conn:
        story = get_story(conn, b.story_id)
        assert story is not None and story.item_count == 3
        assert [m.item_id for m in story.members] == [a.item_id, lost, b.item_id]
        assert story.representative_item_id == a.item_id and story.actors == ("kyiv", "lavrov")
        assert conn.execute(select(func.count()).select_from(stories)).scalar_one() == 1
    index.settle()
    entry = index.window.get(a.item_id)
    assert entry is not None and entry.story_id == a.story_id


def test_a_kept_index_behind_another_writer_joins_the_story_it_wrote(engine: Engine) -> None:
    """An index that still holds an item's story as unwritten, after another writer wrote
    it (a second item joined), adds a third item to that story instead of writing another."""
    index = StoryIndex()
    [a] = store(engine, "Wire", [make_item("s1", TALKS_A, T0)], T0, index=index)
    later = T0 + timedelta(hours=1)
    [b] = store(engine, "Daily", [make_item("s2", TALKS_B, later)], later, index=StoryIndex())
    reworded = (TALKS_A[0].replace("third round", "next round"), TALKS_A[1])
    [c] = store(engine, "Mirror", [make_item("s3", reworded, later)], later, index=index)
    [a] = placed(engine, [a.item_id])
    assert a.story_id == b.story_id == c.story_id > 0 and c.duplicate_of is None
    with engine.connect() as conn:
        assert conn.execute(select(stories.c.id, stories.c.item_count)).all() == [(a.story_id, 3)]


def test_an_outlet_that_did_not_match_is_named_first_in_the_digest(
    engine: Engine, tmp_path: Path
) -> None:
    """Through the pipeline's store path and a real delivery: an outlet's item that matched
    nothing stays alone with its story unwritten; when another outlet's matched rewrite
    joins it a cycle later, the digest has one entry naming both, the first outlet first;
    and a third outlet's rewrite adding nothing new does not alert again."""
    from alerts.service import deliver
    from monitor.settings import FileChannel, MonitorSettings
    from monitor.store import digests as digest_rows

    out = FileChannel(kind="file", schedule="immediate", directory=str(tmp_path / "out"))
    settings = MonitorSettings(channels={"files": out})
    storage = Storage(engine, SETTINGS)
    with engine.begin() as conn:
        wire, daily, radio = (add_feed(conn, name) for name in ("Wire", "Daily", "Radio"))
    storage.save_items(wire, [make_item("e1", TALKS_A, T0)], [None], T0)
    assert storage.assign_pending_stories(T0) == 1
    later = T0 + timedelta(hours=1)
    lavrov = match_record(_result(("lavrov",), ("Istanbul Talks",)))
    storage.save_items(daily, [make_item("e2", TALKS_B, later)], [lavrov], later)
    assert storage.assign_pending_stories(later) == 1
    (report,) = deliver(engine, settings, now=later, trigger="immediate", env={})
    with engine.connect() as conn:
        record = digest_rows.get_digest(conn, report.digest_id or 0)
    assert record is not None
    (entry,) = record.digest().entries
    assert [s.feed_name for s in entry.sources] == ["Wire", "Daily"]
    reworded = (TALKS_A[0].replace("third round", "next round"), TALKS_A[1])
    latest = later + timedelta(hours=1)
    storage.save_items(radio, [make_item("e3", reworded, latest)], [lavrov], latest)
    assert storage.assign_pending_stories(latest) == 1
    (quiet,) = deliver(engine, settings, now=latest, trigger="immediate", env={})
    assert quiet.status == "skipped"


def test_a_matched_item_joining_an_unmatched_one_in_its_batch_leaves_no_story_behind(
    engine: Engine,
) -> None:
    """In one batch, an unmatched item leads and a matched one joins it: their story is
    written with the joiner's actors, and the matched item's own story of one, written as it
    was placed, is deleted."""
    [lead] = insert_batch(engine, "Wire", [make_item("q1", TALKS_A, T0)])
    later = T0 + timedelta(minutes=30)
    [joiner] = insert_batch(engine, "Daily", [make_item("q2", TALKS_B, later)], ("lavrov",))
    with engine.begin() as conn:
        assert assign_pending(conn, StoryIndex(), SETTINGS, later) == 2
    a, b = placed(engine, [lead, joiner])
    assert a.story_id == b.story_id > 0 and a.new_story and not b.new_story
    with engine.connect() as conn:
        assert conn.execute(select(stories.c.id, stories.c.item_count)).all() == [(a.story_id, 2)]
        story = get_story(conn, a.story_id)
        assert story is not None and story.actors == ("lavrov",)
        assert story.representative_item_id == lead


def test_a_lone_item_that_gains_a_match_gets_its_story_written(engine: Engine) -> None:
    """`monitor rematch` gives an item placed alone without a match its first match: its
    story of one is written from the item and that match, and the item linked to it; an item
    already in a written story, and one not placed yet, are left as they are. A kept index
    that still holds the story as unwritten adds a later rewrite to the written story."""
    index = StoryIndex()
    [lone] = store(engine, "Wire", [make_item("g1", TALKS_A, T0)], T0, index=index)
    [heat] = store(engine, "Meteo", [make_item("g2", WEATHER, T0)], T0, ("aemet",), StoryIndex())
    [waiting] = insert_batch(engine, "Late", [make_item("g3", LAVROV_LATER, T0)])
    lavrov = match_record(_result(("lavrov",), ("Istanbul Talks",)))
    with engine.begin() as conn:
        insert_matches(conn, [match_row(i, lavrov, T0) for i in (lone.item_id, waiting)])
        assert write_matched_stories(conn, [lone.item_id, heat.item_id, waiting]) == 1
    [now_lone], [now_heat] = placed(engine, [lone.item_id]), placed(engine, [heat.item_id])
    assert now_lone.story_id > 0 and now_lone.new_story and now_heat == heat
    with engine.connect() as conn:
        story = get_story(conn, now_lone.story_id)
        assert story is not None and story.item_count == 1
        assert story.actors == ("lavrov",) and story.terms == ("istanbul talks",)
        unplaced = select(item_stories.c.item_id).where(item_stories.c.item_id == waiting)
        assert conn.execute(unplaced).all() == []
        assert write_matched_stories(conn, [lone.item_id]) == 0  # written once
    later = T0 + timedelta(hours=1)
    [rewrite] = insert_batch(engine, "Daily", [make_item("g4", TALKS_B, later)])
    with engine.begin() as conn:
        assert assign_pending(conn, index, SETTINGS, later) == 2  # with the waiting one
    [joined] = placed(engine, [rewrite])
    assert joined.story_id == now_lone.story_id
    with engine.connect() as conn:
        story = get_story(conn, now_lone.story_id)
        assert story is not None and story.representative_item_id == lone.item_id
        members = [m.item_id for m in story.members]
        assert {lone.item_id, rewrite} <= set(members) and story.item_count == len(members)
        assert conn.execute(select(func.count()).select_from(stories)).scalar_one() == 2


def test_rematch_writes_the_story_of_a_lone_item_it_matches(engine: Engine) -> None:
    """`monitor rematch` applying an added match to an item placed alone writes its story."""
    from monitor.cli.matches import _apply
    from monitor.rematch import RematchChange

    [lone] = store(engine, "Wire", [make_item("h1", TALKS_A, T0)], T0)
    added = RematchChange(lone.item_id, None, "added", TALKS_A[0], (), ("talks",), 2.0)
    row = match_row(lone.item_id, match_record(_result(("lavrov",), ("Istanbul Talks",))), T0)
    with engine.begin() as conn:
        _apply(conn, [(added, row)])
    [now] = placed(engine, [lone.item_id])
    assert now.story_id > 0 and now.new_story
    with engine.connect() as conn:
        story = get_story(conn, now.story_id)
        assert story is not None and story.actors == ("lavrov",)


def test_batch_stories_read_an_item_without_entry_as_its_unwritten_story() -> None:
    """Only written stories get entries; any other item of the batch is alone in its
    unwritten story (`known_story` of a NULL link), in the mapping and in a copy of it."""
    own = BatchStories({5: 9})
    copied = BatchStories(own)
    copied[7] = 11
    assert (own[5], own[7], own[8]) == (9, known_story(7, None), -8)
    assert (copied[5], copied[7], copied[8]) == (9, 11, -8)
    assert dict(own) == {5: 9}  # reading a default records nothing
