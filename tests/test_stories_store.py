"""Story assignment through the real database path (SQLite and PostgreSQL)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection, Engine, func, insert, select

from monitor.settings import StoriesSettings
from monitor.store.engine import make_engine
from monitor.store.items import insert_items
from monitor.store.schema import feeds, items, stories
from monitor.store.stories import StoryIndex, assign_stories, get_story, list_stories
from monitor.stories import NewItem, StoryAssignment
from monitor.types import Item

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
        insert(feeds)
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


def store(
    engine: Engine,
    feed: str,
    batch: Sequence[Item],
    now: datetime,
    actors: tuple[str, ...] = (),
    index: StoryIndex | None = None,
) -> list[StoryAssignment]:
    """What the pipeline does for one feed: insert the items, then assign, in one transaction."""
    with engine.begin() as conn:
        feed_id = conn.execute(select(feeds.c.id).where(feeds.c.name == feed)).scalar()
        if feed_id is None:
            feed_id = add_feed(conn, feed)
        ids = insert_items(conn, feed_id, batch)
        new = [NewItem(ids[i.identity], i, actors=actors) for i in batch]
        return assign_stories(conn, new, SETTINGS, now, index)


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
    assert b1.story_id == a1.story_id and not b1.new_story and b1.via_item_id == a1.item_id
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
                select(items.c.story_id, items.c.duplicate_of).where(items.c.id == c1.item_id)
            ).one()
            assert tuple(stored) == (a1.story_id, b1.item_id)
            listed = list_stories(conn, T0 + timedelta(hours=2), limit=10)
            assert [s.id for s in listed] == [c2.story_id, a1.story_id]
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
    assert a.new_story and b.story_id == a.story_id and b.via_item_id == a.item_id
    assert w.new_story and w.story_id != a.story_id
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(stories)).scalar() == 2


def test_empty_batch_does_nothing(engine: Engine) -> None:
    with engine.begin() as conn:
        assert assign_stories(conn, [], SETTINGS, T0) == []


class BoomError(Exception):
    pass


def test_kept_index_matches_restarts_and_forgets_rolled_back_items(engine: Engine) -> None:
    index = StoryIndex()
    [weather] = store(engine, "Wire", [make_item("k0", WEATHER, T0)], T0, index=index)
    with pytest.raises(BoomError), engine.begin() as conn:
        feed_id = add_feed(conn, "Lost")
        ids = insert_items(conn, feed_id, [make_item("k1", TALKS_A, T0)])
        [lost] = assign_stories(
            conn, [NewItem(ids["k1"], make_item("k1", TALKS_A, T0))], SETTINGS, T0, index
        )
        assert lost.new_story and lost.item_id in index.shingles
        raise BoomError
    later = T0 + timedelta(hours=1)
    [b] = store(engine, "Daily", [make_item("k2", TALKS_B, later)], later, index=index)
    assert b.new_story, "the rolled-back item is not a story to join"
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(stories)).scalar() == 2
    # Another writer (a fresh index, as after a restart) sees what the kept index placed …
    other = StoryIndex()
    [c] = store(engine, "Mirror", [make_item("k3", TALKS_A, later)], later, index=other)
    assert c.story_id == b.story_id and c.via_item_id == b.item_id
    assert len(other) == 3
    # … and the kept index catches up with what the other one placed.
    [d] = store(
        engine,
        "Wire",
        [make_item("k4", TALKS_B, later, url="https://e.org/k4b")],
        later,
        index=index,
    )
    assert d.story_id == b.story_id and d.duplicate_of == b.item_id
    assert weather.item_id in index.shingles and c.item_id in index.shingles


def test_kept_index_forgets_items_older_than_two_windows(engine: Engine) -> None:
    index = StoryIndex()
    store(engine, "Wire", [make_item("o1", TALKS_A, T0)], T0, index=index)
    later = T0 + timedelta(hours=150)
    [w] = store(engine, "Wire", [make_item("o2", WEATHER, later)], later, index=index)
    assert len(index) == 1 and w.item_id in index.shingles
