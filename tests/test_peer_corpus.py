"""Robustness on feedparser's own test corpus: never crash; agree with feedparser on clean files."""

from __future__ import annotations

import html
import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import feedparser
import pytest

from monitor.errors import ParseError
from monitor.normalize import TITLE_MAX, UNTITLED, html_to_text, normalize_entries
from monitor.parse import parse_feed

CORPUS = (
    Path(__file__).resolve().parents[1] / ".." / "shared" / "peer-corpora" / "feedparser-6.0.14"
)
TESTS = CORPUS / "tests"
NOW = datetime(2030, 1, 1, tzinfo=UTC)
MAX_ITEMS = 500
_HEADER_RE = re.compile(rb"^Header:\s*([\w-]+):\s*(.*?)\s*$", re.MULTILINE)

if not TESTS.is_dir():
    pytest.skip(f"peer corpus not found at {TESTS}", allow_module_level=True)

DIRECTORIES = sorted(
    str(path.relative_to(TESTS))
    for path in TESTS.rglob("*")
    if path.is_dir() and any(path.iterdir())
)

#: Files where a difference from feedparser is intended, with the reason.
EXCLUDED: dict[str, str] = {
    "wellformed/sanitize/entry_title_crazy.xml": (
        "a <script> opened with line breaks before its '>': we drop the script's text, "
        "feedparser's sanitizer lets 'function executeMe() {' through into the title"
    ),
}


@dataclass(frozen=True)
class Outcome:
    """What happened to one file: our items, or our ParseError."""

    titles: tuple[str, ...] | None
    error: str | None


def served_headers(data: bytes) -> dict[str, str]:
    """The `Header:` lines of a corpus file, as feedparser's own test server sends them."""
    headers = {"content-type": "application/xml"}
    for name, value in _HEADER_RE.findall(data):
        headers[name.decode().lower()] = value.decode("latin-1")
    return headers


def ours(data: bytes, headers: dict[str, str]) -> Outcome:
    try:
        parsed = parse_feed(data, url="http://example.com/feed", headers=headers)
    except ParseError as e:
        return Outcome(titles=None, error=str(e))
    normalized = normalize_entries(parsed, now=NOW, max_items=MAX_ITEMS)
    return Outcome(titles=tuple(item.title for item in normalized.items), error=None)


def reference(data: bytes, headers: dict[str, str]) -> Any:
    return feedparser.parse(io.BytesIO(data), response_headers=headers)


def expected_titles(result: Any) -> list[str] | None:
    """feedparser's titles as text, or None when duplicate GUIDs make counts incomparable."""
    entries = list(result.entries)[:MAX_ITEMS]
    guids = [entry.get("id") for entry in entries if entry.get("id")]
    if len(guids) != len(set(guids)):
        return None
    titles: list[str] = []
    copies: set[tuple[str, ...]] = set()
    for entry in entries:
        key = tuple(str(entry.get(name) or "") for name in ("id", "link", "title", "summary"))
        if key in copies:
            continue  # an exact copy of an earlier entry: we drop it by design
        copies.add(key)
        titles.append(title_text(entry))
    return titles


def title_text(entry: Any) -> str:
    """feedparser's title through our html_to_text (escaped first when it is plain text)."""
    title = entry.get("title") or ""
    if entry.get("title_detail", {}).get("type") == "text/plain":
        title = html.escape(title, quote=False)
    return " ".join(html_to_text(title).split())[:TITLE_MAX].rstrip()


def compare(path: Path) -> str | None:
    """A description of what went wrong for one file, or None when all is well."""
    data = path.read_bytes()
    headers = served_headers(data)
    try:
        outcome = ours(data, headers)
    except Exception as e:  # the point of this test: anything but ParseError is a failure
        return f"raised {type(e).__name__}: {e}"
    result = reference(data, headers)
    if result.bozo:
        return None
    expected = expected_titles(result)
    if expected is None:
        return None
    if outcome.titles is None:
        if not expected and not result.get("version"):
            return None  # no feed root and no entries: rejecting it as "not a feed" is intended
        return f"ParseError on a clean feed: {outcome.error}"
    if len(outcome.titles) != len(expected):
        return f"{len(outcome.titles)} items, feedparser has {len(expected)}"
    for got, want in zip(outcome.titles, expected, strict=True):
        if got != want and not (not want and got):
            return f"title {got!r} != {want!r}"
    return None


@pytest.mark.parametrize("directory", DIRECTORIES)
def test_corpus_directory_parses_like_feedparser(directory: str) -> None:
    failures: list[str] = []
    for path in sorted((TESTS / directory).iterdir()):
        if not path.is_file():
            continue
        name = f"{directory}/{path.name}"
        if name in EXCLUDED:
            continue
        problem = compare(path)
        if problem is not None:
            failures.append(f"{name}: {problem}")
    assert not failures, f"{len(failures)} files disagree:\n" + "\n".join(failures)


def test_untitled_marker_is_not_a_feedparser_title() -> None:
    """Items without a title get a stand-in; the comparison above relies on it being non-empty."""
    assert UNTITLED
