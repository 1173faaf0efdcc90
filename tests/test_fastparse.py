"""The fast XML path agrees with the feedparser path on every document it accepts."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from feedparser.datetimes import _parse_date
from feedparser.urls import _urljoin
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.errors import ParseError
from monitor.fastparse import fixed_uri, parse_moment, read_simple_feed, utc_datetime
from monitor.parse import parse_feed, parse_with_feedparser
from monitor.types import ParsedFeed
from tests.test_peer_corpus import served_headers

ROOT = Path(__file__).resolve().parents[1]
PEER_TESTS = ROOT / ".." / "shared" / "peer-corpora" / "feedparser-6.0.14" / "tests"
FIXTURES = ROOT / "tests" / "data" / "feeds"
URL = "http://example.com/feed"

sys.path.insert(0, str(ROOT / "bench"))
import feedgen  # type: ignore[import-not-found]  # noqa: E402


def _outcome(parser: object, data: bytes, headers: dict[str, str]) -> ParsedFeed | str:
    try:
        return parser(data, url=URL, headers=headers)  # type: ignore[operator, no-any-return]
    except ParseError as e:
        return str(e)


def _differences(files: list[Path]) -> tuple[int, list[str]]:
    taken, differing = 0, []
    for path in files:
        data = path.read_bytes()
        headers = served_headers(data)
        if read_simple_feed(data, {k: v for k, v in headers.items() if k != "content-location"}):
            taken += 1
            if _outcome(parse_feed, data, headers) != _outcome(
                parse_with_feedparser, data, headers
            ):
                differing.append(str(path))
    return taken, differing


def test_fixtures_agree_with_feedparser() -> None:
    taken, differing = _differences(sorted(FIXTURES.iterdir()))
    assert differing == []
    assert taken >= 5  # rss20, dates, duplicate_guids, empty_channel, utf8_bom


@pytest.mark.slow
def test_peer_corpus_agrees_with_feedparser() -> None:
    if not PEER_TESTS.is_dir():
        pytest.skip(f"peer corpus not found at {PEER_TESTS}")
    files = sorted(path for path in PEER_TESTS.rglob("*") if path.is_file())
    taken, differing = _differences(files)
    print(f"fast path taken by {taken} of {len(files)} peer corpus files")
    assert differing == []
    assert taken > 500


@pytest.mark.parametrize("index", range(12))
def test_generated_feeds_take_fast_path_and_agree(index: int) -> None:
    feed = feedgen.make_feed(index, seed=3, items_scale=0.3)
    data, headers = feedgen.render(feed), {"content-type": feedgen.content_type(feed)}
    if feed.kind != "json":
        assert read_simple_feed(data, headers) is not None
    fast = parse_feed(data, url=URL, headers=headers)
    assert fast == parse_with_feedparser(data, url=URL, headers=headers)
    assert len(fast.entries) == feed.n_items


@pytest.mark.parametrize(
    "body",
    [
        b'<?xml version="1.0" encoding="iso-8859-1"?><rss version="2.0"><channel/></rss>',
        b'<!DOCTYPE rss [<!ENTITY nbsp "&#160;">]><rss version="2.0"><channel/></rss>',
        b'<rss version="2.0"><channel><title>Kyiv&nbsp;talks</title></channel></rss>',
        b'<rss version="2.0"><channel><title>A & B</title></channel></rss>',
        b"<html><body>not a feed</body></html>",
        b'<rss version="2.0"><channel><item><title>a<b>b</b></title></item></channel></rss>',
        b'<rss version="2.0"><channel><item><media:x xmlns:media="urn:m"/></item></channel></rss>',
        b'<feed xmlns="http://www.w3.org/2005/Atom" xml:base="http://a/"><title>t</title></feed>',
        b'<feed xmlns="http://www.w3.org/2005/Atom"><entry><content type="xhtml">'
        b'<div xmlns="http://www.w3.org/1999/xhtml">x</div></content></entry></feed>',
        b'<rss version="2.0"><channel><item><title>a</title><title>b</title></item>'
        b"</channel></rss>",
        b'<rss version="3.0"><channel/></rss>',
    ],
)
def test_unusual_documents_fall_back(body: bytes) -> None:
    assert read_simple_feed(body, {"content-type": "application/xml"}) is None


def test_non_xml_content_type_falls_back() -> None:
    body = b'<rss version="2.0"><channel><title>t</title></channel></rss>'
    assert read_simple_feed(body, {"content-type": "application/xml"}) is not None
    assert read_simple_feed(body, {"content-type": "text/html"}) is None
    assert read_simple_feed(body, {"content-type": "application/xml; charset=latin-1"}) is None


def test_fast_dates_match_feedparser() -> None:
    start = datetime(1999, 12, 31, 23, 59, 58, tzinfo=UTC)
    for step in range(0, 400):
        when = start + timedelta(days=step * 37, seconds=step * 7919)
        for text in (
            when.strftime("%a, %d %b %Y %H:%M:%S GMT"),
            when.strftime("%a, %d %b %Y %H:%M:%S +0000"),
            when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            when.strftime("%Y-%m-%dT%H:%M:%S+00:00"),
        ):
            assert parse_moment(text) == utc_datetime(_parse_date(text)), text
    for odd in ("Mon, 31 Feb 2025 10:00:00 GMT", "2025-13-01T00:00:00Z", "garbage", ""):
        assert parse_moment(odd) == utc_datetime(_parse_date(odd)), odd


@settings(max_examples=400, deadline=None)
@given(
    st.integers(1, 9999),
    st.integers(0, 13),
    st.integers(0, 32),
    st.integers(0, 24),
    st.integers(0, 60),
    st.integers(0, 61),
    st.sampled_from(["Z", "+00:00", "GMT", "+0000", "UT", "-0000", "+01:00", "EST"]),
    st.booleans(),
)
def test_fast_moments_are_the_dates_parse_made_of_feedparser_s(
    year: int, month: int, day: int, hour: int, minute: int, second: int, zone: str, iso: bool
) -> None:
    """Any date in either common spelling, in range or not, in UTC or not: read straight into
    a datetime, it is the one parse.py made of feedparser's struct_time."""
    if iso:
        text = f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}{zone}"
    else:
        month_name = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec Foo Bar".split()[month]  # noqa: SIM905
        text = f"Sun, {day:02d} {month_name} {year:04d} {hour:02d}:{minute:02d}:{second:02d} {zone}"
    assert parse_moment(text) == utc_datetime(_parse_date(text)), text


@given(
    st.sampled_from(["http", "https", "HTTP", "feed", "x+y-z.w", "", "1http", "mailto:"]),
    st.sampled_from(["://", ":", "", ":///", "://///", ":/"]),
    st.text(alphabet="/:?#&=.%aé Z0", max_size=12),
)
def test_a_uri_is_fixed_as_feedparser_fixes_it(scheme: str, sep: str, rest: str) -> None:
    uri = scheme + sep + rest
    assert fixed_uri(uri) == _urljoin("", uri)
