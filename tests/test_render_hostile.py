"""Hostile feed text is harmless in every format: scripts, links, header injection, RTL marks."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from alerts.digest import build_digest
from alerts.model import Digest, FailingFeed, PendingMatch, Rendered
from alerts.render import render, render_atom, subject_line
from alerts.transports.email import build_message
from monitor.settings import EmailChannel, FileChannel

NOW = datetime(2025, 3, 14, 7, 0, tzinfo=UTC)
RLO = "\u202e"
HOSTILE_TITLES = [
    '<script>alert("t")</script>Talks',
    "Ceasefire\r\nBcc: victim@example.org\r\n\r\nbody",
    f"Invoice {RLO}fdp.exe talks",
    "x" * 10_000,
    "[click](javascript:alert(1)) <img src=x onerror=alert(1)>",
]


def hostile_digest() -> Digest:
    pending = [
        PendingMatch(
            match_id=i,
            item_id=i,
            score=3.0,
            topics=("<b>negotiations</b>",),
            actors=("putin",),
            terms=("talks",),
            snippet=f"**<script>bad()</script>** said {RLO}evil\u2066 and <iframe src=x>",
            matched_at=NOW,
            title=title,
            url=url,
            published_at=None,
            first_seen_at=NOW - timedelta(minutes=i),
            feed_id=1,
            feed_name=f"Feed\r\nX-Injected: yes {RLO}",
        )
        for i, (title, url) in enumerate(
            zip(
                HOSTILE_TITLES,
                [
                    "javascript:alert(1)",
                    "data:text/html;base64,PHNjcmlwdD4=",
                    "JaVaScRiPt:alert(2)",
                    "https://ok.example/a b",
                    'https://ok.example/"onmouseover="x',
                ],
                strict=True,
            ),
            start=1,
        )
    ]
    failing = [FailingFeed("<script>f()</script>", "https://bad.example", NOW, 3, "<b>500</b>")]
    cfg = FileChannel(kind="file", schedule="immediate", title=f"Digest\r\nBcc: x@y {RLO}")
    digest = build_digest("files", cfg, pending, failing, None, NOW)
    assert digest is not None
    return digest.with_identity(7, "<digest-7.files@localhost>")


@pytest.fixture(scope="module")
def outputs() -> dict[str, str]:
    digest = hostile_digest()
    out = {fmt: render(digest, fmt) for fmt in ("md", "html", "text", "json")}
    out["atom"] = render_atom("files", digest.title, [digest], limit=10, updated=NOW)
    return out


@pytest.mark.parametrize("fmt", ["md", "html", "text", "json", "atom"])
def test_direction_overrides_never_survive(outputs: dict[str, str], fmt: str) -> None:
    assert RLO not in outputs[fmt] and "\u2066" not in outputs[fmt]
    assert "\\u202e" not in outputs[fmt].lower()


@pytest.mark.parametrize("fmt", ["md", "html", "atom"])
def test_no_markup_from_feed_text(outputs: dict[str, str], fmt: str) -> None:
    text = outputs[fmt]
    # a tag can only form from an unescaped "<" (Markdown escapes it as "\<")
    assert not re.search(r"(?<!\\)<\s*(script|iframe|img|b)\b", text, re.IGNORECASE)
    assert "onerror" not in re.sub(r"&lt;.*?&gt;|\\<.*?\\>", "", text)


@pytest.mark.parametrize("fmt", ["md", "html", "atom"])
def test_only_http_links_are_clickable(outputs: dict[str, str], fmt: str) -> None:
    text = outputs[fmt]
    if fmt == "md":
        links = re.findall(r"(?<!\\)\]\(([^)]*)\)", text)
    else:
        links = re.findall(r"href=\"([^\"]*)\"", text)
    assert links  # the one acceptable link is kept
    assert all(link.startswith("https://ok.example/") for link in links)
    assert all('"' not in link and " " not in link for link in links)


def test_json_drops_bad_links() -> None:
    data = hostile_digest().to_json()
    links = [e["link"] for s in data["sections"] for e in s["entries"]]
    assert sorted(links, key=str) == [None, None, None, None, 'https://ok.example/"onmouseover="x']


def test_html_escapes_and_marks_hits(outputs: dict[str, str]) -> None:
    html = outputs["html"]
    assert "&lt;script&gt;alert(&#34;t&#34;)&lt;/script&gt;Talks" in html
    assert '<mark style="background:#fff3a3;color:#000;padding:0 2px;">&lt;script&gt;bad()' in html
    assert "http://" not in html.replace("http://www.w3.org", "")  # no remote resources
    assert not re.search(r"<(link|img|script|iframe|object)\b", html, re.IGNORECASE)


def test_markdown_escapes_link_syntax(outputs: dict[str, str]) -> None:
    assert "\\[click\\]\\(javascript:alert\\(1\\)\\)" in outputs["md"]


def test_huge_title_is_truncated(outputs: dict[str, str]) -> None:
    for fmt, text in outputs.items():
        assert "x" * 301 not in text, fmt
        if fmt != "json":
            assert "x" * 250 in text, fmt


def test_newlines_never_split_lines_in_text(outputs: dict[str, str]) -> None:
    for fmt in ("md", "text"):
        lines = outputs[fmt].splitlines()
        assert not any(line.lstrip().startswith(("Bcc:", "X-Injected:")) for line in lines)


def test_atom_stays_well_formed(outputs: dict[str, str]) -> None:
    root = ET.fromstring(outputs["atom"].encode())
    assert all(el.tag.startswith("{http://www.w3.org/2005/Atom}") for el in root.iter())


def test_email_headers_cannot_be_injected() -> None:
    digest = hostile_digest()
    subject = subject_line(digest, "{title}: {count} ({period}) {unknown}")
    assert "\r" not in subject and "\n" not in subject and "{unknown}" in subject
    cfg = EmailChannel(kind="email", recipients=("a@example.org",), schedule="immediate")
    msg = build_message(digest, Rendered(subject, "t", "<p>h</p>", "m", "{}"), cfg)
    raw = msg.as_bytes()
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nBcc:" not in head and b"\r\nX-Injected" not in head
    assert msg["Bcc"] is None
