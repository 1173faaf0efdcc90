"""Bench scenarios, each run in a fresh process: `python bench/scenarios.py <scenario> [...]`.

Prints one JSON line: wall and CPU seconds of this process, items handled and the RSS high-water
mark. The feed server is another process (started by bench/run.py); its CPU is read there.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT))

#: Same concurrency for both: our global limit (with the shipped 2 per host over the
#: server's 10 loopback hosts, 20 in flight) and reader's workers.
CONCURRENCY = 20


@dataclass
class Measure:
    """What one scenario run reports."""

    wall_s: float = 0.0
    cpu_s: float = 0.0
    items: int = 0
    peak_mb: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def _children_of() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def descendants() -> list[int]:
    """Live processes below this one (parse workers, their fork server), Linux only."""
    if not Path("/proc/self/stat").exists():
        return []
    children = _children_of()
    found: list[int] = []
    todo = list(children.get(os.getpid(), []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _proc_cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # utime, stime, cutime, cstime are fields 14-17 of stat (11-14 after the name).
    ticks = sum(int(v) for v in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def _proc_hwm_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children_cpu_s() -> float:
    """CPU of live descendants plus everything already reaped."""
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    return reaped.ru_utime + reaped.ru_stime + sum(_proc_cpu_s(p) for p in descendants())


def self_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@contextmanager
def measured(out: Measure) -> Iterator[None]:
    """Wall and CPU time of the block: this process plus its worker processes."""
    own, kids = self_cpu_s(), children_cpu_s()
    started = time.perf_counter()
    yield
    out.wall_s = time.perf_counter() - started
    kids_after = children_cpu_s()
    out.cpu_s = self_cpu_s() - own + kids_after - kids
    out.extra["workers_cpu_s"] = round(kids_after - kids, 2)


def peak_mb() -> float:
    """High-water RSS of this process plus that of each live worker process."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return own + sum(_proc_hwm_mb(p) for p in descendants())


# --- ours ----------------------------------------------------------------------------------


def write_config(
    directory: Path, db_path: Path, urls: Sequence[str], *, stories: bool = True
) -> Path:
    """A config dir for the bench: SQLite in `db_path`, loopback allowed, 20 fetches at once
    (the shipped 2 per host, over the server's 10 loopback hosts); `stories=False` turns
    story clustering off (to measure what it adds to a cycle)."""
    directory.mkdir(parents=True, exist_ok=True)
    monitor_yaml = f"""
database:
  url: sqlite:///{db_path}
http:
  concurrency: {CONCURRENCY}
  allow_private_networks: [127.0.0.0/8]
logging:
  level: WARNING
matching:
  watchlist: watchlist.yaml
  corpus: {ROOT / "corpus"}
channels: {{}}
stories:
  enabled: {"true" if stories else "false"}
"""
    (directory / "monitor.yaml").write_text(monitor_yaml, encoding="utf-8")
    feeds = "\n".join(f"  - url: {u}" for u in urls)
    (directory / "feeds.yaml").write_text(f"feeds:\n{feeds}\n", encoding="utf-8")
    shutil.copy(ROOT / "config" / "watchlist.yaml", directory / "watchlist.yaml")
    return directory


def ours_poll(config_dir: Path, profile: Path | None = None) -> Measure:
    """One full cycle of our monitor over every configured feed (as `monitor poll --all`)."""
    from monitor.collector import tune_for_polling
    from monitor.service import Monitor
    from monitor.settings import load_config
    from monitor.store import Storage, make_engine, upgrade

    tune_for_polling()  # as `monitor poll` and `monitor run` do
    logging.basicConfig(level=logging.ERROR)
    config = load_config(config_dir, {})
    engine = make_engine(config.settings.database.url)
    upgrade(engine)
    monitor = Monitor(config, Storage(engine, config.settings.stories), lambda: datetime.now(UTC))
    monitor.reload()  # feeds registered, as after the first start
    monitor.matcher()  # watchlist compiled, as in a running `monitor run`
    out = Measure()
    profiler = _profiler(profile)
    with measured(out):
        report = monitor.poll(due_only=False)
    _save_profile(profiler, profile)
    out.items = report.new_items
    out.peak_mb = peak_mb()
    monitor.close()
    out.extra |= {
        "fetched": report.count("fetched"),
        "not_modified": report.count("not_modified"),
        "failed": report.count("failed"),
        "new_matches": report.new_matches,
        "line": report.line(),
        "errors": dict(Counter(o.error for o in report.outcomes if o.error).most_common(3)),
    }
    engine.dispose()
    return out


def _profiler(path: Path | None) -> Any:
    if path is None:
        return None
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.002, async_mode="enabled")
    profiler.start()
    return profiler


def _save_profile(profiler: Any, path: Path | None) -> None:
    if profiler is None or path is None:
        return
    profiler.stop()
    path.write_text(profiler.output_text(unicode=False, color=False, show_all=False))
    path.with_suffix(".html").write_text(profiler.output_html())


# --- reader (the peer) -----------------------------------------------------------------------


def reader_update(db_path: Path, urls: Sequence[str]) -> Measure:
    """One `update_feeds` of lemon24/reader over every feed, with CONCURRENCY worker threads."""
    from reader import make_reader

    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    reader = make_reader(str(db_path))
    known = {f.url for f in reader.get_feeds()}
    for url in urls:
        if url not in known:
            reader.add_feed(url)
    before = reader.get_entry_counts().total or 0
    out = Measure()
    with measured(out):
        reader.update_feeds(workers=CONCURRENCY, scheduled=False)
    out.items = (reader.get_entry_counts().total or 0) - before
    out.peak_mb = peak_mb()
    failing = sum(1 for f in reader.get_feeds() if f.last_exception is not None)
    out.extra |= {"failed": failing}
    reader.close()
    return out


# --- matching and digest ---------------------------------------------------------------------


def bench_texts(count: int) -> list[tuple[str, str]]:
    """(title, summary) of the first `count` generated items, across feeds."""
    import feedgen

    texts: list[tuple[str, str]] = []
    index = 0
    while len(texts) < count:
        texts.extend((i.title, i.summary) for i in feedgen.items_of(feedgen.make_feed(index)))
        index += 1
    return texts[:count]


def matching(phrases: int, items: int) -> Measure:
    """Items per second through the matcher as the pipeline runs it (`Matcher.record`: the
    verdict and, for a match, its stored evidence) with a watchlist grown or cut to about
    `phrases` phrases by bench/bench_matching.py; the explained path (`match_text`, as
    `monitor match` and evaluation run it) is reported beside it."""
    import random

    from bench_matching import grown, rate

    from monitor.match import Matcher
    from monitor.similarity import load_seed_index
    from monitor.watchlist import load_watchlist

    texts = bench_texts(items)
    stream = [(_bench_item(t, s),) for t, s in texts]
    watchlist = grown(load_watchlist(ROOT / "config" / "watchlist.yaml"), phrases, random.Random(7))
    matcher = Matcher.compile(watchlist, load_seed_index(ROOT / "corpus"))
    out = Measure()
    with measured(out):
        per_second = rate(matcher.record, stream)
    out.items = items
    out.peak_mb = peak_mb()
    matched = sum(1 for (item,) in stream if matcher.record(item) is not None)
    out.extra |= {
        "items_per_s": per_second,
        "explained_items_per_s": rate(matcher.match_text, texts),
        "phrases": matcher.phrase_count,
        "matched_share": matched / len(texts),
    }
    return out


def _bench_item(title: str, summary: str) -> Any:
    """A generated item's title and summary as a normalised item (the rest left empty)."""
    from monitor.types import Item

    seen = datetime(2025, 6, 2, 9, tzinfo=UTC)
    return Item("x", None, None, title, summary, "", None, None, None, seen, "en", "x")


def pending_matches(count: int) -> list[Any]:
    """`count` pending matches over generated items: 3 reports per story on average, 40 feeds."""
    import random
    from datetime import timedelta

    from alerts.model import PendingMatch

    topics = ("negotiations", "ceasefire", "sanctions", "security_guarantees", "prisoners")
    actors = ("zelensky", "putin", "witkoff", "lavrov", "rubio", "kremlin", "nato", "umerov")
    rng = random.Random(11)
    now = datetime(2025, 6, 2, 8, 0, tzinfo=UTC)
    out = []
    for n, (title, summary) in enumerate(bench_texts(count)):
        words = summary.split()
        start = rng.randrange(max(1, len(words) - 30))
        snippet = " ".join(words[start : start + 30])
        hit = rng.choice(actors)
        out.append(
            PendingMatch(
                match_id=n + 1,
                item_id=n + 1,
                score=round(rng.uniform(1.0, 6.0), 2),
                topics=tuple(rng.sample(topics, rng.randint(1, 2))),
                actors=tuple(rng.sample(actors, rng.randint(0, 3))),
                terms=(hit,),
                snippet=f"{snippet} **{hit}**",
                matched_at=now,
                title=title,
                url=f"https://news{n % 40}.example/story/{n}",
                published_at=now - timedelta(minutes=n % 1440),
                first_seen_at=now - timedelta(minutes=n % 1440),
                feed_id=n % 40 + 1,
                feed_name=f"Bench Gazette {n % 40}",
                story_id=n // 3 + 1 if rng.random() < 0.6 else None,
            )
        )
    return out


def digest(matches: int) -> Measure:
    """Build one digest of `matches` pending matches, then render it (text, HTML, Markdown,
    JSON)."""
    from alerts.digest import build_digest
    from alerts.render import render_all
    from monitor.settings import FileChannel

    pending = pending_matches(matches)
    channel = FileChannel(kind="file", schedule="immediate")
    now = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)
    out = Measure()
    with measured(out):
        built = build_digest("files", channel, pending, (), None, now)
        assert built is not None
        rendered = render_all(built)
    out.items = matches
    out.peak_mb = peak_mb()
    out.extra |= {
        "entries": built.header.entry_count,
        "html_kb": len(rendered.html) // 1024,
        "json_kb": len(rendered.json) // 1024,
    }
    return out


# --- command line ----------------------------------------------------------------------------


def _urls(base: str, feeds: int) -> list[str]:
    from server import feed_url

    port = int(base.rsplit(":", 1)[1])
    return [feed_url(port, i) for i in range(feeds)]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=["ours", "reader", "matching", "digest"])
    parser.add_argument("--base", help="bench server URL, e.g. http://127.0.0.1:8123")
    parser.add_argument("--feeds", type=int, default=500)
    parser.add_argument("--work", type=Path, help="directory for config and database")
    parser.add_argument("--db", type=Path, help="database file (copied from --primed if given)")
    parser.add_argument("--primed", type=Path, help="database to start from")
    parser.add_argument("--profile", type=Path, help="write a pyinstrument profile here")
    parser.add_argument("--phrases", type=int, default=150)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--matches", type=int, default=10_000)
    parser.add_argument("--no-stories", action="store_true", help="story clustering off")
    args = parser.parse_args(argv)
    runners: dict[str, Callable[[], Measure]] = {
        "ours": lambda: ours_poll(_prepare_ours(args), args.profile),
        "reader": lambda: reader_update(_prepare_db(args), _urls(args.base, args.feeds)),
        "matching": lambda: matching(args.phrases, args.items),
        "digest": lambda: digest(args.matches),
    }
    result = runners[args.scenario]()
    print(json.dumps(asdict(result)), flush=True)


def _prepare_db(args: argparse.Namespace) -> Path:
    db: Path = args.db
    db.parent.mkdir(parents=True, exist_ok=True)
    if args.primed is not None:
        for suffix in ("", "-wal", "-shm"):
            source = Path(f"{args.primed}{suffix}")
            if source.exists():
                shutil.copy(source, f"{db}{suffix}")
    return db


def _prepare_ours(args: argparse.Namespace) -> Path:
    db = _prepare_db(args)
    urls = _urls(args.base, args.feeds)
    return write_config(args.work / "config", db, urls, stories=not args.no_stories)


if __name__ == "__main__":
    main()
