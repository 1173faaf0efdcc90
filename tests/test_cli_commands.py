"""The commands scripts rely on, run as a user would: real server, real database, subprocesses."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from tests.feedserver import FeedServer
from tests.test_pipeline import ROOT, make_config, rss, run_cli

FIXTURES = ROOT / "tests" / "data" / "feeds"

#: How each fixture comes out of a poll through the whole pipeline.
EXPECTED = {
    "atom10.xml": "fetched",
    "billion_laughs.xml": "fetched",
    "control_chars.xml": "fetched",
    "cp1251.xml": "fetched",
    "dates.xml": "fetched",
    "duplicate_guids.xml": "fetched",
    "empty_channel.xml": "fetched",
    "html_page.html": "failed",
    "jsonfeed10.json": "fetched",
    "jsonfeed11.json": "fetched",
    "malformed.xml": "fetched",
    "rss10.rdf": "fetched",
    "rss20.xml": "fetched",
    "utf8_bom.xml": "fetched",
}
CONTENT_TYPES = {
    ".json": "application/feed+json",
    ".html": "text/html; charset=utf-8",
    ".rdf": "application/rdf+xml",
}


def test_every_fixture_feed_served_over_http_goes_through_the_pipeline(
    feed_server: FeedServer, tmp_path: Path
) -> None:
    assert sorted(EXPECTED) == sorted(p.name for p in FIXTURES.iterdir())
    urls = {}
    for path in sorted(FIXTURES.iterdir()):
        content_type = CONTENT_TYPES.get(path.suffix, "application/xml")
        if path.name == "cp1251.xml":
            content_type = "application/rss+xml; charset=windows-1251"
        feed_server.add(f"/{path.name}", body=path.read_bytes(), content_type=content_type)
        urls[path.name] = feed_server.url(f"/{path.name}")
    config_dir = make_config(tmp_path / "c", f"sqlite:///{tmp_path / 'f.db'}", list(urls.values()))
    result = run_cli("poll", "--config-dir", str(config_dir), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    status = json.loads(
        run_cli(
            "feeds", "status", "--format", "json", "--config-dir", str(config_dir), cwd=tmp_path
        ).stdout
    )
    by_url = {row["url"]: row for row in status}
    for name, expected in EXPECTED.items():
        row = by_url[urls[name]]
        outcome = "failed" if row["error_count"] else "fetched"
        assert outcome == expected, (name, row["last_error"])
    assert "not a feed" in (by_url[urls["html_page.html"]]["last_error"] or "")
    with closing(sqlite3.connect(tmp_path / "f.db")) as conn, conn:
        titles = [
            t
            for (t,) in conn.execute(
                "SELECT i.title FROM items i JOIN feeds f ON f.id = i.feed_id WHERE f.url = ?",
                (urls["cp1251.xml"],),
            )
        ]
        stored = [t for (t,) in conn.execute("SELECT title || summary FROM items")]
    assert titles and all(re.search("[а-яА-Я]{3}", t) for t in titles), titles
    assert not any("\x00" in t or "\ufffd" in t for t in stored)


def test_matches_rematch_and_stories_commands(feed_server: FeedServer, tmp_path: Path) -> None:
    feed_server.add("/a.xml", body=rss(1, range(6)))
    feed_server.add("/b.xml", body=rss(2, range(6)))
    config_dir = make_config(
        tmp_path / "c",
        f"sqlite:///{tmp_path / 'm.db'}",
        [feed_server.url("/a.xml"), feed_server.url("/b.xml")],
    )
    c = str(config_dir)
    assert run_cli("poll", "--config-dir", c, cwd=tmp_path).returncode == 0

    listed = json.loads(
        run_cli("matches", "--format", "json", "--config-dir", c, cwd=tmp_path).stdout
    )
    assert len(listed) == 4  # items 0 and 3 of each feed are topical
    for match in listed:
        assert {
            "link",
            "title",
            "feed",
            "published",
            "first_seen",
            "topics",
            "actors",
            "score",
        } <= set(match)
        assert match["topics"] and match["score"] > 0
        assert "utm_source" not in match["link"]
    csv_out = run_cli("matches", "--format", "csv", "--config-dir", c, cwd=tmp_path).stdout
    assert csv_out.splitlines()[0].startswith("first_seen,published,score")
    only = json.loads(
        run_cli(
            "matches",
            "--format",
            "json",
            "--topic",
            "no_such_topic",
            "--config-dir",
            c,
            cwd=tmp_path,
        ).stdout
    )
    assert only == []

    dry = run_cli("rematch", "--since", "7d", "--dry-run", "--config-dir", c, cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "would change: 0 added, 0 changed, 0 removed" in dry.stdout

    stories = json.loads(
        run_cli(
            "stories", "--since", "3000d", "--format", "json", "--config-dir", c, cwd=tmp_path
        ).stdout
    )
    assert stories, "every stored item belongs to a story"
    for story in stories:
        assert story["items"] and {"link", "title", "feed"} <= set(story["items"][0])
    shown = run_cli("stories", "show", str(stories[0]["id"]), "--config-dir", c, cwd=tmp_path)
    assert shown.returncode == 0 and stories[0]["items"][0]["title"][:20] in shown.stdout


def test_feeds_add_validates_and_keeps_comments(tmp_path: Path) -> None:
    config_dir = make_config(tmp_path / "c", f"sqlite:///{tmp_path / 'a.db'}", [])
    feeds = config_dir / "feeds.yaml"
    feeds.write_text("# my feeds, hand-written\nfeeds: []\n", encoding="utf-8")
    c = str(config_dir)
    added = run_cli(
        "feeds",
        "add",
        "https://news.example/rss",
        "--name",
        "Example",
        "--tag",
        "wire",
        "--interval",
        "30m",
        "--config-dir",
        c,
        cwd=tmp_path,
    )
    assert added.returncode == 0, added.stderr
    text = feeds.read_text(encoding="utf-8")
    assert text.startswith("# my feeds, hand-written") and "https://news.example/rss" in text
    bad = run_cli("feeds", "add", "ftp://news.example/rss", "--config-dir", c, cwd=tmp_path)
    assert bad.returncode == 2 and "expected an http(s) URL" in bad.stderr
    assert "ftp://" not in feeds.read_text(encoding="utf-8")  # the file was restored
    again = run_cli("feeds", "add", "https://news.example/rss", "--config-dir", c, cwd=tmp_path)
    assert again.returncode == 1 and "already" in again.stderr


@pytest.mark.slow
def test_run_polls_on_schedule_and_stops_cleanly_on_sigterm(
    feed_server: FeedServer, tmp_path: Path
) -> None:
    feed_server.add("/a.xml", body=rss(1, range(3)))
    config_dir = make_config(
        tmp_path / "c", f"sqlite:///{tmp_path / 'r.db'}", [feed_server.url("/a.xml")]
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MONITOR_SCHEDULE__TICK": "1s", "COLUMNS": "200"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor", "--config-dir", str(config_dir), "run"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while feed_server.hits("/a.xml") < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.5)  # let the cycle finish and print its line
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "1 feeds: 1 fetched, 0 not modified, 0 failed; 3 new items" in out
    assert "monitor stopped" in out
    health = run_cli("health", "--max-age", "5m", "--config-dir", str(config_dir), cwd=tmp_path)
    assert health.returncode == 0, health.stderr
    # a health check runs every minute: healthy, it logs nothing (the default level is INFO)
    assert health.stderr == "", health.stderr


def test_match_url_fetches_a_feed_or_a_page_and_explains(
    feed_server: FeedServer, tmp_path: Path
) -> None:
    feed_server.add("/feed.xml", body=rss(1, range(1)))  # item 0 is topical
    feed_server.add(
        "/page.html",
        body=b"<html><head><title>Weather</title></head><body><p>Light winds today.</p></body>"
        b"</html>",
        content_type="text/html; charset=utf-8",
    )
    config_dir = make_config(tmp_path / "c", f"sqlite:///{tmp_path / 'u.db'}", [])
    c = str(config_dir)
    feed = run_cli(
        "match",
        "--url",
        feed_server.url("/feed.xml"),
        "--format",
        "json",
        "--config-dir",
        c,
        cwd=tmp_path,
    )
    assert feed.returncode == 0, feed.stderr
    verdict = json.loads(feed.stdout)
    assert verdict["matched"] is True
    assert any(h["field"] == "title" for h in verdict["hits"])
    page = run_cli(
        "match",
        "--url",
        feed_server.url("/page.html"),
        "--format",
        "json",
        "--config-dir",
        c,
        cwd=tmp_path,
    )
    assert page.returncode == 0, page.stderr
    assert json.loads(page.stdout)["matched"] is False
    strict = tmp_path / "strict"
    strict.mkdir()
    (strict / "monitor.yaml").write_text(f"database:\n  url: sqlite:///{tmp_path / 's.db'}\n")
    refused = run_cli(
        "match", "--url", feed_server.url("/feed.xml"), "--config-dir", str(strict), cwd=tmp_path
    )
    assert refused.returncode != 0 and "loopback" in refused.stderr


def _all_commands() -> list[list[str]]:
    """Every leaf command of the CLI, walked from the Click tree Typer builds."""
    import typer.main

    from monitor.cli import app

    def walk(command: Any, path: list[str]) -> list[list[str]]:
        if hasattr(command, "commands"):  # a group (Typer vendors its own click)
            found = [path] if command.invoke_without_command and path else []
            for name, sub in command.commands.items():
                found += walk(sub, [*path, name])
            return found
        return [path]

    return walk(typer.main.get_command(app), [])


@pytest.mark.parametrize("command", _all_commands(), ids=" ".join)
def test_every_command_takes_config_dir(command: list[str]) -> None:
    from typer.testing import CliRunner

    from monitor.cli import app

    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "--config-dir" in result.output
