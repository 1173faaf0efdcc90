"""Benchmark of story clustering on SQLite: a cold cycle, and per-item cost as history grows.

    python bench/bench_stories.py [--cold 30000] [--history 10000,50000,200000] [--cycle 2000]

Synthetic items: events are drawn from a shared news vocabulary (so unrelated items overlap a
little, as real coverage of one region does); each event is reported by several outlets that
reword it (drop, swap and add words). Each item is first seen shortly after it was published.
History is stored in time order at `--per-day` items a day (so the 72 h window holds about three
days of it), then a probe of new items arrives after it as one cycle. Stories are assigned as the
pipeline does: items are saved per feed through `Storage.save_items`, then
`assign_pending_stories` places the whole cycle in one call. Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, insert, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.collector import tune_for_polling
from monitor.settings import StoriesSettings
from monitor.store import Storage
from monitor.store.engine import make_engine
from monitor.store.migrate import upgrade
from monitor.store.schema import feeds
from monitor.store.stories import sync_index
from monitor.types import Item

NOW = datetime(2025, 9, 1, 12, 0, tzinfo=UTC)
SETTINGS = StoriesSettings()


def vocabulary(rng: random.Random, size: int = 6000) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(rng.choice(letters) for _ in range(rng.randint(4, 10))) for _ in range(size)]


@dataclass
class Generator:
    rng: random.Random
    words: list[str]
    serial: int = 0

    def _common_word(self) -> str:
        # Every outlet covering one region shares a few hundred words ("ukraine", "talks").
        return self.words[self.rng.randrange(300)]

    def event(self) -> list[str]:
        core = {self.rng.choice(self.words) for _ in range(16)}
        # Sorted: a set's order follows string hashes, which differ between processes.
        return sorted(core | {self._common_word() for _ in range(4)})

    def report(self, event: list[str], at: datetime) -> Item:
        self.serial += 1
        kept = self.rng.sample(event, k=max(6, int(len(event) * 0.7)))
        extra = [self._common_word() for _ in range(4)]
        extra += [self.rng.choice(self.words) for _ in range(10)]
        body = kept + extra
        self.rng.shuffle(body)
        title, summary = " ".join(body[:8]).capitalize(), " ".join(body[8:]) + "."
        ident = f"i{self.serial}"
        return Item(
            identity=ident,
            guid=ident,
            url=f"https://news{self.serial % 97}.example/{ident}",
            title=title,
            summary=summary,
            content="",
            author=None,
            published_at=at,
            updated_at=None,
            first_seen_at=at + timedelta(minutes=self.rng.randint(1, 30)),
            lang="en",
            content_hash=hashlib.sha256(f"{title}\n{summary}".encode()).hexdigest(),
        )

    def items(self, count: int, start: datetime, span: timedelta) -> Iterator[Item]:
        made = 0
        while made < count:
            at = start + span * self.rng.random()
            event = self.event()
            for _ in range(min(self.rng.randint(1, 8), count - made)):
                yield self.report(event, at + timedelta(minutes=self.rng.randint(0, 600)))
                made += 1


def fresh_engine(directory: Path, name: str) -> Engine:
    engine = make_engine(f"sqlite:///{directory / name}.db")
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(
            insert(feeds),
            [
                {
                    "url": f"https://feed{i}.example/rss",
                    "name": f"feed {i}",
                    "tags": [],
                    "enabled": True,
                    "interval_s": 900,
                    "error_count": 0,
                    "created_at": NOW,
                }
                for i in range(1, 101)
            ],
        )
    return engine


def run_cycle(
    storage: Storage, items: list[Item], now: datetime, per_feed: int = 100
) -> tuple[float, float]:
    """Save a cycle's items feed by feed (as the pipeline does), then assign them in one call;
    (insert s, assign s)."""
    t0 = time.perf_counter()
    for n, start in enumerate(range(0, len(items), per_feed)):
        chunk = items[start : start + per_feed]
        storage.save_items(n % 100 + 1, chunk, [None] * len(chunk), now)
    t1 = time.perf_counter()
    placed = storage.assign_pending_stories(now)
    t2 = time.perf_counter()
    assert placed == len(items), (placed, len(items))
    return t1 - t0, t2 - t1


def run_cycles(storage: Storage, items: list[Item], cycle: int) -> None:
    """Store time-ordered items as cycles of `cycle` items, each "now" at its last item."""
    for start in range(0, len(items), cycle):
        chunk = items[start : start + cycle]
        run_cycle(storage, chunk, max(i.first_seen_at for i in chunk))


def in_time_order(items: Iterator[Item]) -> list[Item]:
    return sorted(items, key=lambda i: i.first_seen_at)


def cold_cycle(directory: Path, count: int) -> None:
    gen = Generator(random.Random(7), vocabulary(random.Random(1)))
    # A first cycle: every feed's backlog of the last two days arrives at once.
    items = list(gen.items(count, NOW - timedelta(days=2), timedelta(days=2)))
    items = [replace(i, first_seen_at=NOW) for i in items]
    engine = fresh_engine(directory, "cold")
    insert_s, cluster_s = run_cycle(Storage(engine, SETTINGS), items, NOW)
    with engine.connect() as conn:
        # A story of one unmatched item has no row (its link names none): count it by its item.
        stories = conn.execute(
            text("SELECT count(DISTINCT coalesce(story_id, -item_id)) FROM item_stories")
        ).scalar()
        written = conn.execute(text("SELECT count(*) FROM stories")).scalar()
    engine.dispose()
    print(f"\n### Cold cycle: {count} items, one assign_pending call (SQLite)\n")
    print(
        "| items | stories (rows written) | insert items (s) | story assignment (s) "
        "| items/s | µs/item |"
    )
    print("|---|---|---|---|---|---|")
    print(
        f"| {count} | {stories} ({written}) | {insert_s:.2f} | {cluster_s:.2f} | "
        f"{count / cluster_s:.0f} | {cluster_s / count * 1e6:.0f} |"
    )


def history_growth(directory: Path, sizes: list[int], cycle: int, probe: int, per_day: int) -> None:
    gen = Generator(random.Random(11), vocabulary(random.Random(1)))
    engine = fresh_engine(directory, "history")
    days = (max(sizes) + probe * len(sizes)) / per_day
    start = NOW - timedelta(days=days)
    print(f"\n### Per-item assignment cost as history grows ({per_day} items/day, probe {probe})\n")
    print("| stored items | in index | index rebuild (s) | probe assignment (s) | µs/item |")
    print("|---|---|---|---|---|")
    stored = 0
    storage = Storage(engine, SETTINGS)
    for size in sizes:
        span = timedelta(days=(size - stored) / per_day)
        history = in_time_order(gen.items(size - stored, start, span))
        run_cycles(storage, history, cycle)
        stored, start = size, start + span
        # A restart: a fresh Storage rebuilds its index from the database.
        storage = Storage(engine, SETTINGS)
        rebuild_s = rebuild(storage, start)
        span = timedelta(days=probe / per_day)
        fresh = in_time_order(gen.items(probe, start, span))
        now = max(i.first_seen_at for i in fresh)
        _, cluster_s = run_cycle(storage, fresh, now)
        stored, start = stored + probe, start + span
        print(
            f"| {size} | {len(storage.story_index)} | {rebuild_s:.2f} | {cluster_s:.3f} | "
            f"{cluster_s / probe * 1e6:.0f} |"
        )
        sys.stdout.flush()
    engine.dispose()


def rebuild(storage: Storage, now: datetime) -> float:
    """Seconds to load a fresh index from the database (as the first cycle after a restart)."""
    with storage.engine.connect() as conn:
        t0 = time.perf_counter()
        sync_index(conn, storage.story_index, now - 2 * timedelta(seconds=SETTINGS.window), set())
        return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", type=int, default=30000)
    parser.add_argument("--history", default="10000,50000,200000")
    parser.add_argument("--cycle", type=int, default=2000)
    parser.add_argument("--probe", type=int, default=2000)
    parser.add_argument("--per-day", type=int, default=4000)
    parser.add_argument("--stop-like", type=int, default=StoriesSettings().stop_like)
    args = parser.parse_args()
    global SETTINGS  # one setting for the whole benchmark run
    SETTINGS = StoriesSettings(stop_like=args.stop_like)
    # As `monitor run` and `monitor poll` run: with the default collector thresholds, a full
    # collection over the growing history's heap landed inside some probes and not others.
    tune_for_polling()
    with tempfile.TemporaryDirectory() as tmp:
        if args.cold:
            cold_cycle(Path(tmp), args.cold)
        sizes = [int(s) for s in args.history.split(",") if s]
        if sizes:
            history_growth(Path(tmp), sizes, args.cycle, args.probe, args.per_day)


if __name__ == "__main__":
    main()
