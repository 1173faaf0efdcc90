"""Email delivery against a real SMTP server (aiosmtpd on loopback): MIME, headers, retries."""

from __future__ import annotations

import email
import os
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import timedelta
from email.message import Message
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import Engine, select

from alerts.service import deliver
from monitor.settings import EmailChannel, MonitorSettings
from monitor.store import digests as rows
from monitor.store import make_engine, upgrade
from monitor.store.schema import digest_matches
from tests.digest_helpers import NOW, add_feed, matched_item

ROOT = Path(__file__).resolve().parent.parent


class Recorder:
    """SMTP handler keeping every message; can refuse the first attempts or kill a process."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.refuse: list[str] = []
        self.kill_pid: int | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if self.refuse:
            return self.refuse.pop(0)
        self.messages.append(email.message_from_bytes(envelope.content, policy=default_policy))
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        if self.kill_pid is not None:
            os.kill(self.kill_pid, signal.SIGKILL)
            self.kill_pid = None
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp() -> Iterator[tuple[Recorder, int]]:
    handler = Recorder()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def addresses(msg: Message, name: str) -> list[Any]:
    """The parsed addresses of an address header (the default policy gives them)."""
    header: Any = msg[name]
    return list(header.addresses)


def email_settings(port: int, **kw: Any) -> MonitorSettings:
    channel = EmailChannel(
        kind="email",
        host="127.0.0.1",
        port=port,
        timeout=10,
        recipients=("analyst@example.org", "Аналітик <desk@example.org>"),
        sender="Монітор <monitor@news.example.org>",
        schedule="immediate",
        title="Переговоры: digest",
        **kw,
    )
    return MonitorSettings(channels={"email": channel})


def test_mime_structure_and_headers(engine: Engine, smtp: tuple[Recorder, int]) -> None:
    handler, port = smtp
    feed = add_feed(engine, "Українська правда")
    matched_item(
        engine,
        feed,
        "Зеленський і Путін: переговори в Стамбулі",
        url="https://up.example/1",
        snippet="**переговори** тривають",
    )
    matched_item(
        engine,
        feed,
        "Hostile\r\nBcc: victim@example.org\r\n\r\n<b>body</b>",
        url="https://up.example/2",
    )
    (report,) = deliver(engine, email_settings(port), now=NOW, trigger="immediate", env={})
    assert report.status == "sent", report.error
    (msg,) = handler.messages
    assert msg.get_content_type() == "multipart/alternative"
    parts = [p.get_content_type() for p in msg.iter_parts()]  # type: ignore[attr-defined]
    assert parts == ["text/plain", "text/html"]
    assert msg["Message-ID"] == f"<digest-{report.digest_id}.email@news.example.org>"
    assert msg["Subject"] == "Переговоры: digest: 2 new matches (until 2025-03-14 07:00 UTC)"
    assert msg["Date"] == "Fri, 14 Mar 2025 07:00:00 +0000"
    assert addresses(msg, "From")[0].display_name == "Монітор"
    assert [a.addr_spec for a in addresses(msg, "To")] == [
        "analyst@example.org",
        "desk@example.org",
    ]
    assert msg["Bcc"] is None
    assert handler.envelopes[0] == (
        "monitor@news.example.org",
        ["analyst@example.org", "desk@example.org"],
    )
    raw = msg.as_string()
    assert "=?utf-8?" in raw.split("\n\n", 1)[0].lower()  # non-ASCII headers are encoded
    text = msg.get_body(("plain",)).get_content()  # type: ignore[attr-defined]
    html = msg.get_body(("html",)).get_content()  # type: ignore[attr-defined]
    assert "Зеленський і Путін" in text and "Зеленський і Путін" in html
    assert "Bcc: victim" not in "\n".join(
        line for line in text.splitlines() if line.startswith("Bcc")
    )
    assert "<b>body</b>" not in html and "&lt;b&gt;body&lt;/b&gt;" in html
    assert "<mark" in html


def test_refused_then_accepted_gives_one_delivery(
    engine: Engine, smtp: tuple[Recorder, int]
) -> None:
    handler, port = smtp
    handler.refuse = ["451 4.3.0 Try again later"]
    settings = email_settings(port)
    matched_item(engine, add_feed(engine, "Wire"), "Talks resume")
    (first,) = deliver(engine, settings, now=NOW, trigger="immediate", env={})
    assert first.status == "failed" and "451" in (first.error or "")
    assert first.retry_at == NOW + timedelta(seconds=60)
    (second,) = deliver(
        engine, settings, now=NOW + timedelta(minutes=2), trigger="immediate", env={}
    )
    assert (second.status, second.resend, second.digest_id) == ("sent", True, first.digest_id)
    assert len(handler.messages) == 1
    with engine.connect() as conn:
        history = rows.list_digests(conn)
    assert [(r.status, r.attempts) for r in history] == [("sent", 2)]
    (third,) = deliver(engine, settings, now=NOW + timedelta(hours=1), trigger="immediate", env={})
    assert third.status == "nothing" and len(handler.messages) == 1


def test_permanent_refusal_is_not_retried(engine: Engine, smtp: tuple[Recorder, int]) -> None:
    handler, port = smtp
    handler.refuse = ["554 5.7.1 Rejected"]
    matched_item(engine, add_feed(engine, "Wire"), "Talks resume")
    (report,) = deliver(engine, email_settings(port), now=NOW, trigger="immediate", env={})
    assert report.status == "failed" and report.retry_at is None
    later = deliver(
        engine, email_settings(port), now=NOW + timedelta(days=1), trigger="immediate", env={}
    )
    assert [r.status for r in later] == ["nothing"] and handler.messages == []


def test_unreachable_server_is_a_transient_failure(engine: Engine) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    matched_item(engine, add_feed(engine, "Wire"), "Talks resume")
    (report,) = deliver(engine, email_settings(port), now=NOW, trigger="immediate", env={})
    assert report.status == "failed" and report.retry_at is not None
    assert f"127.0.0.1:{port}" in (report.error or "")


CHILD = textwrap.dedent(
    """
    import sys
    from datetime import datetime
    from alerts.service import deliver
    from monitor.settings import EmailChannel, MonitorSettings
    from monitor.store import make_engine

    url, port, now = sys.argv[1], int(sys.argv[2]), datetime.fromisoformat(sys.argv[3])
    channel = EmailChannel(kind="email", host="127.0.0.1", port=port, timeout=10,
                           recipients=("analyst@example.org",), schedule="immediate")
    engine = make_engine(url)
    print(deliver(engine, MonitorSettings(channels={"email": channel}), now=now,
                  trigger="immediate", env={}))
    """
)


@pytest.mark.slow
def test_sigkill_between_send_and_mark_resends_once_with_same_message_id(
    tmp_path: Path, smtp: tuple[Recorder, int]
) -> None:
    handler, port = smtp
    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    engine = make_engine(url)
    upgrade(engine)
    feed = add_feed(engine, "Wire")
    ids = [
        matched_item(engine, feed, f"Report {i}", url=f"https://w.example/{i}")[1] for i in range(3)
    ]
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, url, str(port), NOW.isoformat()],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    handler.kill_pid = child.pid
    _, err = child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL, err.decode()
    assert len(handler.messages) == 1
    with engine.connect() as conn:
        (record,) = rows.list_digests(conn)
    assert record.status == "pending"  # sent, but the mark never happened

    channel = EmailChannel(
        kind="email",
        host="127.0.0.1",
        port=port,
        timeout=10,
        recipients=("analyst@example.org",),
        schedule="immediate",
    )
    settings = MonitorSettings(channels={"email": channel})
    soon = deliver(engine, settings, now=NOW + timedelta(seconds=30), trigger="immediate", env={})
    assert [r.status for r in soon] == ["nothing"]  # still within the send lease
    later = NOW + timedelta(minutes=10)
    reports = deliver(engine, settings, now=later, trigger="immediate", env={})
    assert [(r.status, r.resend, r.digest_id) for r in reports] == [("sent", True, record.id)]
    assert len(handler.messages) == 2
    first, second = handler.messages
    assert first["Message-ID"] == second["Message-ID"] == record.message_id
    assert first["Subject"] == second["Subject"]
    with engine.connect() as conn:
        settled = sorted(conn.execute(select(digest_matches.c.match_id)).scalars())
        (final,) = rows.list_digests(conn)
    assert settled == ids and final.status == "sent"
    again = deliver(engine, settings, now=later + timedelta(hours=1), trigger="immediate", env={})
    assert [r.status for r in again] == ["nothing"] and len(handler.messages) == 2
    engine.dispose()
