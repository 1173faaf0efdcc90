"""build_digest is pure: filtering, story folding, updates, ranking, grouping, caps."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from alerts.digest import build_digest, story_groups
from alerts.model import DeliveredStory, Digest, FailingFeed, PendingMatch, SourceReport
from monitor.settings import FileChannel

NOW = datetime(2025, 3, 14, 7, 0, tzinfo=UTC)
CFG = FileChannel(kind="file", schedule="immediate")


def pm(match_id: int, **kw: object) -> PendingMatch:
    base = PendingMatch(
        match_id=match_id,
        item_id=100 + match_id,
        score=3.0,
        topics=("negotiations",),
        actors=("putin",),
        terms=("peace talks",),
        snippet="The **peace talks** resumed.",
        matched_at=NOW - timedelta(hours=1),
        title=f"Headline {match_id}",
        url=f"https://news.example.org/{match_id}",
        published_at=None,
        first_seen_at=NOW - timedelta(hours=2, minutes=match_id),
        feed_id=1,
        feed_name=f"Outlet {match_id}",
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def build(pending: list[PendingMatch], cfg: FileChannel = CFG, **kw: object) -> Digest | None:
    return build_digest("files", cfg, pending, [], None, NOW, **kw)  # type: ignore[arg-type]


def test_empty_gives_none_unless_send_empty() -> None:
    assert build([]) is None
    digest = build([], CFG.model_copy(update={"send_empty": True}))
    assert digest is not None and digest.is_empty and digest.header.entry_count == 0


@pytest.mark.parametrize(
    ("topics", "min_score", "match_topics", "score", "shown"),
    [
        ((), 0.0, ("negotiations",), 1.0, True),
        (("sanctions",), 0.0, ("negotiations",), 5.0, False),
        (("sanctions",), 0.0, ("negotiations", "sanctions"), 5.0, True),
        ((), 2.0, ("negotiations",), 1.5, False),
        ((), 2.0, ("negotiations",), 2.0, True),
    ],
)
def test_channel_filter_truth_table(
    topics: tuple[str, ...],
    min_score: float,
    match_topics: tuple[str, ...],
    score: float,
    shown: bool,
) -> None:
    cfg = CFG.model_copy(update={"topics": topics, "min_score": min_score, "send_empty": True})
    digest = build([pm(1, topics=match_topics, score=score)], cfg)
    assert digest is not None
    assert (digest.header.entry_count == 1) is shown
    # shown or not, the match is settled so it never stays pending
    assert digest.match_ids == (1,)


def test_entry_is_listed_under_best_topic_the_channel_carries() -> None:
    cfg = CFG.model_copy(update={"topics": ("sanctions",)})
    digest = build([pm(1, topics=("negotiations", "sanctions"))], cfg)
    assert digest is not None
    assert [s.topic for s in digest.sections] == ["sanctions"]


def test_story_items_fold_into_one_entry_naming_all_sources_and_the_first() -> None:
    members = tuple(
        SourceReport(f"Outlet {i}", f"Headline {i}", None, NOW - timedelta(hours=3, minutes=-i))
        for i in range(1, 8)
    )
    pending = [
        pm(i, story_id=9, story_members=members, first_seen_at=NOW - timedelta(hours=3, minutes=-i))
        for i in (3, 1, 5)
    ]
    digest = build(pending)
    assert digest is not None
    (entry,) = digest.entries
    assert entry.match_id == 1  # the earliest report represents the story
    assert [s.feed_name for s in entry.sources] == [f"Outlet {i}" for i in range(1, 8)]
    assert entry.other_headlines == tuple(f"Headline {i}" for i in range(2, 8))
    assert entry.match_ids == (1, 3, 5)
    assert digest.story_marks[0].story_id == 9
    assert digest.story_marks[0].item_count == 7


def test_exact_duplicates_fold_via_duplicate_of() -> None:
    a = pm(1)
    b = pm(2, duplicate_of=a.item_id, first_seen_at=a.first_seen_at + timedelta(minutes=5))
    digest = build([b, a, pm(3)])
    assert digest is not None
    assert sorted(e.match_ids for e in digest.entries) == [(1, 2), (3,)]


def test_groups_are_transitive() -> None:
    a, b = pm(1, story_id=4), pm(2, story_id=4)
    c = pm(3, duplicate_of=b.item_id)
    assert [sorted(m.match_id for m in g) for g in story_groups([a, b, c, pm(5)])] == [
        [1, 2, 3],
        [5],
    ]


TOLD = DeliveredStory(
    digest_id=1,
    actors=frozenset({"putin"}),
    topics=frozenset({"negotiations"}),
    terms=frozenset({"peace talks"}),
    item_count=2,
)


@pytest.mark.parametrize(
    ("change", "update_on", "is_update"),
    [
        ({}, ("actor", "topic"), False),
        ({"actors": ("putin", "zelensky")}, ("actor", "topic"), True),
        ({"actors": ("putin", "zelensky")}, ("topic",), False),
        ({"topics": ("negotiations", "sanctions")}, ("actor", "topic"), True),
        ({"terms": ("ceasefire",)}, ("actor", "topic"), False),
        ({"terms": ("ceasefire",)}, ("term",), True),
    ],
)
def test_delivered_story_comes_back_only_as_update(
    change: dict[str, object], update_on: tuple[str, ...], is_update: bool
) -> None:
    match = pm(7, story_id=9, delivered=TOLD, **change)
    digest = build([match], update_on=update_on)
    if not is_update:
        assert digest is None
        return
    assert digest is not None
    (entry,) = digest.entries
    assert entry.is_update
    assert entry.new_actors == tuple(a for a in match.actors if a not in TOLD.actors)
    mark = digest.story_marks[0]
    assert set(mark.actors) >= TOLD.actors | set(match.actors)


def test_duplicate_of_an_already_delivered_item_is_not_repeated() -> None:
    assert build([pm(1, duplicate_of=55, duplicate_delivered=True)]) is None


def test_ranking_by_score_then_recency_and_cap_with_more() -> None:
    pending = [
        pm(1, score=2.0, first_seen_at=NOW - timedelta(hours=1)),
        pm(2, score=5.0, first_seen_at=NOW - timedelta(hours=5), topics=("sanctions",)),
        pm(3, score=2.0, first_seen_at=NOW - timedelta(minutes=10)),
        pm(4, score=1.0),
    ]
    digest = build(pending, CFG.model_copy(update={"max_entries": 3}))
    assert digest is not None
    assert [e.match_id for e in digest.entries] == [2, 3, 1]
    assert [s.topic for s in digest.sections] == ["sanctions", "negotiations"]
    assert [b.match_id for b in digest.more] == [4]
    assert digest.header.more_count == 1
    assert digest.header.entry_count == 4
    assert {c.name: c.count for c in digest.header.per_topic} == {"negotiations": 3, "sanctions": 1}


def test_links_other_than_http_are_dropped_and_titles_truncated() -> None:
    digest = build([pm(1, url="javascript:alert(1)", title="x" * 10_000), pm(2, url="data:,hi")])
    assert digest is not None
    assert all(e.link is None for e in digest.entries)
    assert max(len(e.title) for e in digest.entries) <= 300


def test_failing_feeds_and_period_pass_through() -> None:
    failing = [FailingFeed("Broken", "https://b.example/", NOW - timedelta(days=2), 9, "HTTP 500")]
    previous = NOW - timedelta(hours=24)
    digest = build_digest("files", CFG, [pm(1)], failing, previous, NOW)
    assert digest is not None
    assert digest.failing_feeds == tuple(failing)
    assert (digest.period_start, digest.period_end, digest.created_at) == (previous, NOW, NOW)


def test_json_round_trip_is_exact() -> None:
    members = (SourceReport("Outlet 9", "Другой заголовок", None, NOW - timedelta(hours=9)),)
    digest = build([pm(1, story_id=3, story_members=members), pm(2, published_at=NOW)])
    assert digest is not None
    recorded = digest.with_identity(12, "<digest-12.files@localhost>")
    data = recorded.to_json()
    assert data["version"] == 1
    assert Digest.from_json(data) == recorded


def test_unknown_schema_version_is_refused() -> None:
    digest = build([pm(1)])
    assert digest is not None
    data = {**digest.to_json(), "version": 99}
    with pytest.raises(ValueError, match="version"):
        Digest.from_json(data)
