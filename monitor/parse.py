"""Feed bytes in, a ParsedFeed out: RSS, RDF and Atom through feedparser, JSON Feed by hand.

Every text field of a RawEntry leaves here as HTML: fields a feed marks as plain text are
escaped, so the normaliser can treat all of them the same way. The only exception raised
for bad input is ParseError.
"""

from __future__ import annotations

import html
import io
import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

import feedparser

from monitor.errors import ParseError
from monitor.fastparse import read_simple_feed, utc_datetime
from monitor.types import FeedKind, ParsedFeed, RawEntry

_JSON_FEED_PREFIX = "https://jsonfeed.org/version/"
_JSON_FEED_PREFIX_HTTP = "http://jsonfeed.org/version/"
_MAX_WARNING_CHARS = 300

#: A well-formed entity declaration; quoted values may hold ">".
_ENTITY_DECL_RE = re.compile(rb"<!ENTITY(?:[^>\"']++|\"[^\"]*+\"|'[^']*+')*+>", re.IGNORECASE)
#: What is left of a malformed declaration (an unclosed quote) gets defused.
_ENTITY_KEYWORD_RE = re.compile(rb"<!ENTITY", re.IGNORECASE)
_CHAR_REF_RE = re.compile(rb"&#([xX][0-9a-fA-F]{1,8}|[0-9]{1,10});")
#: The first element's name, after the prolog (declaration, comments, doctype).
_ROOT_RE = re.compile(
    rb"\A(?:\s++|<\?.*?\?>|<!--.*?-->|<!DOCTYPE(?:[^>\[]++|\[.*?\])*+>)*+<([A-Za-z_][\w:.-]*+)",
    re.DOTALL | re.IGNORECASE,
)
_UTF8_BOM = b"\xef\xbb\xbf"
_WIDE_ENCODINGS: tuple[tuple[bytes, str], ...] = (
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\xfe\xff", "utf-16-be"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\x00\x00\x00<", "utf-32-be"),
    (b"<\x00\x00\x00", "utf-32-le"),
    (b"\x00<", "utf-16-be"),
    (b"<\x00", "utf-16-le"),
)


def parse_feed(body: bytes, *, url: str, headers: Mapping[str, str] | None = None) -> ParsedFeed:
    """Parse one fetched document; raise ParseError naming `url` when it is not a feed."""
    lowered = {name.lower(): value for name, value in (headers or {}).items()}
    stripped = body.lstrip()
    if stripped.startswith(_UTF8_BOM):
        stripped = stripped[len(_UTF8_BOM) :].lstrip()
    if not stripped:
        raise ParseError(url, "empty body")
    if stripped.startswith(b"{"):
        return _parse_json_feed(body, url=url)
    if "json" in lowered.get("content-type", "") and not stripped.startswith(b"<"):
        raise ParseError(url, "not a feed (JSON content type but the body is not a JSON object)")
    return _parse_xml_feed(body, url=url, headers=lowered, fast=True)


def parse_with_feedparser(
    body: bytes, *, url: str, headers: Mapping[str, str] | None = None
) -> ParsedFeed:
    """parse_feed with the fast path turned off: the reference for differential tests."""
    lowered = {name.lower(): value for name, value in (headers or {}).items()}
    if body.lstrip().removeprefix(_UTF8_BOM).lstrip().startswith(b"{"):
        return parse_feed(body, url=url, headers=headers)
    return _parse_xml_feed(body, url=url, headers=lowered, fast=False)


# --- XML feeds (feedparser) -------------------------------------------------------------


def defuse_body(body: bytes) -> bytes:
    """Body with entity declarations, NUL bytes and unusable character references removed.

    Declared entities are the road to exponential (billion laughs) or quadratic blow-ups in
    feedparser's loose parser; references to NUL, other C0 controls or lone surrogates make it
    crash or produce text PostgreSQL refuses.
    """
    codec = _wide_codec(body)
    if codec is None:
        return _defuse_ascii_compatible(body)
    try:
        text = body.decode(codec)
    except UnicodeDecodeError:
        return body
    defused = _defuse_ascii_compatible(text.encode("utf-8", "surrogatepass"))
    return defused.decode("utf-8", "surrogatepass").encode(codec, "surrogatepass")


def _defuse_ascii_compatible(body: bytes) -> bytes:
    if b"\x00" in body:
        body = body.replace(b"\x00", b"")
    if _ENTITY_KEYWORD_RE.search(body) is not None:
        body = _ENTITY_DECL_RE.sub(b"", body)
        body = _ENTITY_KEYWORD_RE.sub(b"<!DEFUSED", body)
    if b"&#" in body:
        body = _CHAR_REF_RE.sub(_drop_unusable_char_ref, body)
    return body


def _drop_unusable_char_ref(match: re.Match[bytes]) -> bytes:
    digits = match.group(1)
    try:
        code = int(digits[1:], 16) if digits[:1] in (b"x", b"X") else int(digits)
    except ValueError:
        return match.group(0)
    usable = (code >= 0x20 or code in (0x9, 0xA, 0xD)) and not 0xD800 <= code <= 0xDFFF
    return match.group(0) if usable and code <= 0x10FFFF else b""


def _wide_codec(body: bytes) -> str | None:
    for prefix, codec in _WIDE_ENCODINGS:
        if body.startswith(prefix):
            return codec
    return None


def _parse_xml_feed(body: bytes, *, url: str, headers: dict[str, str], fast: bool) -> ParsedFeed:
    if _looks_like_html(body):
        raise ParseError(url, "not a feed (looks like an HTML page)")
    # No Content-Location: feedparser would resolve GUIDs against it, and identities must not
    # change when a feed moves. Links are resolved here instead (see _absolute).
    response_headers = {k: v for k, v in headers.items() if k != "content-location"}
    # Without a type feedparser flags every document; XML is what a feed server means.
    response_headers.setdefault("content-type", "application/xml")
    simple = read_simple_feed(body, response_headers) if fast else None
    if simple is not None:
        version, feed, raw_entries = simple
        return _parsed_feed(version, feed, raw_entries, None, url=url, body=body, headers=headers)
    try:
        result = feedparser.parse(
            io.BytesIO(defuse_body(body)),
            response_headers=response_headers,
            sanitize_html=False,
            resolve_relative_uris=False,
        )
    except Exception as e:  # feedparser has no exception tree of its own
        raise ParseError(url, f"parser failed: {type(e).__name__}: {e}") from e
    version = result.get("version") or ""
    raw_entries = result.get("entries") or []
    warning = _bozo_message(result)
    if not version and not raw_entries:
        raise ParseError(url, _not_a_feed_reason(body, warning))
    feed = result.get("feed") or {}
    return _parsed_feed(version, feed, raw_entries, warning, url=url, body=body, headers=headers)


def _parsed_feed(
    version: str,
    feed: dict[str, Any],
    raw_entries: list[Any],
    warning: str | None,
    *,
    url: str,
    body: bytes,
    headers: dict[str, str],
) -> ParsedFeed:
    feed_link = _absolute(_str_or_none(dict.get(feed, "link")), url)
    base = feed_link or url
    return ParsedFeed(
        kind=_feed_kind(version, body),
        title=_detail_html(feed, "title"),
        link=feed_link,
        lang=_str_or_none(dict.get(feed, "language"))
        or _str_or_none(headers.get("content-language")),
        ttl_min=_ttl_minutes(dict.get(feed, "ttl")),
        entries=tuple(_raw_entry(entry, base) for entry in raw_entries),
        warning=warning,
    )


def _looks_like_html(body: bytes) -> bool:
    match = _ROOT_RE.match(body[:4096].removeprefix(_UTF8_BOM))
    return match is not None and match.group(1).lower() == b"html"


def _not_a_feed_reason(body: bytes, warning: str | None) -> str:
    if b"<html" in body[:4096].lower():
        return "not a feed (looks like an HTML page)"
    if warning:
        return f"not a feed ({warning})"
    return "not a feed (no RSS, RDF or Atom root element)"


def _bozo_message(result: Mapping[str, Any]) -> str | None:
    if not result.get("bozo"):
        return None
    exc = result.get("bozo_exception")
    message = f"{type(exc).__name__}: {exc}" if exc is not None else "malformed feed"
    return message[:_MAX_WARNING_CHARS]


def _feed_kind(version: str, body: bytes) -> FeedKind:
    if version.startswith("atom"):
        return "atom"
    if version in ("rss090", "rss10"):
        return "rdf"
    if version:
        return "rss"
    match = _ROOT_RE.match(body[:4096].removeprefix(_UTF8_BOM))
    root = match.group(1).lower() if match else b""
    if root == b"feed":
        return "atom"
    if root.endswith(b"rdf"):
        return "rdf"
    return "rss"


def _raw_entry(entry: dict[str, Any], base: str) -> RawEntry:
    # dict.get, not FeedParserDict.get: no key aliases, no "updated" -> "published" fallback.
    get = dict.get
    return RawEntry(
        guid=_str_or_none(get(entry, "id")),
        link=_absolute(_str_or_none(get(entry, "link")), base),
        title=_detail_html(entry, "title"),
        summary=_summary_html(entry),
        content=_content_html(get(entry, "content")),
        author=_str_or_none(get(entry, "author")),
        published=utc_datetime(get(entry, "published_parsed")),
        updated=utc_datetime(get(entry, "updated_parsed")),
        lang=_entry_lang(entry),
    )


def _detail_html(node: dict[str, Any], key: str) -> str | None:
    """The field as HTML: escaped when feedparser says it is plain text."""
    value = dict.get(node, key)
    if not isinstance(value, str) or not value:
        return None
    detail = dict.get(node, key + "_detail")
    if detail is not None and detail.get("type") == "text/plain":
        return html.escape(value, quote=False)
    return value


def _summary_html(entry: dict[str, Any]) -> str | None:
    """The summary as HTML; feedparser copies Atom content into it without its type."""
    if dict.get(entry, "summary_detail") is None:
        contents = dict.get(entry, "content")
        if contents and contents[0].get("value") == dict.get(entry, "summary"):
            return _content_html(contents[:1])
    return _detail_html(entry, "summary")


def _absolute(link: str | None, base: str) -> str | None:
    """`link` resolved against `base` when it is relative."""
    if link is None or "://" in link[:16] or link.startswith(("mailto:", "urn:", "tag:")):
        return link
    try:
        return urljoin(base, link)
    except ValueError:
        return link


def _content_html(contents: Any) -> str | None:
    if not contents:
        return None
    parts: list[str] = []
    for part in contents:
        value = part.get("value")
        if isinstance(value, str) and value:
            if part.get("type") == "text/plain":
                value = html.escape(value, quote=False)
            parts.append(value)
    return "\n".join(parts) or None


def _entry_lang(entry: dict[str, Any]) -> str | None:
    for key in ("title_detail", "summary_detail"):
        detail = dict.get(entry, key)
        if detail is not None:
            lang = detail.get("language")
            if isinstance(lang, str) and lang:
                return lang
    return None


def _ttl_minutes(value: Any) -> int | None:
    if not isinstance(value, str):
        return None
    value = value.strip()
    if not value.isdigit() or len(value) > 7:
        return None
    return int(value)


def _str_or_none(value: Any) -> str | None:
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return None


# --- JSON Feed 1.0 / 1.1 ----------------------------------------------------------------


def _parse_json_feed(body: bytes, *, url: str) -> ParsedFeed:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as e:
        raise ParseError(url, f"not a feed (invalid JSON: {e})") from e
    if not isinstance(document, dict):
        raise ParseError(url, "not a feed (JSON document is not an object)")
    version = document.get("version")
    if not isinstance(version, str) or not version.startswith(
        (_JSON_FEED_PREFIX, _JSON_FEED_PREFIX_HTTP)
    ):
        raise ParseError(url, "not a feed (JSON without a jsonfeed.org version)")
    items = document.get("items", [])
    if not isinstance(items, list):
        raise ParseError(url, "not a feed (JSON Feed 'items' is not a list)")
    base = _json_str(document.get("feed_url")) or url
    feed_lang = _json_str(document.get("language"))
    entries = tuple(_json_entry(item, base) for item in items if isinstance(item, dict))
    skipped = len(items) - len(entries)
    return ParsedFeed(
        kind="json",
        title=_escaped(_json_str(document.get("title"))),
        link=_json_url(document.get("home_page_url"), base),
        lang=feed_lang,
        ttl_min=None,
        entries=entries,
        warning=f"skipped {skipped} items that are not JSON objects" if skipped else None,
    )


def _json_entry(item: Mapping[str, Any], base: str) -> RawEntry:
    item_id = item.get("id")
    guid = (
        str(item_id) if isinstance(item_id, int | float) and not isinstance(item_id, bool) else None
    )
    return RawEntry(
        guid=guid or _json_str(item_id),
        link=_json_url(item.get("url"), base) or _json_url(item.get("external_url"), base),
        title=_escaped(_json_str(item.get("title"))),
        summary=_escaped(_json_str(item.get("summary"))),
        content=_json_str(item.get("content_html"))
        or _escaped(_json_str(item.get("content_text"))),
        author=_json_author(item),
        published=parse_rfc3339(item.get("date_published")),
        updated=parse_rfc3339(item.get("date_modified")),
        lang=_json_str(item.get("language")),
    )


def _json_id(value: Any) -> str | None:
    """JSON Feed 1.0 let ids be numbers; 1.1 wants strings. Both are read as text."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return _json_str(value)


def _json_author(item: Mapping[str, Any]) -> str | None:
    authors = item.get("authors")
    candidates: Sequence[Any] = authors if isinstance(authors, list) else [item.get("author")]
    names = [
        name
        for author in candidates
        if isinstance(author, dict) and (name := _json_str(author.get("name")))
    ]
    return ", ".join(names) or None


def _json_url(value: Any, base: str) -> str | None:
    text = _json_str(value)
    return urljoin(base, text) if text else None


def _json_str(value: Any) -> str | None:
    return _str_or_none(value)


def _escaped(text: str | None) -> str | None:
    return html.escape(text, quote=False) if text else None


def parse_rfc3339(value: Any) -> datetime | None:
    """An RFC 3339 timestamp as an aware UTC datetime; None when missing or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith(("z", "Z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text.replace("t", "T", 1))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        return None
