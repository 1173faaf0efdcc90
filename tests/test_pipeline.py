"""End to end over real parts: loopback feeds → pipeline → SQLite/PostgreSQL, and the CLI."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from concurrent.futures.process import BrokenProcessPool
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from monitor import yamlio
from monitor.errors import StorageError
from monitor.service import Monitor
from monitor.settings import load_config
from monitor.store import Storage
from monitor.store.schema import feeds, item_stories, items, matches, stories
from tests.feedserver import FeedServer

ROOT = Path(__file__).resolve().parent.parent
BASE = datetime(2025, 6, 2, 6, 0, tzinfo=UTC)


def rss(feed_no: int, item_nos: range, *, topical: bool = True) -> bytes:
    """An RSS 2.0 document whose items each have a GUID; some mention the watched story."""
    entries = []
    for n in item_nos:
        if topical and n % 3 == 0:
            title = f"Istanbul talks: Medinsky and Umerov agree on prisoner exchange #{n}"
            summary = (
                "Russian and Ukrainian delegations met in Istanbul and agreed to swap "
                "prisoners of war, the Kremlin said; Zelensky called for a ceasefire."
            )
        else:
            title = f"Local weather update number {n} for feed {feed_no}"
            summary = "Mild temperatures and light winds are expected over the weekend."
        entries.append(
            f"<item><guid>f{feed_no}-i{n}</guid><title>{title}</title>"
            f"<link>https://news{feed_no}.example/a/{n}?utm_source=rss</link>"
            f"<description>{summary}</description>"
            f"<pubDate>{format_datetime(BASE)}</pubDate></item>"
        )
    return (
        "<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel>"
        f"<title>Feed {feed_no}</title><link>https://news{feed_no}.example/</link>"
        + "".join(entries)
        + "</channel></rss>"
    ).encode()


def make_config(directory: Path, db_url: str, urls: list[str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "monitor.yaml").write_text(
        f"database:\n  url: {db_url}\n"
        "http:\n  allow_private_networks: [127.0.0.0/8]\n  deadline: 10s\n  per_host: 20\n"
        "channels:\n  files:\n    kind: file\n    schedule: immediate\n"
        f"    directory: {directory.parent / 'digests'}\n    formats: [md, json]\n",
        encoding="utf-8",
    )
    feeds_yaml = "feeds:\n" + "".join(f"  - url: {u}\n" for u in urls)
    (directory / "feeds.yaml").write_text(feeds_yaml, encoding="utf-8")
    shutil.copy(ROOT / "config" / "watchlist.yaml", directory / "watchlist.yaml")
    return directory


@pytest.fixture
def monitors() -> Iterator[list[Monitor]]:
    """Monitors a test makes, closed (worker processes stopped) after it."""
    made: list[Monitor] = []
    yield made
    for monitor in made:
        monitor.close()


def make_monitor(config_dir: Path, engine: Engine, made: list[Monitor]) -> Monitor:
    config = load_config(config_dir, {})
    monitor = Monitor(
        config, Storage(engine, config.settings.stories), lambda: datetime.now(UTC), env={}
    )
    made.append(monitor)
    return monitor


def served_monitor(
    server: FeedServer, engine: Engine, tmp_path: Path, made: list[Monitor], paths: list[str]
) -> Monitor:
    """A monitor on `engine` polling the server's feeds at `paths`."""
    urls = [server.url(p) for p in paths]
    return make_monitor(make_config(tmp_path / "c", str(engine.url), urls), engine, made)


def count(engine: Engine, table: object) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()  # type: ignore[arg-type]


def test_two_hundred_feeds_stored_once_then_not_modified(
    feed_server: FeedServer,
    engine: Engine,
    tmp_path: Path,
    db_url: str,
    monitors: list[Monitor],
) -> None:
    urls = []
    for f in range(200):
        feed_server.add(f"/f{f}.xml", body=rss(f, range(6)), etag=f'"f{f}-v1"')
        urls.append(feed_server.url(f"/f{f}.xml"))
    monitor = make_monitor(make_config(tmp_path / "config", db_url, urls), engine, monitors)

    first = monitor.poll(due_only=False)
    assert (first.count("fetched"), first.count("failed")) == (200, 0)
    assert first.new_items == count(engine, items) == 1200
    assert first.new_matches == count(engine, matches) == 400

    second = monitor.poll(due_only=False)
    assert second.count("not_modified") == 200
    assert (second.new_items, count(engine, items)) == (0, 1200)
    assert all(r["if-none-match"] == '"f0-v1"' for r in feed_server.requests("/f0.xml")[1:])


def test_changed_feed_adds_only_new_items(
    feed_server: FeedServer, sqlite_engine: Engine, tmp_path: Path, monitors: list[Monitor]
) -> None:
    feed_server.add("/a.xml", body=rss(1, range(5)))
    monitor = served_monitor(feed_server, sqlite_engine, tmp_path, monitors, ["/a.xml"])
    assert monitor.poll(due_only=False).new_items == 5
    feed_server.add("/a.xml", body=rss(1, range(2, 8)))  # three old, three new
    report = monitor.poll(due_only=False)
    assert (report.new_items, count(sqlite_engine, items)) == (3, 8)


def test_a_large_cycle_ends_with_its_items_copied_into_the_database_file(
    feed_server: FeedServer, sqlite_engine: Engine, tmp_path: Path, monitors: list[Monitor]
) -> None:
    paths = [f"/f{f}.xml" for f in range(25)]  # 1,250 items: over ITEMS_PER_CHECKPOINT
    for f, path in enumerate(paths):
        feed_server.add(path, body=rss(f, range(50)))
    monitor = served_monitor(feed_server, sqlite_engine, tmp_path, monitors, paths)
    assert monitor.poll(due_only=False).new_items == 1250
    # The database file alone (without its write-ahead log) holds the cycle's items.
    alone = tmp_path / "alone.db"
    alone.write_bytes(Path(str(sqlite_engine.url.database)).read_bytes())
    with closing(sqlite3.connect(alone)) as conn:
        assert conn.execute("SELECT count(*) FROM items").fetchone() == (1250,)


def test_a_failed_checkpoint_is_logged_and_the_cycle_still_reported(
    feed_server: FeedServer,
    sqlite_engine: Engine,
    tmp_path: Path,
    monitors: list[Monitor],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    feed_server.add("/a.xml", body=rss(1, range(5)))
    monitor = served_monitor(feed_server, sqlite_engine, tmp_path, monitors, ["/a.xml"])

    def fail() -> None:
        raise StorageError("cannot checkpoint the database: disk I/O error")

    monkeypatch.setattr(monitor.storage, "settle_log", fail)
    assert monitor.poll(due_only=False).new_items == 5
    assert "cannot checkpoint the database: disk I/O error" in caplog.text
    assert count(sqlite_engine, items) == 5


def test_a_failing_feed_is_recorded_and_the_cycle_goes_on(
    feed_server: FeedServer,
    engine: Engine,
    tmp_path: Path,
    db_url: str,
    monitors: list[Monitor],
) -> None:
    feed_server.add("/ok.xml", body=rss(1, range(2)))
    feed_server.add("/broken", status=500)
    feed_server.add(
        "/page", body=b"<!doctype html><html><body>Hi</body></html>", content_type="text/html"
    )
    urls = [feed_server.url(p) for p in ("/ok.xml", "/broken", "/page")]
    monitor = make_monitor(make_config(tmp_path / "c", db_url, urls), engine, monitors)
    report = monitor.poll(due_only=False)
    assert (report.count("fetched"), report.count("failed")) == (1, 2)
    errors = {o.url: o.error for o in report.outcomes}
    assert "500" in (errors[urls[1]] or "")
    assert "not a feed" in (errors[urls[2]] or "")
    with engine.connect() as conn:
        rows = dict(conn.execute(select(feeds.c.url, feeds.c.error_count)).all())
    assert rows == {urls[0]: 0, urls[1]: 1, urls[2]: 1}


def test_watchlist_edit_applies_at_next_cycle_and_bad_edit_keeps_previous(
    feed_server: FeedServer, sqlite_engine: Engine, tmp_path: Path, monitors: list[Monitor]
) -> None:
    feed_server.add("/a.xml", body=rss(1, range(3), topical=False))
    config_dir = make_config(tmp_path / "c", str(sqlite_engine.url), [feed_server.url("/a.xml")])
    monitor = make_monitor(config_dir, sqlite_engine, monitors)
    assert monitor.poll(due_only=False).new_matches == 0
    original = monitor.matcher()
    assert original is not None

    watchlist = config_dir / "watchlist.yaml"
    document = yamlio.load(watchlist)
    document["topics"].append(
        {
            "id": "weather_watch",
            "name": "Weather",
            "terms": ["weather update", "light winds"],
            "threshold": 0.5,
        }
    )
    yamlio.save(watchlist, document)
    feed_server.add("/a.xml", body=rss(1, range(3, 6), topical=False))
    report = monitor.poll(due_only=False)  # the same Monitor: no restart
    assert report.new_matches == 3
    edited = monitor.matcher()
    assert edited is not None and edited.watchlist.version != original.watchlist.version
    assert report.watchlist_version == edited.watchlist.version

    watchlist.write_text("actors: [oops\n", encoding="utf-8")  # an invalid edit
    kept = monitor.matcher()
    assert kept is edited  # the previous watchlist stays in force


POLL_SCRIPT = """
import sys
from monitor.cli import main
sys.argv = ["monitor", "--config-dir", sys.argv[1], "poll"]
main()
"""


@pytest.mark.slow
def test_sigkill_mid_cycle_loses_and_duplicates_nothing(
    feed_server: FeedServer, tmp_path: Path
) -> None:
    urls = []
    for f in range(40):
        # slow answers spread the cycle out so the kill lands in the middle of it
        feed_server.add(f"/s{f}.xml", body=rss(f, range(10)), delay=0.05 * (f % 10), etag='"x"')
        urls.append(feed_server.url(f"/s{f}.xml"))
    db = tmp_path / "kill.db"
    config_dir = make_config(tmp_path / "c", f"sqlite:///{db}", urls)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", POLL_SCRIPT, str(config_dir)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    deadline = time.monotonic() + 60
    while (
        time.monotonic() < deadline and sum(feed_server.hits(f"/s{f}.xml") for f in range(40)) < 15
    ):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    rerun = subprocess.run(
        [sys.executable, "-c", POLL_SCRIPT, str(config_dir)],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert rerun.returncode == 0, rerun.stderr
    from monitor.store import make_engine

    engine = make_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        per_identity = conn.execute(
            select(items.c.identity, func.count()).group_by(items.c.feed_id, items.c.identity)
        ).all()
        matched = conn.execute(select(func.count()).select_from(matches)).scalar_one()
    assert len(per_identity) == 400 and all(n == 1 for _, n in per_identity)
    assert matched == 40 * 4  # items 0, 3, 6, 9 of each feed are topical
    engine.dispose()


def run_cli(
    *args: str, cwd: Path, launcher: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    env.pop("MONITOR_CONFIG_DIR", None)
    return subprocess.run(
        [*(launcher or [sys.executable, "-m", "monitor"]), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_poll_status_and_feed_commands(feed_server: FeedServer, tmp_path: Path) -> None:
    feed_server.add("/a.xml", body=rss(1, range(4)))
    config_dir = make_config(
        tmp_path / "c", f"sqlite:///{tmp_path / 'cli.db'}", [feed_server.url("/a.xml")]
    )
    opml = tmp_path / "list.opml"
    opml.write_text(
        '<?xml version="1.0"?><opml version="2.0"><head/><body>'
        f'<outline text="World"><outline text="B" xmlUrl="{feed_server.url("/b.xml")}"/></outline>'
        "</body></opml>",
        encoding="utf-8",
    )
    feed_server.add("/b.xml", body=rss(2, range(2)))
    c = str(config_dir)

    assert (
        run_cli("feeds", "import-opml", str(opml), "--config-dir", c, cwd=tmp_path).returncode == 0
    )
    assert "tags:\n" in (config_dir / "feeds.yaml").read_text()
    poll = run_cli("poll", "--config-dir", c, cwd=tmp_path)
    assert poll.returncode == 0, poll.stderr
    assert "2 fetched, 0 not modified, 0 failed; 6 new items" in poll.stdout

    status = run_cli("status", "--format", "json", "--config-dir", c, cwd=tmp_path)
    data = json.loads(status.stdout)
    assert data["items"] == 6 and data["feeds"]["ok"] == 2
    assert data["last_cycle"]["new_items"] == 6

    exported = run_cli("feeds", "export-opml", "--config-dir", c, cwd=tmp_path).stdout
    assert feed_server.url("/b.xml") in exported

    removed = run_cli("feeds", "remove", feed_server.url("/b.xml"), "--config-dir", c, cwd=tmp_path)
    assert removed.returncode == 0, removed.stderr
    replaced = run_cli(
        "feeds", "import-opml", str(opml), "--replace", "--config-dir", c, cwd=tmp_path
    )
    assert replaced.returncode == 0
    listed = json.loads(
        run_cli("feeds", "list", "--format", "json", "--config-dir", c, cwd=tmp_path).stdout
    )
    assert [f["url"] for f in listed] == [feed_server.url("/b.xml")]


@pytest.mark.parametrize(
    ("monitor_yaml", "needle"),
    [
        ("http:\n  concurrency: zero\n", "http.concurrency"),
        ("database:\n  url: mysql://x/y\n", "database.url"),
    ],
)
def test_cli_bad_config_exits_2_naming_key(tmp_path: Path, monitor_yaml: str, needle: str) -> None:
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "monitor.yaml").write_text(monitor_yaml)
    result = run_cli("poll", "--config-dir", str(tmp_path / "c"), cwd=tmp_path)
    assert result.returncode == 2
    assert needle in result.stderr and "monitor.yaml:" in result.stderr


def test_cli_refuses_foreign_database(tmp_path: Path) -> None:
    import sqlite3

    with closing(sqlite3.connect(tmp_path / "foreign.db")) as conn, conn:
        conn.execute("CREATE TABLE t (x)")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "monitor.yaml").write_text(
        f"database:\n  url: sqlite:///{tmp_path}/foreign.db\n"
    )
    result = run_cli("poll", "--config-dir", str(tmp_path / "c"), cwd=tmp_path)
    assert result.returncode == 2 and "not the monitor's" in result.stderr


def test_second_instance_says_so_and_exits(tmp_path: Path, sqlite_engine: Engine) -> None:
    from monitor.store.lock import instance_lock

    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "monitor.yaml").write_text(f"database:\n  url: {sqlite_engine.url}\n")
    with instance_lock(sqlite_engine):
        result = run_cli("poll", "--config-dir", str(tmp_path / "c"), cwd=tmp_path)
    assert result.returncode == 3 and "already polling" in result.stderr


def test_worker_processes_parse_and_match_like_the_storage_thread(
    feed_server: FeedServer, tmp_path: Path, monitors: list[Monitor]
) -> None:
    from monitor.store import make_engine, upgrade

    urls = []
    for f in range(6):
        feed_server.add(f"/w{f}.xml", body=rss(f, range(9)))
        urls.append(feed_server.url(f"/w{f}.xml"))
    counts = {}
    for mode, workers in (("thread", 0), ("processes", 2)):
        db = f"sqlite:///{tmp_path / mode}.db"
        engine = make_engine(db)
        upgrade(engine)
        config_dir = make_config(tmp_path / mode, db, urls)
        with (config_dir / "monitor.yaml").open("a", encoding="utf-8") as fh:
            fh.write(f"schedule:\n  parse_workers: {workers}\n  parallel_from: 1\n")
        monitor = make_monitor(config_dir, engine, monitors)
        report = monitor.poll(due_only=False)
        assert (monitor._pool is not None) == (workers > 0)
        with engine.connect() as conn:
            # Matches made in the workers store the same evidence, and give their stories
            # the same actors and terms.
            rows = conn.execute(
                select(
                    items.c.identity,
                    matches.c.topics,
                    matches.c.score,
                    matches.c.actors,
                    matches.c.evidence,
                    stories.c.actors,
                    stories.c.terms,
                )
                .join(matches, matches.c.item_id == items.c.id)
                .join(item_stories, item_stories.c.item_id == items.c.id)
                .join(stories, stories.c.id == item_stories.c.story_id)
                .order_by(items.c.identity)
            ).all()
            placed = conn.execute(
                select(items.c.identity, item_stories.c.story_id).outerjoin(
                    item_stories, item_stories.c.item_id == items.c.id
                )
            ).all()
        # Story words taken in the workers place items as the storage thread's own do.
        by_story: dict[int, list[str]] = {}
        for identity, story_id in placed:
            by_story.setdefault(story_id, []).append(identity)
        groups = sorted(sorted(g) for g in by_story.values())
        counts[mode] = (report.new_items, report.new_matches, [tuple(r) for r in rows], groups)
        engine.dispose()
    assert counts["thread"] == counts["processes"]
    assert counts["thread"][:2] == (54, 18)
    assert None not in {story for g in counts["thread"][3] for story in g}
    assert all(row[6] for row in counts["thread"][2]), "every matched story counts its terms"


def test_stories_are_assigned_in_batches_while_the_cycle_goes_on() -> None:
    from monitor.pipeline import StoryBatches

    calls: list[datetime] = []

    class Recorder:
        def assign_pending_stories(self, now: datetime) -> int:
            calls.append(now)
            return 0

    batches = StoryBatches(Recorder(), lambda: datetime(2025, 1, 1, tzinfo=UTC), batch=5)  # type: ignore[arg-type]
    batches.add(3)
    assert calls == []
    batches.add(0)
    batches.add(2)
    assert len(calls) == 1
    batches.flush()
    assert len(calls) == 1, "nothing waiting: no empty assignment"
    batches.add(1)
    batches.flush()
    assert len(calls) == 2


def test_worker_matcher_refuses_a_stale_watchlist_version() -> None:
    from monitor.parsejob import WatchlistRef, _worker_matcher

    path = str(ROOT / "config" / "watchlist.yaml")
    assert _worker_matcher(WatchlistRef(path, "not-the-version", None)) is None
    from monitor.watchlist import load_watchlist

    version = load_watchlist(Path(path)).version
    assert _worker_matcher(WatchlistRef(path, version, None)) is not None


def test_a_worker_uses_the_matcher_its_parent_sent(tmp_path: Path) -> None:
    """A worker started with the parent's compiled watchlist matches with it, without
    importing pydantic or a YAML library, and still loads any other version from the file;
    the handed-over file is private and gone once the handoff is closed."""
    from monitor.match import Matcher
    from monitor.parsejob import MatcherHandoff
    from monitor.watchlist import load_watchlist

    watchlist = load_watchlist(ROOT / "config" / "watchlist.yaml")
    handoff = MatcherHandoff()
    assert handoff.path_for(None) is None
    path = handoff.path_for(Matcher.compile(watchlist, None))
    assert path is not None and Path(path).parent.stat().st_mode & 0o077 == 0
    other = tmp_path / "other.yaml"
    other.write_text(
        "version: 1\nactors:\n  - {id: kyiv, name: Kyiv, type: place, aliases: [Kyiv]}\n",
        encoding="utf-8",
    )
    probe = f"""
import os, sys
from pathlib import Path
from monitor.parsejob import WatchlistRef, _worker_matcher, start_worker
start_worker(os.getppid(), {path!r})
# No file at this path: the version the parent sent needs none.
sent = _worker_matcher(WatchlistRef("/nowhere/watchlist.yaml", {watchlist.version!r}, None))
print(sent is not None and sent.match_text("Zelensky and Putin agree a ceasefire").matched)
print(sorted(m for m in ("pydantic", "yaml", "ruamel.yaml") if m in sys.modules))
from monitor.watchlist import load_watchlist
version = load_watchlist(Path({str(other)!r})).version
print(_worker_matcher(WatchlistRef({str(other)!r}, version, None)) not in (None, sent))
"""
    try:
        done = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True
        )
    finally:
        handoff.close()
    assert done.stdout.split("\n")[:3] == ["True", "[]", "True"], done.stdout + done.stderr
    assert not Path(path).parent.exists()


def test_a_worker_starts_without_the_handed_over_file() -> None:
    """A handoff already removed (the pool outlived it) leaves the worker to read the file."""
    watchlist = ROOT / "config" / "watchlist.yaml"
    probe = f"""
import os
from pathlib import Path
from monitor.parsejob import WatchlistRef, _shipped, _worker_matcher, start_worker
from monitor.watchlist import load_watchlist
start_worker(os.getppid(), "/nowhere/matcher.pickle")
version = load_watchlist(Path({str(watchlist)!r})).version
print(not _shipped, _worker_matcher(WatchlistRef({str(watchlist)!r}, version, None)) is not None)
"""
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "True True", done.stdout + done.stderr


CONSOLE_SCRIPT = Path(sys.executable).with_name("monitor")


def test_parse_workers_collect_garbage_as_rarely_as_the_parent(
    tmp_path: Path, monitors: list[Monitor]
) -> None:
    """Workers allocate for every entry they parse: they run with the polling thresholds."""
    import gc

    from monitor.collector import POLLING_THRESHOLDS
    from monitor.store import make_engine

    db = f"sqlite:///{tmp_path / 'g.db'}"
    config_dir = make_config(tmp_path / "g", db, [])
    with (config_dir / "monitor.yaml").open("a", encoding="utf-8") as fh:
        fh.write("schedule:\n  parse_workers: 1\n")
    monitor = make_monitor(config_dir, make_engine(db), monitors)
    pool = monitor._parse_pool()
    assert pool is not None
    assert pool.submit(gc.get_threshold).result(timeout=60) == POLLING_THRESHOLDS


@pytest.mark.parametrize(
    "launcher",
    [
        pytest.param([sys.executable, "-m", "monitor"], id="python -m monitor"),
        pytest.param(
            [str(CONSOLE_SCRIPT)],
            id="console script",
            marks=pytest.mark.skipif(
                not CONSOLE_SCRIPT.exists(), reason="the monitor console script is not installed"
            ),
        ),
    ],
)
def test_worker_processes_start_from_either_entry_point(
    feed_server: FeedServer, tmp_path: Path, launcher: list[str]
) -> None:
    """Spawned workers import the parent's main module afresh: both entry points must allow it."""
    for f in range(3):
        feed_server.add(f"/p{f}.xml", body=rss(f, range(4)))
    config_dir = make_config(
        tmp_path / "c",
        f"sqlite:///{tmp_path / 'p.db'}",
        [feed_server.url(f"/p{f}.xml") for f in range(3)],
    )
    with (config_dir / "monitor.yaml").open("a", encoding="utf-8") as fh:
        fh.write("schedule:\n  parse_workers: 2\n  parallel_from: 1\n")
    result = run_cli("poll", "--config-dir", str(config_dir), cwd=tmp_path, launcher=launcher)
    assert result.returncode == 0, result.stderr
    assert "3 fetched, 0 not modified, 0 failed; 12 new items" in result.stdout


@pytest.mark.skipif(
    not CONSOLE_SCRIPT.exists(), reason="the monitor console script is not installed"
)
def test_workers_run_the_console_script_without_the_command_line() -> None:
    """A spawned worker runs its parent's main module again: from the console script, that
    must not import the command line and what it brings (about 1.3 s of CPU per worker)."""
    heavy = ("monitor.cli", "spacy", "sqlalchemy", "numpy", "alerts", "pydantic")
    probe = (
        "import runpy, sys\n"
        f"runpy.run_path({str(CONSOLE_SCRIPT)!r}, run_name='__mp_main__')\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout


class _DeadPool(Executor):
    """A process pool whose workers have died."""

    def submit(
        self, fn: Callable[..., object], /, *args: object, **kwargs: object
    ) -> Future[object]:
        raise BrokenProcessPool("a worker was killed")


def test_a_dead_worker_pool_degrades_to_the_storage_thread(
    feed_server: FeedServer, sqlite_engine: Engine, tmp_path: Path, monitors: list[Monitor]
) -> None:
    urls = []
    for f in range(4):
        feed_server.add(f"/d{f}.xml", body=rss(f, range(3)))
        urls.append(feed_server.url(f"/d{f}.xml"))
    monitor = make_monitor(
        make_config(tmp_path / "c", str(sqlite_engine.url), urls), sqlite_engine, monitors
    )
    discarded = []
    monitor._parse_pool = lambda: _DeadPool()  # type: ignore[method-assign]
    monitor._discard_pool = lambda: discarded.append(True)  # type: ignore[method-assign]
    monitor.config = replace(
        monitor.config,
        settings=monitor.config.settings.model_copy(
            update={
                "schedule": monitor.config.settings.schedule.model_copy(update={"parallel_from": 1})
            }
        ),
    )
    report = monitor.poll(due_only=False)
    assert (report.count("fetched"), report.new_items, report.new_matches) == (4, 12, 4)
    assert discarded == [True]  # reported once, then the cycle stopped asking for the pool


def test_workers_are_asked_for_only_when_much_of_what_is_parsed_is_new() -> None:
    from monitor.pipeline import ParseRoute

    pool = object()
    route = ParseRoute(lambda: pool, threshold=3)  # type: ignore[arg-type,return-value]
    assert route.next_executor() is None  # 1st body: below the threshold
    route.parsed_here(60, 3)
    assert route.next_executor() is None
    route.parsed_here(60, 3)
    # A steady cycle: 6 new of 120 parsed; the storage thread matches only those 6.
    assert route.next_executor() is None
    route.parsed_here(60, 60)
    # A first poll: most items are new; workers take the matching off the storage thread.
    assert route.next_executor() is pool


def test_what_workers_send_back_pickles_as_class_and_arguments() -> None:
    """Items and match results (with their hits and topic scores) survive the trip from a
    worker unchanged, and travel as constructor arguments, not per-instance field lookups."""
    import pickle

    from monitor.match import Matcher
    from monitor.parsejob import parse_and_normalise
    from monitor.watchlist import load_watchlist

    matcher = Matcher.compile(load_watchlist(ROOT / "config" / "watchlist.yaml"), None)
    parsed = parse_and_normalise(
        rss(1, range(6)), "https://a.example/feed.xml", {}, BASE, 100, None
    )
    results = [matcher.match(i) for i in parsed.items]
    matched = [r for r in results if r.matched]
    assert matched and all(r.hits and r.topic_scores for r in matched)
    for record in [*parsed.items, *results, *matched[0].hits, *matched[0].topic_scores]:
        assert pickle.loads(pickle.dumps(record)) == record
        cls, arguments = record.__reduce__()
        assert cls is type(record) and cls(*arguments) == record


def test_entries_a_feed_stored_already_are_left_out_before_normalising() -> None:
    from monitor.parsejob import parse_and_normalise

    asked: list[list[str]] = []

    def known(identities: Any) -> set[str]:
        asked.append(list(identities))
        return {"f1-i0", "f1-i1", "f9-i9"} & set(identities)

    body = rss(1, range(6))
    full = parse_and_normalise(body, "https://a.example/feed.xml", {}, BASE, 100, None)
    parsed = parse_and_normalise(
        body, "https://a.example/feed.xml", {}, BASE, 100, None, known=known
    )
    assert asked == [[f"f1-i{n}" for n in range(6)]]
    assert parsed.known_left_out == 2
    assert parsed.items == full.items[2:]


def test_a_cycle_of_many_first_polls_parses_in_workers_from_its_first_body() -> None:
    from monitor.pipeline import ParseRoute

    pool = object()
    route = ParseRoute(lambda: pool, threshold=3, first_polls=3)  # type: ignore[arg-type,return-value]
    assert [route.next_executor() for _ in range(4)] == [pool] * 4
    few = ParseRoute(lambda: pool, threshold=3, first_polls=2)  # type: ignore[arg-type,return-value]
    assert few.next_executor() is None, "two new feeds: the storage thread parses them"
    broken = ParseRoute(lambda: pool, threshold=3, first_polls=3)  # type: ignore[arg-type,return-value]
    broken.broken()
    assert broken.next_executor() is None, "a dead pool is not asked again"


def test_feeds_say_whether_they_were_ever_fetched(engine: Engine) -> None:
    from monitor.settings import FeedSpec
    from monitor.types import FeedUpdateIntent

    storage = Storage(engine)
    urls = ["https://first.example/feed.xml", "https://second.example/feed.xml"]
    storage.sync_feeds([FeedSpec(u, None, None, True, (), None) for u in urls], BASE)
    a, b = storage.selected_feeds(urls)
    assert not a.fetched_before and not b.fetched_before
    storage.update_feeds(
        [FeedUpdateIntent(feed_id=a.id, fetched_at=BASE, next_fetch_at=BASE, http_status=200)]
    )
    failed = FeedUpdateIntent(
        feed_id=b.id,
        fetched_at=BASE,
        next_fetch_at=BASE,
        ok=False,
        http_status=500,
        error="HTTP 500",
    )
    storage.update_feeds([failed])
    by_url = {f.url: f for f in storage.due_feeds(BASE, 10)}
    assert by_url[urls[0]].fetched_before and not by_url[urls[1]].fetched_before


def test_a_first_poll_does_not_ask_which_items_are_stored_yet_adds_none_twice(
    engine: Engine,
) -> None:
    """A feed never fetched before has nothing stored, so saving its first poll skips the
    known-identities query. Should items be stored all the same (a crash between saving
    them and recording the fetch), the insert still skips them and counts only new ones."""
    from monitor.parsejob import parse_and_normalise
    from monitor.pipeline import CycleDeps, _store
    from monitor.settings import FeedSpec, MonitorSettings

    settings = MonitorSettings()
    storage = Storage(engine, settings.stories)
    url = "https://firstpoll.example/feed.xml"
    storage.sync_feeds([FeedSpec(url, None, None, True, (), None)], BASE)
    [feed] = storage.selected_feeds([url])
    assert not feed.fetched_before
    deps = CycleDeps(storage, None, None, settings, lambda: BASE)  # type: ignore[arg-type]
    asked: list[list[str]] = []

    class Asking:
        def __init__(self, unit: Any) -> None:
            self.unit = unit

        def known_identities(self, feed_id: int, identities: Any) -> set[str]:
            asked.append(list(identities))
            return self.unit.known_identities(feed_id, identities)  # type: ignore[no-any-return]

        def save_items(self, *args: Any) -> Any:
            return self.unit.save_items(*args)

    def save(polled: Any, items: range) -> int:
        parsed = parse_and_normalise(rss(feed.id, items), url, {}, BASE, 100, None)
        with storage.saving() as unit:
            return _store(deps, Asking(unit), polled, parsed, BASE).new_items

    assert save(feed, range(3)) == 3 and asked == []
    assert save(feed, range(5)) == 2 and asked == [], "the crash case: stored ones skipped"
    assert save(replace(feed, fetched_before=True), range(6)) == 1
    assert asked == [[f"f{feed.id}-i{n}" for n in range(6)]]
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(items)).scalar() == 6


def _instant_rss(url: str) -> bytes:
    return rss(int(url.split("bounded")[1].split(".")[0]), range(3))


def test_feeds_between_fetch_and_storage_are_bounded(sqlite_engine: Engine) -> None:
    """However fast fetches come back, at most 2 × concurrency feeds wait for parsing and
    storage at once (fetched bodies and parsed items are not all held in memory)."""
    import asyncio

    from monitor.pipeline import CycleDeps, FeedOutcome, run_cycle
    from monitor.settings import FeedSpec, MonitorSettings
    from monitor.types import Admission, FetchResult

    settings = MonitorSettings.model_validate({"http": {"concurrency": 3}})
    storage = Storage(sqlite_engine, settings.stories)
    specs = [
        FeedSpec(f"https://bounded{f}.example/feed.xml", None, None, True, (), None)
        for f in range(40)
    ]
    storage.sync_feeds(specs, BASE)
    active, most = 0, 0

    class InstantFetcher:
        """Answers at once; takes its place when its request would go out, as Fetcher does."""

        async def fetch(
            self,
            url: str,
            *,
            etag: str | None = None,
            last_modified: str | None = None,
            admission: Admission | None = None,
        ) -> FetchResult:
            nonlocal active, most
            if admission is not None:
                await admission.enter()
            active += 1
            most = max(most, active)
            headers = {"content-type": "application/rss+xml"}
            return FetchResult(url, 200, headers, _instant_rss(url), None, None)

    def done(outcome: FeedOutcome) -> None:
        nonlocal active
        active -= 1

    deps = CycleDeps(
        storage, InstantFetcher(), None, settings, lambda: BASE, on_feed=done, parallel_from=10**6
    )
    report = asyncio.run(run_cycle(deps, storage.selected_feeds()))
    assert (report.count("fetched"), report.new_items) == (40, 120)
    assert most == 6


def _cycle_over_hosts(
    engine: Engine, settings_http: dict[str, object], urls: list[str], limit_s: float = 30
) -> list[str]:
    """Run one cycle with the real fetcher over `urls`; the hosts of the finished feeds, in
    order (the cycle must end within `limit_s`: a deadlock fails instead of hanging)."""
    import asyncio

    from monitor.fetch import Fetcher
    from monitor.pipeline import CycleDeps, run_cycle
    from monitor.settings import FeedSpec, MonitorSettings

    http = {**settings_http, "allow_private_networks": ["127.0.0.0/8"]}
    settings = MonitorSettings.model_validate({"http": http})
    storage = Storage(engine, settings.stories)
    storage.sync_feeds([FeedSpec(u, None, None, True, (), None) for u in urls], BASE)
    finished: list[str] = []

    async def cycle() -> None:
        async with Fetcher(settings.http) as fetcher:
            deps = CycleDeps(
                storage,
                fetcher,
                None,
                settings,
                lambda: BASE,
                on_feed=lambda o: finished.append(o.url.split("/")[2].split(":")[0]),
                parallel_from=10**6,
            )
            await asyncio.wait_for(run_cycle(deps, storage.selected_feeds()), limit_s)

    asyncio.run(cycle())
    return finished


def test_feeds_queued_behind_a_slow_host_do_not_hold_up_other_hosts(
    sqlite_engine: Engine,
) -> None:
    """The bound on feeds in flight counts a feed from its request, not while it waits for
    its host: eight feeds of a slow host listed first must not delay another host's."""
    hosts = ("127.0.0.1", "127.0.0.2")
    with FeedServer(hosts=hosts) as server:
        urls = []
        for n, (host, delay) in enumerate([(hosts[0], 0.5)] * 8 + [(hosts[1], 0.0)] * 8):
            server.add(f"/h{n}.xml", body=rss(n, range(2)), delay=delay)
            urls.append(server.url(f"/h{n}.xml", host=host))
        finished = _cycle_over_hosts(sqlite_engine, {"concurrency": 2, "per_host": 1}, urls)
    assert len(finished) == 16
    # The fast host's eight feeds are done before the slow host's second one (each of
    # those takes 0.5 s, one at a time); counted from the start of the wait, the slow
    # host's queue would have held every place until five of its feeds were done.
    assert finished.index(hosts[0], finished.index(hosts[0]) + 1) > max(
        i for i, h in enumerate(finished) if h == hosts[1]
    )


def test_feeds_redirected_to_a_busy_host_do_not_deadlock_the_cycle(
    sqlite_engine: Engine,
) -> None:
    """Feeds redirected to a host wait for its slot without holding their place, so the
    host's own feeds, which hold its slots while they wait for a place, get one (holding
    the place across the redirect, this cycle deadlocked and hit the time limit)."""
    hosts = ("127.0.0.1", "127.0.0.2")
    with FeedServer(hosts=hosts) as server:
        urls = []
        for n in range(6):  # on the first host, each moved to the second (slowly)
            server.add(f"/moved{n}.xml", body=rss(n, range(2)), delay=0.2)
            server.add(f"/r{n}.xml", redirect=server.url(f"/moved{n}.xml", host=hosts[1]))
            urls.append(server.url(f"/r{n}.xml", host=hosts[0]))
        for n in range(6):  # the second host's own feeds
            server.add(f"/own{n}.xml", body=rss(10 + n, range(2)))
            urls.append(server.url(f"/own{n}.xml", host=hosts[1]))
        finished = _cycle_over_hosts(
            sqlite_engine, {"concurrency": 1, "per_host": 1}, urls, limit_s=20
        )
    assert len(finished) == 12


def _running(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie waiting to be reaped counts as ended)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc (Linux)")
def test_worker_processes_end_when_their_parent_is_killed() -> None:
    code = """
import multiprocessing, os, time
from concurrent.futures import ProcessPoolExecutor
from monitor.parsejob import exit_with_parent
context = multiprocessing.get_context("spawn")
pool = ProcessPoolExecutor(2, mp_context=context, initializer=exit_with_parent,
                           initargs=(os.getpid(), 0.05))
pids = {f.result() for f in [pool.submit(os.getpid) for _ in range(8)]}
print(" ".join(map(str, sorted(pids))), flush=True)
time.sleep(60)
"""
    parent = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        workers = [int(p) for p in parent.stdout.readline().split()]
        assert workers and all(_running(p) for p in workers)
    finally:
        parent.kill()  # SIGKILL: no chance to shut the pool down
        parent.wait()
        parent.stdout.close()  # type: ignore[union-attr]
    deadline = time.monotonic() + 10
    while any(_running(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = [p for p in workers if _running(p)]
    for pid in left:  # do not leave them behind when the test fails
        os.kill(pid, signal.SIGKILL)
    assert left == []


class _CountingStorage:
    """A real Storage that counts its save transactions and can fail inside one."""

    def __init__(self, storage: Storage, fail_on_feed: int | None = None) -> None:
        self.storage = storage
        self.transactions = 0
        self.fail_on_feed = fail_on_feed

    def saving(self) -> Any:
        from contextlib import contextmanager

        @contextmanager
        def counted() -> Iterator[Any]:
            self.transactions += 1
            with self.storage.saving() as unit:
                yield _FailingUnit(unit, self.fail_on_feed)

        return counted()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.storage, name)


class _FailingUnit:
    def __init__(self, unit: Any, fail_on_feed: int | None) -> None:
        self.unit = unit
        self.fail_on_feed = fail_on_feed

    def known_identities(self, feed_id: int, identities: Any) -> set[str]:
        return self.unit.known_identities(feed_id, identities)  # type: ignore[no-any-return]

    def save_items(self, feed_id: int, *args: Any) -> Any:
        if feed_id == self.fail_on_feed:
            raise RuntimeError(f"disk trouble while saving feed {feed_id}")
        return self.unit.save_items(feed_id, *args)


def _saves_while_the_store_is_busy(
    engine: Engine,
    feeds_count: int,
    *,
    max_items: int = 5000,
    fail_at: int | None = None,
    host: str = "group",
) -> tuple[_CountingStorage, list[Any]]:
    """Queue `feeds_count` parsed feeds (3 items each) while the storage thread is busy, then
    let it go: what each save gave (a SaveReport or the exception it raised)."""
    import asyncio
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from monitor.parsejob import parse_and_normalise
    from monitor.pipeline import CycleDeps, SaveGroups
    from monitor.settings import FeedSpec, MonitorSettings

    settings = MonitorSettings()
    storage = _CountingStorage(Storage(engine, settings.stories))
    urls = [f"https://{host}{f}.example/feed.xml" for f in range(feeds_count)]
    storage.sync_feeds([FeedSpec(u, None, None, True, (), None) for u in urls], BASE)
    feeds = storage.selected_feeds(urls)
    storage.fail_on_feed = feeds[fail_at].id if fail_at is not None else None
    parsed = [parse_and_normalise(rss(f.id, range(3)), f.url, {}, BASE, 100, None) for f in feeds]
    release = threading.Event()

    async def cycle() -> list[Any]:
        with ThreadPoolExecutor(1) as store:
            deps = CycleDeps(storage, None, None, settings, lambda: BASE)  # type: ignore[arg-type]
            groups = SaveGroups(deps, store, max_items=max_items)
            busy = asyncio.get_running_loop().run_in_executor(store, release.wait)
            saves = [
                asyncio.create_task(groups.save(f, p, BASE))
                for f, p in zip(feeds, parsed, strict=True)
            ]
            await asyncio.sleep(0.05)  # every save is queued behind the busy storage thread
            release.set()
            await busy
            return await asyncio.gather(*saves, return_exceptions=True)

    return storage, asyncio.run(cycle())


def test_feeds_waiting_for_the_storage_thread_are_saved_in_one_transaction(
    engine: Engine,
) -> None:
    storage, reports = _saves_while_the_store_is_busy(engine, 6)
    assert [(r.new_items, r.new_matches) for r in reports] == [(3, 0)] * 6
    assert storage.transactions == 1
    assert count(engine, items) == 18
    assert len(storage.story_index.hints) == 18, "story hints recorded once committed"


def test_a_save_group_holds_at_most_max_items_but_always_one_feed(engine: Engine) -> None:
    storage, reports = _saves_while_the_store_is_busy(engine, 5, max_items=7)
    assert [r.new_items for r in reports] == [3] * 5
    assert storage.transactions == 3  # 3 + 3, 3 + 3, 3
    storage, reports = _saves_while_the_store_is_busy(engine, 2, max_items=1, host="big")
    assert [r.new_items for r in reports] == [3, 3]
    assert storage.transactions == 2 and count(engine, items) == 15 + 6


def test_a_failed_save_group_fails_each_of_its_feeds_and_keeps_none_of_their_rows(
    engine: Engine,
) -> None:
    storage, reports = _saves_while_the_store_is_busy(engine, 4, fail_at=2)
    assert storage.transactions == 1
    assert all(isinstance(r, RuntimeError) and "disk trouble" in str(r) for r in reports)
    assert count(engine, items) == 0
    assert storage.story_index.hints == {}
