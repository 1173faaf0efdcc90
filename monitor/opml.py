"""OPML import and export of feed lists (pure: text in, records out, and back)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

from monitor.errors import ConfigError


@dataclass(frozen=True, slots=True)
class OpmlFeed:
    url: str
    name: str | None
    tags: tuple[str, ...]


def read_opml(data: bytes, *, source: str) -> list[OpmlFeed]:
    """Every outline with an xmlUrl; parent outlines without one become tags."""
    if b"<!ENTITY" in data:
        raise ConfigError(f"{source}: entity declarations are not allowed in OPML")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise ConfigError(f"{source}: not valid OPML: {e}") from e
    body = root.find("body")
    if root.tag != "opml" or body is None:
        raise ConfigError(f"{source}: not an OPML document (no <opml><body>)")
    found: dict[str, OpmlFeed] = {}
    _walk(body, (), found)
    return list(found.values())


def _walk(node: ET.Element, tags: tuple[str, ...], found: dict[str, OpmlFeed]) -> None:
    for outline in node.findall("outline"):
        url = (outline.get("xmlUrl") or outline.get("xmlurl") or "").strip()
        label = (outline.get("title") or outline.get("text") or "").strip() or None
        if url:
            found.setdefault(url, OpmlFeed(url, label, tags))
        else:
            _walk(outline, (*tags, label) if label else tags, found)


def write_opml(feeds: Sequence[OpmlFeed], title: str) -> str:
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<opml version="2.0">',
        f"  <head><title>{_text(title)}</title></head>",
        "  <body>",
    ]
    for feed in feeds:
        name = feed.name or feed.url
        category = f" category={quoteattr(','.join(feed.tags))}" if feed.tags else ""
        lines.append(
            f'    <outline type="rss" text={quoteattr(name)} title={quoteattr(name)} '
            f"xmlUrl={quoteattr(feed.url)}{category}/>"
        )
    lines += ["  </body>", "</opml>", ""]
    return "\n".join(lines)


def _text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
