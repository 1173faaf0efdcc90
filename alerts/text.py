"""Pure helpers making feed text safe to show: links, direction marks, controls, length."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

#: Bidirectional embedding, override and isolate controls plus the bare direction marks:
#: feed text could use them to make a line read differently from what it holds.
_BIDI_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
#: C0/C1 controls and line/paragraph separators (tab and newline handled apart).
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_SPACES = re.compile(r"\s+")

MAX_TITLE = 300
MAX_SNIPPET = 800
MAX_NAME = 120


def neutralise(text: str) -> str:
    """Remove direction overrides/isolates and control characters; keep newlines and tabs."""
    return _CONTROLS.sub(" ", _BIDI_CONTROLS.sub("", text))


def one_line(text: str) -> str:
    """Neutralised text on a single line with runs of whitespace collapsed."""
    return _SPACES.sub(" ", neutralise(text)).strip()


def truncate(text: str, limit: int) -> str:
    """At most `limit` characters, cut at a word boundary when one is near, with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit * 0.8:
        cut = cut[:space]
    return cut.rstrip() + "…"


def clean_title(text: str | None, limit: int = MAX_TITLE) -> str:
    return truncate(one_line(text or ""), limit) or "(untitled)"


def clean_snippet(text: str | None, limit: int = MAX_SNIPPET) -> str:
    return truncate(one_line(text or ""), limit)


def safe_link(url: str | None) -> str | None:
    """The URL when it is an absolute http(s) URL free of whitespace and controls, else None."""
    if not url:
        return None
    url = url.strip()
    if _SPACES.search(url) or _CONTROLS.search(url) or _BIDI_CONTROLS.search(url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return url


def header_safe(text: str, limit: int = 200) -> str:
    """Single-line text for a mail header: no CR/LF or controls can survive."""
    return truncate(one_line(text), limit)


_HIT = re.compile(r"\*\*(.+?)\*\*")


def split_hits(snippet: str) -> list[tuple[str, bool]]:
    """Split a snippet with **hits** into (text, is_hit) runs, in order."""
    runs: list[tuple[str, bool]] = []
    pos = 0
    for m in _HIT.finditer(snippet):
        if m.start() > pos:
            runs.append((snippet[pos : m.start()], False))
        runs.append((m.group(1), True))
        pos = m.end()
    if pos < len(snippet):
        runs.append((snippet[pos:], False))
    return runs
