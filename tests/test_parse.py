"""parse_feed on fixture feeds: formats, encodings, recovery, rejection, bounded entities."""

from __future__ import annotations

import json
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.errors import ParseError
from monitor.parse import defuse_body, parse_feed, parse_rfc3339
from monitor.types import ParsedFeed

FEEDS = Path(__file__).parent / "data" / "feeds"
XML = {"content-type": "application/xml"}


def load(name: str, headers: dict[str, str] | None = None) -> ParsedFeed:
    return parse_feed(
        (FEEDS / name).read_bytes(), url=f"https://feeds.example.com/{name}", headers=headers
    )


def test_rss20_fields() -> None:
    feed = load("rss20.xml", XML)
    assert (feed.kind, feed.title, feed.lang, feed.ttl_min) == ("rss", "Border Desk", "en-gb", 45)
    first = feed.entries[0]
    assert first.guid == "border-desk-1001"
    assert first.author == "Mara Quill"
    assert first.published == datetime(2025, 1, 7, 8, 30, tzinfo=UTC)
    assert first.summary is not None and "<p>The two delegations" in first.summary
    assert feed.entries[1].link == "https://news.example.org/world/relative-story"
    assert feed.warning is None


def test_atom10_plain_text_fields_arrive_escaped() -> None:
    feed = load("atom10.xml", {"content-type": "application/atom+xml"})
    assert feed.kind == "atom"
    one, two = feed.entries
    assert one.title == "Less than &lt;b&gt; more: a text title"
    assert one.published == datetime(2025, 2, 1, 6, 0, tzinfo=UTC)
    assert one.updated == datetime(2025, 2, 1, 10, 15, tzinfo=UTC)
    assert one.author == "Ilse Varga"
    assert two.content == "Plain content with a &lt;tag&gt; that is only text."
    assert two.summary == two.content
    assert two.published is None


def test_rss10_is_rdf() -> None:
    feed = load("rss10.rdf", XML)
    assert feed.kind == "rdf"
    assert [e.title for e in feed.entries] == ["Mill reopens", "Bridge repaired"]
    assert feed.entries[0].updated == datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)


@pytest.mark.parametrize("content_type", ["application/feed+json", "application/json", ""])
def test_json_feed_10(content_type: str) -> None:
    feed = load("jsonfeed10.json", {"content-type": content_type} if content_type else None)
    assert (feed.kind, feed.title, feed.link) == (
        "json",
        "Lantern Log",
        "https://lantern.example.com/",
    )
    first, second = feed.entries
    assert first.guid == "17"
    assert first.title == "Lamps &amp; wicks"
    assert first.content == "<p>How the <b>lamps</b> were trimmed.</p>"
    assert first.author == "Odile Brand"
    assert first.published == datetime(2025, 4, 1, 8, 0, tzinfo=UTC)
    assert second.link == "https://lantern.example.com/posts/18"
    assert second.content == "A plain &lt;text&gt; note without a title."
    assert second.updated is None


def test_json_feed_11() -> None:
    feed = load("jsonfeed11.json")
    assert feed.lang == "uk"
    first = feed.entries[0]
    assert first.author == "Олена Рибак, Тарас Лис"
    assert first.lang == "uk-UA"
    assert first.published == datetime(2025, 5, 6, 7, 8, 9, tzinfo=UTC)


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ({"version": "https://example.com/not-jsonfeed", "items": []}, "jsonfeed.org"),
        ({"version": "https://jsonfeed.org/version/1.1", "items": {}}, "not a list"),
        ([1, 2, 3], "not a feed"),
    ],
)
def test_json_that_is_not_a_json_feed(document: object, reason: str) -> None:
    body = json.dumps(document).encode()
    with pytest.raises(ParseError, match=reason):
        parse_feed(
            body, url="https://x.example/feed.json", headers={"content-type": "application/json"}
        )


def test_invalid_json_names_the_feed() -> None:
    with pytest.raises(ParseError, match=r"https://x\.example/f: not a feed \(invalid JSON"):
        parse_feed(b'{"version": ', url="https://x.example/f")


def test_windows_1251_declared_in_xml() -> None:
    feed = load("cp1251.xml", XML)
    assert feed.title == "Вечерняя сводка"
    assert feed.entries[0].title == "Переговоры в Стамбуле продолжатся в четверг"


def test_charset_from_content_type_header_is_honoured() -> None:
    body = (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Сводка</title>'
        "<item><title>Новости дня</title><guid>n1</guid></item></channel></rss>"
    ).encode("cp1251")
    feed = parse_feed(
        body, url="https://x.example/", headers={"Content-Type": "text/xml; charset=windows-1251"}
    )
    assert feed.entries[0].title == "Новости дня"


def test_utf8_bom() -> None:
    feed = load("utf8_bom.xml", XML)
    assert feed.entries[0].title == "Byte order mark ahead — still fine"


def test_utf16_feed() -> None:
    text = (
        '<?xml version="1.0" encoding="utf-16"?><rss version="2.0"><channel>'
        "<item><title>Широкий</title></item></channel></rss>"
    )
    feed = parse_feed(text.encode("utf-16"), url="https://x.example/", headers=XML)
    assert feed.entries[0].title == "Широкий"


def test_malformed_xml_is_recovered_with_a_warning() -> None:
    feed = load("malformed.xml", XML)
    assert [e.guid for e in feed.entries] == ["loose-1", "loose-2"]
    assert feed.warning is not None and "mismatched tag" in feed.warning


def test_valid_empty_feed() -> None:
    feed = load("empty_channel.xml", XML)
    assert feed.entries == () and feed.title == "Quiet Week"


@pytest.mark.parametrize("body", [b"", b"   \n\t  ", b"\xef\xbb\xbf  "])
def test_empty_body(body: bytes) -> None:
    with pytest.raises(ParseError, match="empty body"):
        parse_feed(body, url="https://x.example/feed")


def test_html_page_is_not_a_feed() -> None:
    with pytest.raises(
        ParseError, match=r"html_page\.html: not a feed \(looks like an HTML page\)"
    ):
        load("html_page.html", {"content-type": "text/html"})


@pytest.mark.parametrize(
    "body",
    [b"/etc/passwd", b"https://example.com/feed.xml", b"file:///etc/passwd", b"plain words"],
)
def test_path_or_url_body_is_never_opened(body: bytes) -> None:
    with pytest.raises(ParseError, match="not a feed"):
        parse_feed(body, url="https://x.example/feed", headers=XML)


def test_unknown_root_is_not_a_feed() -> None:
    with pytest.raises(ParseError, match="not a feed"):
        parse_feed(
            b"<?xml version='1.0'?><catalog><book/></catalog>",
            url="https://x.example/",
            headers=XML,
        )


def test_ttl_garbage_is_ignored() -> None:
    body = (
        b'<rss version="2.0"><channel><ttl>soon</ttl><item><title>a</title></item></channel></rss>'
    )
    assert parse_feed(body, url="https://x.example/", headers=XML).ttl_min is None


def test_control_characters_and_lone_surrogates_do_not_break_parsing() -> None:
    feed = load("control_chars.xml", XML)
    entry = feed.entries[0]
    assert entry.guid == "noisy-1"
    assert entry.title is not None and "\x00" not in entry.title
    assert entry.summary is not None and "\ud800" not in entry.summary


def test_billion_laughs_fixture_stays_small() -> None:
    feed = load("billion_laughs.xml", XML)
    assert feed.entries[0].guid == "laugh-1"
    assert len(feed.entries[0].title or "") < 100


def _quadratic_entity_document() -> bytes:
    """About 60 KB: one 4 KB entity referenced 14,000 times would expand to ~57 MB."""
    value = "x" * 4_000
    refs = "&big;" * 14_000
    return (
        f'<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY big "{value}">\n]>\n'
        f'<rss version="2.0"><channel><title>Echo</title><item><title>{refs}</title>'
        "<guid>e1</guid></item></channel></rss>"
    ).encode()


def test_repeated_entity_expansion_is_bounded() -> None:
    body = _quadratic_entity_document()
    assert len(body) < 100_000
    tracemalloc.start()
    try:
        feed = parse_feed(body, url="https://x.example/", headers=XML)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50 * 1024 * 1024
    assert "xxxx" not in (feed.entries[0].title or "")


def test_defuse_body_removes_declarations_even_with_quoted_angle_brackets() -> None:
    body = b"<!DOCTYPE rss [<!ENTITY a 'x>y'><!entity b \"z\">]><rss/>"
    assert defuse_body(body) == b"<!DOCTYPE rss []><rss/>"


def test_defuse_body_keeps_ordinary_character_references() -> None:
    body = b"<t>&#8217;&#x41;&#0;&#x1;&#xD800;&#55296;&#9;</t>"
    assert defuse_body(body) == b"<t>&#8217;&#x41;&#9;</t>"


def test_defuse_body_handles_utf16() -> None:
    text = '<!DOCTYPE r [<!ENTITY a "b">]><r/>'
    assert defuse_body(text.encode("utf-16")).decode("utf-16") == "<!DOCTYPE r []><r/>"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-01-02T03:04:05Z", datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2025-01-02T05:04:05+02:00", datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2025-01-02t03:04:05.123z", datetime(2025, 1, 2, 3, 4, 5, 123000, tzinfo=UTC)),
        ("2025-01-02T03:04:05", datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("yesterday", None),
        ("", None),
        (12345, None),
        (None, None),
    ],
)
def test_rfc3339(value: object, expected: datetime | None) -> None:
    assert parse_rfc3339(value) == expected
