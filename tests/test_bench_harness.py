"""The bench harness itself: deterministic feeds that parse, a server honouring validators."""

from __future__ import annotations

import http.client
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import feedgen  # noqa: E402
import server as bench_server  # noqa: E402

from monitor.normalize import normalize_entries  # noqa: E402
from monitor.parse import parse_feed  # noqa: E402


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    a = feedgen.render(feedgen.make_feed(3, seed=1))
    assert a == feedgen.render(feedgen.make_feed(3, seed=1))
    assert a != feedgen.render(feedgen.make_feed(3, seed=2))


def test_feed_sizes_and_kinds_follow_the_brief() -> None:
    feeds = feedgen.make_feeds(300)
    sizes = [f.n_items for f in feeds]
    assert min(sizes) >= 20 and max(sizes) <= 100
    assert 50 <= sum(sizes) / len(sizes) <= 70
    assert {f.kind for f in feeds} == {"rss", "atom", "json"}


def test_word_counts_and_watched_share() -> None:
    items = [i for f in feedgen.make_feeds(40) for i in feedgen.items_of(f)]
    words = [len(f"{i.title} {i.summary}".split()) for i in items]
    assert min(words) >= 40 and max(words) <= 160
    share = sum(i.watched for i in items) / len(items)
    assert 0.10 <= share <= 0.20


@pytest.mark.parametrize("index", range(6))
def test_every_format_parses_to_all_its_items(index: int) -> None:
    feed = feedgen.make_feed(index)
    parsed = parse_feed(feedgen.render(feed), url=f"http://bench/f/{index}", headers={})
    normalised = normalize_entries(
        parsed, now=datetime(2025, 6, 3, tzinfo=UTC), max_items=500, feed_lang=None
    )
    assert len(normalised.items) == feed.n_items
    assert {i.guid for i in normalised.items} == {i.guid for i in feedgen.items_of(feed)}


def test_new_items_keeps_old_guids_and_adds_k() -> None:
    feed = feedgen.make_feed(5)
    later = feedgen.new_items(feed, 3)
    before = {i.guid for i in feedgen.items_of(feed)}
    after = [i.guid for i in feedgen.items_of(later)]
    assert len(after) == feed.n_items
    assert len(set(after) - before) == 3
    assert set(after[3:]) <= before
    assert later.etag != feed.etag


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    store = bench_server.build_store(20, seed=1, items_scale=0.5)
    yield bench_server.start_server_thread(store)


def _get(port: int, path: str, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path, headers=headers or {})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


def test_server_answers_304_to_its_own_validators(port: int) -> None:
    first = _get(port, "/f/4")
    assert first.status == 200
    etag, modified = first.getheader("ETag"), first.getheader("Last-Modified")
    assert etag and modified
    assert _get(port, "/f/4", {"If-None-Match": etag}).status == 304
    assert _get(port, "/f/4", {"If-Modified-Since": modified}).status == 304
    assert _get(port, "/f/4", {"If-None-Match": '"other"'}).status == 200


def test_server_state_moves_a_tenth_of_feeds(port: int) -> None:
    etags = {i: _get(port, f"/f/{i}").getheader("ETag") for i in range(20)}
    changed = _get(port, "/_state?gen=1&every=10&k=3")
    assert changed.status == 200
    moved = [i for i in range(20) if _get(port, f"/f/{i}").getheader("ETag") != etags[i]]
    assert moved == [7, 17]
    _get(port, "/_state?gen=0")
    assert _get(port, "/f/7").getheader("ETag") == etags[7]


def test_unknown_feed_is_404(port: int) -> None:
    assert _get(port, "/f/999").status == 404


def test_notes_give_each_run_and_what_clustering_adds_round_by_round() -> None:
    import run as bench_run

    def sample(wall: float) -> bench_run.Sample:
        return bench_run.Sample(wall_s=wall, cpu_s=wall, items=100, peak_mb=50.0)

    on = [sample(6.0), sample(7.5), sample(6.6)]
    off = [sample(5.0), sample(5.0), sample(6.0)]
    note = bench_run.clustering_note(on, off)
    assert note.startswith("story clustering adds 32% ")  # medians 6.6 against 5.0
    assert note.endswith("(round by round: 20% / 50% / 10%; their median 20%)")
    cold = bench_run.Row("1. cold", ours=on, reader=[sample(10.0), sample(9.5), sample(11.0)])
    assert (
        "wall s by run: ours 6.00 / 7.50 / 6.60, reader 10.00 / 9.50 / 11.00; "
        "ours/reader by run 0.60 / 0.79 / 0.60"
    ) in bench_run.notes([cold])
    single = bench_run.Row("5. digest", ours=[sample(0.6)], note="one run")
    assert bench_run.notes([single]) == "- 5. digest: one run"
    assert bench_run.clustering_note(on[:1], off[:1]) == (
        "story clustering adds 20% to the cold cycle's wall time"
    )
    assert bench_run.clustering_note(on, off, rounds=1).endswith(
        "wall time, medians of 3 runs each way (1 in the cold rounds, 2 in pairs without "
        "reader; pair by pair: 20% / 50% / 10%; their median 20%; the rounds' alone, as in "
        "the table, 20%)"
    )


class _FakeServer:
    """What `bench_run.cold` asks of the feed server."""

    base = "http://127.0.0.1:1"

    def set_state(self, _state: int) -> int:
        return 0


def _recorded_sides(monkeypatch: pytest.MonkeyPatch, on_wall: float = 1.0) -> list[str]:
    """Replace the bench's runs by samples that record which side ran ("on", "off" or
    "reader"), in order; a run with clustering takes `on_wall` seconds, the others 1."""
    import run as bench_run

    order: list[str] = []

    def fake_sample(_server: object, args: list[str]) -> bench_run.Sample:
        side = "reader" if args[0] == "reader" else "off" if "--no-stories" in args else "on"
        order.append(side)
        wall = on_wall if side == "on" else 1.0
        return bench_run.Sample(wall_s=wall, cpu_s=1.0, items=1, peak_mb=1.0)

    monkeypatch.setattr(bench_run, "sample", fake_sample)
    return order


def test_each_cold_round_runs_ours_between_the_runs_it_is_divided_by(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Our cold run with clustering sits between its round's run without clustering and
    reader's, in an order that turns round every other round."""
    import run as bench_run

    order = _recorded_sides(monkeypatch)
    row, off, _ = bench_run.cold(_FakeServer(), 3, 3, tmp_path, "1. cold", clustering=True)  # type: ignore[arg-type]
    assert order == ["off", "on", "reader", "reader", "on", "off", "off", "on", "reader"]
    assert (len(row.ours), len(row.reader), len(off.ours)) == (3, 3, 3)
    order.clear()
    bench_run.cold(_FakeServer(), 3, 2, tmp_path, "1. cold", clustering=False)  # type: ignore[arg-type]
    assert order == ["on", "reader", "reader", "on"]


def test_pairs_beyond_the_cold_rounds_go_to_what_clustering_adds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Extra pairs run ours with and without clustering (no reader), turning their order
    round; they stay out of the table's rows, and the note counts every pair."""
    import run as bench_run

    order = _recorded_sides(monkeypatch, on_wall=2.0)
    row, off, _ = bench_run.cold(  # type: ignore[arg-type]
        _FakeServer(), 3, 1, tmp_path, "1. cold", clustering=True, pairs=2
    )
    assert order == ["off", "on", "reader", "off", "on", "on", "off"]
    assert (len(row.ours), len(row.reader), len(off.ours)) == (1, 1, 1)  # the table's: rounds
    assert off.note.startswith("story clustering adds 100% to the cold cycle's wall time, ")
    assert "medians of 3 runs each way (1 in the cold rounds, 2 in pairs" in off.note
    assert off.note.endswith("wall s of the extra pairs: 2.00 / 2.00 with, 1.00 / 1.00 without")
