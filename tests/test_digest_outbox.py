"""The outbox on real SQLite and PostgreSQL: each match reaches each channel once, none is lost."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from alerts.model import Digest, Rendered
from alerts.service import cron_channels, deliver, preview, resend
from monitor.errors import ConfigError, DeliveryError
from monitor.settings import FileChannel, MonitorSettings
from monitor.store import digests as rows
from monitor.store.schema import digest_matches, digests, story_deliveries
from tests.digest_helpers import NOW, add_feed, add_story, matched_item

ENV: dict[str, str] = {}


def settings_for(tmp_path: Path, **extra: FileChannel) -> MonitorSettings:
    channels = {
        "files": FileChannel(kind="file", schedule="immediate", directory=str(tmp_path / "out")),
        **extra,
    }
    return MonitorSettings(channels=channels)


def settled(engine: Engine, channel: str) -> list[int]:
    with engine.connect() as conn:
        return sorted(
            conn.execute(
                select(digest_matches.c.match_id).where(digest_matches.c.channel == channel)
            ).scalars()
        )


def test_each_match_reaches_a_channel_once_across_deliveries(
    engine: Engine, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path)
    feed = add_feed(engine, "Kyiv Wire")
    _, m1 = matched_item(engine, feed, "Talks in Geneva", url="https://kw.example/1")
    _, m2 = matched_item(
        engine, feed, "Sanctions widened", url="https://kw.example/2", topics=("sanctions",)
    )

    first = deliver(engine, settings, now=NOW, trigger="immediate", env=ENV)
    assert [(r.status, r.entries) for r in first] == [("sent", 2)]
    again = deliver(engine, settings, now=NOW + timedelta(minutes=5), trigger="immediate", env=ENV)
    assert [r.status for r in again] == ["nothing"]
    assert settled(engine, "files") == [m1, m2]

    _, m3 = matched_item(
        engine,
        feed,
        "New round announced",
        url="https://kw.example/3",
        seen=NOW + timedelta(minutes=10),
    )
    third = deliver(engine, settings, now=NOW + timedelta(minutes=15), trigger="immediate", env=ENV)
    assert [(r.status, r.entries) for r in third] == [("sent", 1)]
    digest = _digest(engine, third[0].digest_id)
    assert [e.match_id for e in digest.entries] == [m3]
    assert digest.period_start == NOW  # the previous digest's end
    with engine.connect() as conn:
        assert [r.status for r in rows.list_digests(conn)] == ["sent", "sent"]


def _digest(engine: Engine, digest_id: int | None) -> Digest:
    assert digest_id is not None
    with engine.connect() as conn:
        record = rows.get_digest(conn, digest_id)
    assert record is not None
    return record.digest()


def test_two_channels_get_a_match_independently(engine: Engine, tmp_path: Path) -> None:
    daily = FileChannel(kind="file", schedule="0 7 * * *", directory=str(tmp_path / "daily"))
    settings = settings_for(tmp_path, daily=daily)
    assert cron_channels(settings) == [("daily", "0 7 * * *", "UTC")]
    feed = add_feed(engine, "Outlet")
    _, m1 = matched_item(engine, feed, "One")

    immediate = deliver(engine, settings, now=NOW, trigger="immediate", env=ENV)
    assert [r.channel for r in immediate] == ["files"]
    assert settled(engine, "daily") == []
    scheduled = deliver(engine, settings, now=NOW, trigger="schedule", channel="daily", env=ENV)
    assert [(r.channel, r.status) for r in scheduled] == [("daily", "sent")]
    assert settled(engine, "files") == settled(engine, "daily") == [m1]
    assert (tmp_path / "daily" / "2025-03-14").is_dir()


def test_filtered_out_matches_are_settled_under_a_skipped_digest(
    engine: Engine, tmp_path: Path
) -> None:
    cfg = FileChannel(
        kind="file", schedule="immediate", directory=str(tmp_path / "o"), min_score=10.0
    )
    settings = MonitorSettings(channels={"strict": cfg})
    feed = add_feed(engine, "Outlet")
    _, m1 = matched_item(engine, feed, "Weak match", score=1.0)
    reports = deliver(engine, settings, now=NOW, trigger="manual", env=ENV)
    assert [(r.status, r.matches) for r in reports] == [("skipped", 1)]
    assert settled(engine, "strict") == [m1]
    assert not (tmp_path / "o").exists()
    with engine.connect() as conn:
        assert rows.list_digests(conn) == []
        assert [r.status for r in rows.list_digests(conn, skipped=True)] == ["skipped"]


def test_story_grouping_and_updates_across_digests(engine: Engine, tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    story = add_story(engine, NOW - timedelta(hours=3))
    outlets = [add_feed(engine, name) for name in ("Wire A", "Paper B", "Radio C")]
    for i, feed in enumerate(outlets):
        matched_item(
            engine,
            feed,
            f"Envoys meet in Riyadh ({i})",
            story_id=story,
            seen=NOW - timedelta(hours=3, minutes=-10 * i),
            actors=("witkoff",),
        )
    (report,) = deliver(engine, settings, now=NOW, trigger="immediate", env=ENV)
    (entry,) = _digest(engine, report.digest_id).entries
    assert [s.feed_name for s in entry.sources] == ["Wire A", "Paper B", "Radio C"]
    assert entry.title == "Envoys meet in Riyadh (0)" and not entry.is_update

    # later coverage adding nothing new: settled, never repeated
    later = NOW + timedelta(hours=1)
    matched_item(
        engine,
        add_feed(engine, "Agency D"),
        "Envoys met in Riyadh",
        story_id=story,
        seen=later,
        actors=("witkoff",),
    )
    (quiet,) = deliver(engine, settings, now=later, trigger="immediate", env=ENV)
    assert quiet.status == "skipped"

    # coverage adding a watched actor: comes back as an update
    latest = NOW + timedelta(hours=2)
    _, m_new = matched_item(
        engine,
        add_feed(engine, "Daily E"),
        "Lavrov joins Riyadh talks",
        story_id=story,
        seen=latest,
        actors=("witkoff", "lavrov"),
    )
    (upd,) = deliver(engine, settings, now=latest, trigger="immediate", env=ENV)
    (entry,) = _digest(engine, upd.digest_id).entries
    assert entry.is_update and entry.new_actors == ("lavrov",) and entry.match_id == m_new
    assert entry.sources[0].feed_name == "Wire A" and len(entry.sources) == 5
    with engine.connect() as conn:
        told = conn.execute(
            select(story_deliveries.c.actors).where(story_deliveries.c.story_id == story)
        ).scalar_one()
    assert sorted(told) == ["lavrov", "witkoff"]


class Flaky:
    """A transport failing `failures` times, then recording what it sent."""

    def __init__(self, failures: int, permanent: bool = False) -> None:
        self.failures = failures
        self.permanent = permanent
        self.sent: list[tuple[int | None, str]] = []

    def send(self, digest: Digest, rendered: Rendered) -> None:
        if self.failures:
            self.failures -= 1
            raise DeliveryError(digest.channel, "server said 451", permanent=self.permanent)
        self.sent.append((digest.id, rendered.json))


def test_failed_delivery_is_retried_with_backoff_and_blocks_no_one(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = FileChannel(kind="file", schedule="immediate", directory=str(tmp_path / "ok"))
    settings = settings_for(tmp_path, other=other)
    flaky = Flaky(failures=2)
    import alerts.service as service

    real = service.transport_for  # type: ignore[attr-defined]
    monkeypatch.setattr(
        service,
        "transport_for",
        lambda name, cfg, env, **kw: flaky if name == "files" else real(name, cfg, env, **kw),
    )
    feed = add_feed(engine, "Outlet")
    matched_item(engine, feed, "One")
    reports = deliver(engine, settings, now=NOW, trigger="immediate", env=ENV)
    assert {r.channel: r.status for r in reports} == {"files": "failed", "other": "sent"}
    failed = next(r for r in reports if r.channel == "files")
    assert failed.retry_at == NOW + timedelta(seconds=60)

    # not yet due: nothing is re-sent and no new digest repeats the match
    early = deliver(engine, settings, now=NOW + timedelta(seconds=30), trigger="immediate", env=ENV)
    assert [r.status for r in early if r.channel == "files"] == ["nothing"]
    second = deliver(
        engine, settings, now=NOW + timedelta(seconds=61), trigger="immediate", env=ENV
    )
    files = [r for r in second if r.channel == "files"]
    assert [(r.status, r.resend) for r in files] == [("failed", True)]
    assert files[0].retry_at == NOW + timedelta(seconds=61 + 120)
    third = deliver(engine, settings, now=NOW + timedelta(hours=1), trigger="immediate", env=ENV)
    assert [(r.status, r.resend) for r in third if r.channel == "files"] == [("sent", True)]
    assert [d for d, _ in flaky.sent] == [failed.digest_id]
    with engine.connect() as conn:
        record = rows.get_digest(conn, failed.digest_id or 0)
        assert record is not None
        assert (record.status, record.attempts, record.last_error) == (
            "sent",
            3,
            "channel 'files': server said 451",
        )
        assert conn.execute(select(func.count()).select_from(digests)).scalar_one() == 2


def test_permanent_failure_waits_for_a_manual_resend(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(tmp_path)
    flaky = Flaky(failures=1, permanent=True)
    import alerts.service as service

    monkeypatch.setattr(service, "transport_for", lambda *a, **kw: flaky)
    matched_item(engine, add_feed(engine, "Outlet"), "One")
    (report,) = deliver(engine, settings, now=NOW, trigger="immediate", env=ENV)
    assert report.status == "failed" and report.retry_at is None
    later = deliver(engine, settings, now=NOW + timedelta(days=2), trigger="immediate", env=ENV)
    assert [r.status for r in later] == ["nothing"]
    manual = resend(engine, settings, report.digest_id or 0, now=NOW + timedelta(days=2), env=ENV)
    assert (manual.status, manual.resend) == ("sent", True)
    assert [d for d, _ in flaky.sent] == [report.digest_id]


def test_file_resend_overwrites_the_same_files(engine: Engine, tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    matched_item(engine, add_feed(engine, "Outlet"), "One", url="https://o.example/1")
    (report,) = deliver(engine, settings, now=NOW, trigger="immediate", env=ENV)
    root = tmp_path / "out" / "files"
    before = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
    contents = {p: (root / p).read_bytes() for p in before}
    assert [str(p) for p in before] == [
        f"2025-03-14/digest-{report.digest_id}.html",
        f"2025-03-14/digest-{report.digest_id}.json",
        f"2025-03-14/digest-{report.digest_id}.md",
        "feed.atom",
    ]
    again = resend(engine, settings, report.digest_id or 0, now=NOW + timedelta(hours=1), env=ENV)
    assert again.status == "sent"
    after = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
    assert after == before
    assert {p: (root / p).read_bytes() for p in after} == contents


def test_preview_records_nothing(engine: Engine, tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    matched_item(engine, add_feed(engine, "Outlet"), "Talks resume", url="https://o.example/1")
    text = preview(engine, settings, now=NOW, fmt="md")
    assert "Talks resume" in text
    assert settled(engine, "files") == []
    assert not (tmp_path / "out").exists()
    with pytest.raises(ConfigError, match="no such channel"):
        preview(engine, settings, now=NOW, channel="nope")


def test_unknown_or_disabled_channel_is_a_clear_error(engine: Engine, tmp_path: Path) -> None:
    off = FileChannel(kind="file", enabled=False)
    settings = settings_for(tmp_path, off=off)
    with pytest.raises(ConfigError, match=r"channels\.off: the channel is disabled"):
        deliver(engine, settings, now=NOW, trigger="manual", channel="off", env=ENV)
    with pytest.raises(ConfigError, match=r"channels\.ghost: no such channel"):
        deliver(engine, settings, now=NOW, trigger="manual", channel="ghost", env=ENV)
