"""A fast reader for plain, well-formed RSS 2.0, RSS 1.0 and Atom 1.0 that mirrors feedparser.

`read_simple_feed` returns what feedparser would have returned for the fields parse.py uses
(a version string, a feed dict and entry dicts of the same shape, with dates already the
datetimes parse.py makes of feedparser's: `utc_datetime`), or None as soon as the document
strays from the narrow profile it handles: not UTF-8, a DOCTYPE, any XML error, an element or
attribute it does not map, mixed content, xml:base, repeated fields. The caller then parses
the document with feedparser, so a None is never a loss.
"""

from __future__ import annotations

import calendar
import contextlib
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from feedparser.datetimes import _parse_date
from feedparser.html import _cp1252
from feedparser.mixin import _FeedParserMixin
from feedparser.urls import _urifixer

ATOM_NS = "{http://www.w3.org/2005/Atom}"
RSS10_NS = "{http://purl.org/rss/1.0/}"
RSS090_NS = "{http://my.netscape.com/rdf/simple/0.9/}"
RDF_NS = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
DC_NS = "{http://purl.org/dc/elements/1.1/}"
CONTENT_NS = "{http://purl.org/rss/1.0/modules/content/}"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"

_UTF8_BOM = b"\xef\xbb\xbf"
_XML_DECL_RE = re.compile(rb"\A<\?xml\b[^>]*?\bencoding\s*=\s*[\"']([^\"']*)[\"']")
#: Any markup declaration other than CDATA sections and comments (DOCTYPE, ENTITY, ...).
_DECLARATION_RE = re.compile(rb"<!(?!\[CDATA\[|--)")
_XML_MEDIA_TYPES = frozenset(
    {"application/xml", "application/rss+xml", "application/atom+xml", "application/rdf+xml"}
)
_UTF8_NAMES = frozenset({"utf-8", "utf8"})
_RSS_VERSIONS = frozenset({"2.0", "0.91", "0.92"})
_QUERY_ENTITY_RE = re.compile("&([A-Za-z0-9_]+);")
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_ATOM_TEXT_TYPES = {"text": "text/plain", "html": "text/html", "text/plain": "text/plain"}
_ATOM_TEXT_TYPES["text/html"] = "text/html"

#: RSS channel children read as text and otherwise ignored (their values feed no field of ours).
_RSS_CHANNEL_IGNORED = frozenset(
    {
        "description",
        "generator",
        "docs",
        "copyright",
        "managingeditor",
        "webmaster",
        "pubdate",
        "lastbuilddate",
        "category",
    }
)
_RSS_ITEM_IGNORED = frozenset({"category", "comments"})
_ATOM_FEED_IGNORED = frozenset({"subtitle", "rights", "generator", "icon", "logo", "category"})

Dict = dict[str, Any]


_MONTHS = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
_RFC822_UTC_RE = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d\d) ([A-Z][a-z]{2}) (\d{4}) "
    r"(\d\d):(\d\d):(\d\d) (?:GMT|UT|UTC|Z|[+-]0000)"
)
_ISO_UTC_RE = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:Z|\+00:00)")


def parse_moment(text: str) -> datetime | None:
    """The date parse.py makes of feedparser's reading of `text` (`utc_datetime`), with the
    two common UTC spellings read straight into a datetime. Through a struct_time (made in
    Python by `utctimetuple`, and read back by `calendar.timegm`), dates were a tenth of
    this reader's time on the bench's feeds."""
    moment = _common_utc(text)
    return moment if moment is not None else utc_datetime(_parse_date(text))


def _common_utc(text: str) -> datetime | None:
    """The UTC moment of an ISO 8601 or RFC 822 date in UTC, None for any other text."""
    if match := _ISO_UTC_RE.fullmatch(text):
        year, month, day, hour, minute, second = map(int, match.groups())
    elif (match := _RFC822_UTC_RE.fullmatch(text)) and match.group(2) in _MONTHS:
        day_text, month_name, year_text, *clock = match.groups()
        year, month, day = int(year_text), _MONTHS[month_name], int(day_text)
        hour, minute, second = map(int, clock)
    else:
        return None
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:  # 31 February: feedparser decides
        return None


def utc_datetime(value: Any) -> datetime | None:
    """A date as parse.py keeps it: feedparser's struct_time (UTC) as an aware datetime, a
    datetime (this reader's, `parse_moment`) as it is, None for anything else."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, time.struct_time):
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), UTC)
    except (OverflowError, ValueError, OSError):
        return None


class _UnsupportedError(Exception):
    """The document leaves the fast profile; feedparser must read it."""


def read_simple_feed(
    body: bytes, headers: Mapping[str, str]
) -> tuple[str, Dict, list[Dict]] | None:
    """(version, feed, entries) as feedparser would give them, or None to use feedparser.

    `headers` are the response headers with lower-cased names, as parse.py passes them to
    feedparser (content type defaulted, Content-Location removed).
    """
    if not _plain_utf8_xml(body, headers.get("content-type", "application/xml")):
        return None
    try:
        root = ET.fromstring(body)
    except (ET.ParseError, ValueError):
        return None
    lang = headers.get("content-language") or None
    try:
        return _Reader(lang).read(root)
    except _UnsupportedError:
        return None


def _plain_utf8_xml(body: bytes, content_type: str) -> bool:
    """True for a body feedparser reads as strict UTF-8 XML with no declarations or NULs."""
    media, _, params = content_type.partition(";")
    if media.strip().lower() not in _XML_MEDIA_TYPES:
        return False
    charset = params.strip().lower()
    if charset and charset.replace('"', "").replace(" ", "") not in (
        "charset=utf-8",
        "charset=utf8",
    ):
        return False
    text = body.removeprefix(_UTF8_BOM)
    if not text.startswith(b"<") or b"\x00" in text or _DECLARATION_RE.search(text):
        return False
    declared = _XML_DECL_RE.match(text)
    return declared is None or declared.group(1).decode("ascii", "replace").lower() in _UTF8_NAMES


def _local(tag: str, namespace: str) -> str | None:
    """The lower-cased local name when `tag` is in `namespace` ("" for none), else None."""
    if namespace:
        return tag[len(namespace) :].lower() if tag.startswith(namespace) else None
    return None if tag.startswith("{") else tag.lower()


def _text_only(element: ET.Element, allowed_attrs: frozenset[str] = frozenset()) -> str:
    """The element's text; its children or unexpected attributes leave the profile."""
    if len(element) or (element.attrib and not allowed_attrs.issuperset(element.attrib)):
        raise _UnsupportedError(element.tag)
    return element.text or ""


def fixed_uri(uri: str) -> str:
    """feedparser's `_urljoin("", uri)`: the slashes after `scheme://` dropped (joining with
    an empty base changes nothing else). Its `re.sub` with a template expanded the template
    in Python on every call: about a tenth of the fast path's time on the bench's feeds."""
    scheme_end = uri.find("://")
    if scheme_end < 0 or uri[scheme_end + 3 : scheme_end + 4] != "/":
        # No slash to drop: the pattern's "://" can only be the first one (its scheme holds
        # neither ":" nor "/"), and the slashes it drops are those right after it.
        return uri
    found: re.Match[str] | None = _urifixer.match(uri)
    if found is None or not found.group(2):
        return uri
    return found.group(1) + uri[found.end(2) :]


def _finish(raw: str, *, uri: bool = False) -> str:
    """feedparser's post-processing of a text element: strip, URI join, mojibake repair."""
    output = raw.strip()
    if uri and output:
        output = fixed_uri(output)
    if output.isascii():
        return output
    with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
        output = output.encode("iso-8859-1").decode("utf-8")
    return output.translate(_cp1252)


def _rss_text_type(raw: str, default: str) -> str:
    """RSS plain-text fields are taken as HTML when they look like it, as feedparser does."""
    stripped = raw.strip()
    if default == "text/plain" and _FeedParserMixin.looks_like_html(stripped):
        return "text/html"
    return default


def _link_fix(value: str, *, in_entry: bool) -> str:
    if "&" not in value:
        return value
    if in_entry:
        value = value.replace("&amp;", "&")
    return _QUERY_ENTITY_RE.sub(r"&\g<1>", value)


class _Reader:
    """One document's walk; keeps the inherited language like feedparser does."""

    def __init__(self, lang: str | None) -> None:
        self.lang = lang.replace("_", "-") if lang else None
        self.feed: Dict = {}
        self.entries: list[Dict] = []

    def read(self, root: ET.Element) -> tuple[str, Dict, list[Dict]]:
        if root.tag == "rss":
            return self._read_rss(root)
        if root.tag == ATOM_NS + "feed":
            return self._read_atom(root)
        if root.tag == RDF_NS + "RDF":
            return self._read_rdf(root)
        raise _UnsupportedError(root.tag)

    # --- shared ------------------------------------------------------------------------

    def _detail(self, content_type: str) -> Dict:
        return {"type": content_type, "language": self.lang}

    def _set_once(self, node: Dict, key: str, value: Any) -> None:
        if key in node:
            raise _UnsupportedError(f"repeated {key}")
        node[key] = value

    def _date(self, node: Dict, key: str, element: ET.Element) -> None:
        self._set_once(node, key, parse_moment(_finish(_text_only(element))))

    def _guid(self, node: Dict, element: ET.Element, *, is_link: bool) -> None:
        value = _finish(_text_only(element, frozenset({"isPermaLink"})), uri=is_link)
        self._set_once(node, "id", value)
        if is_link:
            node.setdefault("link", value)

    # --- RSS 2.0 -----------------------------------------------------------------------

    def _read_rss(self, root: ET.Element) -> tuple[str, Dict, list[Dict]]:
        version = root.get("version", "")
        if version not in _RSS_VERSIONS or set(root.attrib) != {"version"}:
            raise _UnsupportedError("rss version")
        if len(root) != 1 or root[0].tag != "channel" or root[0].attrib:
            raise _UnsupportedError("rss channel")
        for element in root[0]:
            self._rss_channel_child(element)
        return ("rss20" if version == "2.0" else f"rss0{version[2:]}"), self.feed, self.entries

    def _rss_channel_child(self, element: ET.Element) -> None:
        name = _local(element.tag, "")
        if name == "item":
            self._read_rss_item(element)
        elif name in ("title", "link", "language", "ttl"):
            self._rss_feed_text(name, element)
        elif name in _RSS_CHANNEL_IGNORED:
            _text_only(element)
        else:
            raise _UnsupportedError(element.tag)

    def _rss_feed_text(self, name: str, element: ET.Element) -> None:
        raw = _text_only(element)
        if name == "title":
            content_type = _rss_text_type(raw, "text/plain")
            self._set_once(self.feed, "title", _finish(raw))
            self.feed["title_detail"] = self._detail(content_type)
        elif name == "link":
            self._set_once(self.feed, "link", _link_fix(_finish(raw, uri=True), in_entry=False))
        else:
            self._set_once(self.feed, name, _finish(raw))

    def _read_rss_item(self, item: ET.Element) -> None:
        if item.attrib:
            raise _UnsupportedError("item attributes")
        entry: Dict = {}
        content: str | None = None
        for element in item:
            tag = element.tag
            if tag == CONTENT_NS + "encoded":
                if content is not None:
                    raise _UnsupportedError("repeated content")
                content = _finish(_text_only(element))
                entry["content"] = [{"type": "text/html", "value": content}]
            elif tag == DC_NS + "creator":
                self._set_once(entry, "author", _finish(_text_only(element)))
            elif tag == DC_NS + "date":
                self._date(entry, "updated_parsed", element)
            else:
                self._rss_item_child(entry, element)
        if content is not None and "summary" not in entry:
            entry["summary"] = content
        self.entries.append(entry)

    def _rss_item_child(self, entry: Dict, element: ET.Element) -> None:
        name = _local(element.tag, "")
        if name == "title":
            raw = _text_only(element)
            self._set_once(entry, "title", _finish(raw))
            entry["title_detail"] = self._detail(_rss_text_type(raw, "text/plain"))
        elif name == "link":
            if "rss_link" in entry:
                raise _UnsupportedError("repeated link")
            entry["rss_link"] = True
            entry["link"] = _link_fix(_finish(_text_only(element), uri=True), in_entry=True)
        elif name == "description":
            self._set_once(entry, "summary", _finish(_text_only(element)))
            entry["summary_detail"] = self._detail("text/html")
        elif name == "guid":
            self._guid(entry, element, is_link=element.get("isPermaLink", "true") == "true")
        elif name == "pubdate":
            self._date(entry, "published_parsed", element)
        elif name == "author":
            self._set_once(entry, "author", _finish(_text_only(element)))
        elif name == "enclosure":
            if len(element) or (element.text or "").strip() or "enclosure" in entry:
                raise _UnsupportedError("enclosure")
            entry["enclosure"] = True
        elif name in _RSS_ITEM_IGNORED:
            _text_only(element, frozenset({"domain"}))
        else:
            raise _UnsupportedError(element.tag)

    # --- RSS 1.0 / 0.90 (RDF) ----------------------------------------------------------

    def _read_rdf(self, root: ET.Element) -> tuple[str, Dict, list[Dict]]:
        if root.attrib:
            raise _UnsupportedError("rdf attributes")
        namespace = next(
            (ns for ns in (RSS10_NS, RSS090_NS) if any(c.tag.startswith(ns) for c in root)), None
        )
        if namespace is None:
            raise _UnsupportedError("rdf namespace")
        for element in root:
            name = _local(element.tag, namespace)
            if name == "channel":
                self._read_rdf_channel(element, namespace)
            elif name == "item":
                self._read_rdf_item(element, namespace)
            else:
                raise _UnsupportedError(element.tag)
        return ("rss10" if namespace == RSS10_NS else "rss090"), self.feed, self.entries

    def _read_rdf_channel(self, channel: ET.Element, namespace: str) -> None:
        if set(channel.attrib) - {RDF_NS + "about"}:
            raise _UnsupportedError("channel attributes")
        for element in channel:
            name = _local(element.tag, namespace)
            if name in ("title", "link"):
                self._rss_feed_text(name, element)
            elif name == "description":
                _text_only(element)
            elif name == "items":
                continue
            else:
                raise _UnsupportedError(element.tag)

    def _read_rdf_item(self, item: ET.Element, namespace: str) -> None:
        if set(item.attrib) - {RDF_NS + "about"}:
            raise _UnsupportedError("item attributes")
        entry: Dict = {}
        about = item.get(RDF_NS + "about")
        if about:
            entry["id"] = about
        for element in item:
            name = _local(element.tag, namespace)
            if name in ("title", "link", "description"):
                self._rss_item_child(entry, element)
            elif element.tag == DC_NS + "creator":
                self._set_once(entry, "author", _finish(_text_only(element)))
            elif element.tag == DC_NS + "date":
                self._date(entry, "updated_parsed", element)
            else:
                raise _UnsupportedError(element.tag)
        self.entries.append(entry)

    # --- Atom 1.0 ----------------------------------------------------------------------

    def _read_atom(self, root: ET.Element) -> tuple[str, Dict, list[Dict]]:
        if set(root.attrib) - {XML_LANG}:
            raise _UnsupportedError("feed attributes")
        lang = root.get(XML_LANG)
        if lang is not None:
            self.lang = lang or None
            if lang:
                self.feed["language"] = lang.replace("_", "-")
        for element in root:
            self._atom_feed_child(element)
        return "atom10", self.feed, self.entries

    def _atom_feed_child(self, element: ET.Element) -> None:
        name = _local(element.tag, ATOM_NS)
        if name == "entry":
            self._read_atom_entry(element)
        elif name == "title":
            self._atom_text(self.feed, "title", element)
        elif name == "link":
            self._atom_link(self.feed, element)
        elif name == "id":
            self._guid(self.feed, element, is_link=True)
        elif name == "updated":
            self._date(self.feed, "updated_parsed", element)
        elif name == "author":
            self._atom_author(self.feed, element)
        elif name in _ATOM_FEED_IGNORED:
            _text_only(element, frozenset({"type", "term", "scheme", "label", "uri", "version"}))
        else:
            raise _UnsupportedError(element.tag)

    def _read_atom_entry(self, item: ET.Element) -> None:
        if item.attrib:
            raise _UnsupportedError("entry attributes")
        entry: Dict = {}
        for element in item:
            name = _local(element.tag, ATOM_NS)
            if name in ("title", "summary"):
                self._atom_text(entry, name, element)
            elif name == "content":
                self._atom_content(entry, element)
            elif name == "link":
                self._atom_link(entry, element)
            elif name == "id":
                self._guid(entry, element, is_link=True)
            elif name in ("updated", "published"):
                self._date(entry, name + "_parsed", element)
            elif name == "author":
                self._atom_author(entry, element)
            elif name == "category":
                _text_only(element, frozenset({"term", "scheme", "label"}))
            else:
                raise _UnsupportedError(element.tag)
        if "content" in entry and "summary" not in entry:
            entry["summary"] = entry["content"][0]["value"]
        self.entries.append(entry)

    def _atom_type(self, element: ET.Element) -> str:
        declared = element.get("type", "text")
        content_type = _ATOM_TEXT_TYPES.get(declared.lower())
        if content_type is None:
            raise _UnsupportedError(f"type {declared!r}")
        return content_type

    def _atom_text(self, node: Dict, key: str, element: ET.Element) -> None:
        content_type = self._atom_type(element)
        self._set_once(node, key, _finish(_text_only(element, frozenset({"type"}))))
        node[key + "_detail"] = self._detail(content_type)

    def _atom_content(self, entry: Dict, element: ET.Element) -> None:
        content_type = self._atom_type(element)
        value = _finish(_text_only(element, frozenset({"type"})))
        self._set_once(entry, "content", [{"type": content_type, "value": value}])

    def _atom_link(self, node: Dict, element: ET.Element) -> None:
        allowed = frozenset({"href", "rel", "type", "title", "hreflang", "length"})
        _text_only(element, allowed)
        if (element.text or "").strip() or "href" not in element.attrib:
            raise _UnsupportedError("link without href")
        rel = element.get("rel", "alternate")
        content_type = element.get("type", "application/atom+xml" if rel == "self" else "text/html")
        if rel == "alternate" and content_type.lower() in _HTML_TYPES:
            if node.get("alternate_seen"):
                raise _UnsupportedError("repeated alternate link")
            node["alternate_seen"] = True
            node["link"] = fixed_uri(element.attrib["href"])

    def _atom_author(self, node: Dict, author: ET.Element) -> None:
        if author.attrib or (author.text or "").strip() or "author" in node:
            raise _UnsupportedError("author")
        parts: Dict = {}
        for element in author:
            name = _local(element.tag, ATOM_NS)
            if name not in ("name", "email", "uri") or name in parts:
                raise _UnsupportedError(element.tag)
            parts[name] = _text_only(element).strip()
        name, email = parts.get("name"), parts.get("email")
        node["author"] = f"{name} ({email})" if name and email else name or email or ""
