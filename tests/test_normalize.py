"""normalize_entries, canonical_url, html_to_text and content_hash: truth tables and properties."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.normalize import (
    _SIMPLE_URL_RE,
    CONTENT_MAX,
    SUMMARY_MAX,
    TITLE_MAX,
    UNTITLED,
    _hash_form,
    _parsed_canonical_url,
    canonical_url,
    content_hash,
    entry_identities,
    html_to_text,
    normalize_entries,
)
from monitor.parse import parse_feed
from monitor.types import ParsedFeed, RawEntry

FEEDS = Path(__file__).parent / "data" / "feeds"
NOW = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
XML = {"content-type": "application/xml"}


def load(name: str) -> ParsedFeed:
    return parse_feed(
        (FEEDS / name).read_bytes(), url=f"https://feeds.example.com/{name}", headers=XML
    )


def entry(**fields: object) -> RawEntry:
    values: dict[str, object] = dict.fromkeys(
        ("guid", "link", "title", "summary", "content", "author", "published", "updated")
    )
    values.update(fields)
    return RawEntry(**values)  # type: ignore[arg-type]


def feed_of(*entries: RawEntry, link: str | None = "https://site.example/") -> ParsedFeed:
    return ParsedFeed(kind="rss", title="t", link=link, lang=None, ttl_min=None, entries=entries)


# --- canonical URLs ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("HTTP://Example.COM/Path", "http://example.com/Path"),
        ("https://example.com:443/a", "https://example.com/a"),
        ("http://example.com:80/a", "http://example.com/a"),
        ("http://example.com:8080/a", "http://example.com:8080/a"),
        ("https://example.com", "https://example.com/"),
        ("https://example.com/a?utm_source=x&id=1&utm_medium=y", "https://example.com/a?id=1"),
        ("https://example.com/a?b=2&a=1", "https://example.com/a?b=2&a=1"),
        ("https://example.com/a?fbclid=1&gclid=2&dclid=3&msclkid=4", "https://example.com/a"),
        (
            "https://example.com/a?mc_cid=1&mc_eid=2&yclid=3&_ga=4&igshid=5&ref_src=6&k=v",
            "https://example.com/a?k=v",
        ),
        ("https://example.com/a?UTM_Campaign=x&q=ukraine", "https://example.com/a?q=ukraine"),
        ("https://example.com/a#section-2", "https://example.com/a"),
        ("https://example.com/a?x=1#frag", "https://example.com/a?x=1"),
        ("https://example.com/a b", "https://example.com/a%20b"),
        ("https://example.com/caf%C3%A9", "https://example.com/caf%C3%A9"),
        ("  https://example.com/trim  ", "https://example.com/trim"),
        ("https://[2001:DB8::1]:443/x", "https://[2001:db8::1]/x"),
        ("ftp://example.com/file", None),
        ("mailto:someone@example.com", None),
        ("javascript:alert(1)", None),
        ("/relative/only", None),
        ("https://", None),
        ("http://example.com:99999/", None),
        ("https://example.com/" + "a" * 2_100, None),
    ],
)
def test_canonical_url(url: str, expected: str | None) -> None:
    assert canonical_url(url) == expected


# --- HTML to text -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("plain text", "plain text"),
        ("a&nbsp;b&nbsp;&nbsp;c", "a b c"),
        ("Tom & Jerry", "Tom & Jerry"),
        ("AT&amp;T &lt;b&gt;", "AT&T <b>"),
        ("x<script>alert('hi')</script>y", "xy"),
        ("x<style type='text/css'>p { color: red }</style>y", "xy"),
        ("<SCRIPT>never closed", ""),
        ("one<br>two<br/>three", "one\ntwo\nthree"),
        ("<p>First</p><p>Second</p>", "First\nSecond"),
        ("<div><p><b>bold <i>and italic</i></b> text</p></div>", "bold and italic text"),
        ("<![CDATA[a < b]]> end", "a < b end"),
        ("<!-- hidden --> shown", "shown"),
        ('<a href="x" title="1 > 0">link</a>', "link"),
        ("a < b and c > d", "a < b and c > d"),
        ("  lots   of\t\tspace \r\n\r\n\n here ", "lots of space\nhere"),
        ("<td>a</td><td>b</td>", "a b"),
        ("nul\x00byte\x07bell", "nulbytebell"),
        ("lone \ud800 surrogate", "lone surrogate"),
        ("&#169; 2025 &mdash; &unknownentity;", "© 2025 — &unknownentity;"),
    ],
)
def test_html_to_text(source: str, expected: str) -> None:
    assert html_to_text(source) == expected


# --- content hash ---------------------------------------------------------------------------


def test_content_hash_ignores_case_punctuation_and_spacing() -> None:
    a = content_hash("Talks resume!", "Envoys meet, again.")
    b = content_hash("talks   RESUME", "envoys meet again")
    assert a == b
    assert len(a) == 64
    assert a != content_hash("Talks resume", "Envoys meet again later")
    assert content_hash("a b", "") != content_hash("a", "b")


# --- normalize_entries on fixtures ------------------------------------------------------------


def test_rss20_items() -> None:
    result = normalize_entries(load("rss20.xml"), now=NOW)
    first, second, third = result.items
    assert first.identity == first.guid == "border-desk-1001"
    assert first.url == "https://news.example.org/world/envoys-geneva?id=7"
    assert first.title == "Envoys meet again in Geneva & talk about prisoners"
    assert first.summary == (
        "The two delegations sat down for a third round. An exchange of prisoners was on the table."
    )
    assert first.first_seen_at == NOW
    assert first.lang == "en"
    assert second.url == "https://news.example.org/world/relative-story"
    assert second.summary == "Grain corridor reopens after a pause of six weeks."
    assert third.url == "https://news.example.org/world/sanctions?page=2"
    assert result.warnings == ()


def test_atom_content_keeps_paragraphs_and_plain_text_stays_literal() -> None:
    result = normalize_entries(load("atom10.xml"), now=NOW + timedelta(days=60))
    one, two = result.items
    assert one.title == "Less than <b> more: a text title"
    assert one.content == "First paragraph.\nSecond\nline."
    assert two.title == "An xhtml title"
    assert two.content == "Plain content with a <tag> that is only text."


def test_cp1251_item_is_russian() -> None:
    (item,) = normalize_entries(load("cp1251.xml"), now=NOW).items
    assert item.title == "Переговоры в Стамбуле продолжатся в четверг"
    assert item.lang == "ru"


def test_json_feed_11_items() -> None:
    result = normalize_entries(load("jsonfeed11.json"), now=NOW + timedelta(days=365))
    first, second = result.items
    assert first.lang == "uk"
    assert first.author == "Олена Рибак, Тарас Лис"
    assert first.published_at == datetime(2025, 5, 6, 7, 8, 9, tzinfo=UTC)
    assert second.published_at == NOW + timedelta(days=365)


def test_json_feed_item_without_title_takes_first_words() -> None:
    _, second = normalize_entries(load("jsonfeed10.json"), now=NOW + timedelta(days=365)).items
    assert second.title == "A plain <text> note without a title."
    assert second.identity == "18"


def test_dates_good_garbage_and_future() -> None:
    items = normalize_entries(load("dates.xml"), now=NOW).items
    by_guid = {item.guid: item for item in items}
    assert by_guid["d-1"].published_at == datetime(2025, 1, 8, 11, 0, tzinfo=UTC)
    assert by_guid["d-2"].published_at is None
    assert by_guid["d-3"].published_at == NOW
    assert by_guid["d-4"].published_at == datetime(2025, 1, 15, 12, 5, tzinfo=UTC)


def test_duplicate_and_missing_guids() -> None:
    result = normalize_entries(load("duplicate_guids.xml"), now=NOW)
    identities = [item.identity for item in result.items]
    assert identities[0] == "same-guid"
    assert identities[1].startswith("same-guid#")
    assert identities[2] == "https://echo.example.com/c"
    assert identities[3].startswith("sha256:")
    assert len(identities) == 4
    assert result.warnings == ("dropped 2 exact duplicate items (same GUID and content)",)


def test_a_repeated_guid_is_qualified_by_content_and_copies_anywhere_are_dropped() -> None:
    """Items sharing a GUID: the first keeps it, each later one with other text gets it
    qualified by a hash of its text, and a copy of any of them, wherever it comes, is dropped.
    The qualified form is what is stored, so it must not change between versions."""
    first = entry(guid="g", link="/a", title="Envoys meet", summary="First take.")
    second = entry(guid="g", link="/a", title="Envoys meet", summary="Second take.")
    third = entry(guid="g", link="/a", title="Envoys meet", summary="Third take.")
    result = normalize_entries(feed_of(first, second, first, second, third), now=NOW)

    def qualified(summary: str) -> str:
        text = "\x1f".join(("https://site.example/a", "Envoys meet", summary, ""))
        return "g#" + hashlib.sha256(text.encode()).hexdigest()[:16]

    assert [i.identity for i in result.items] == [
        "g",
        qualified("Second take."),
        qualified("Third take."),
    ]
    assert result.warnings == ("dropped 2 exact duplicate items (same GUID and content)",)


def test_control_characters_removed_everywhere() -> None:
    (item,) = normalize_entries(load("control_chars.xml"), now=NOW).items
    for text in (item.title, item.summary, item.content):
        assert not any(ord(ch) < 32 and ch not in "\n\t" for ch in text)
        assert not any(0xD800 <= ord(ch) <= 0xDFFF for ch in text)
    assert item.title == "Null entity and raw byte"
    assert item.summary == "Lone surrogate and bell here"


def test_bozo_warning_is_passed_on() -> None:
    result = normalize_entries(load("malformed.xml"), now=NOW)
    assert len(result.items) == 2
    assert "mismatched tag" in result.warnings[0]


def test_item_cap_keeps_first_in_document_order() -> None:
    entries = [entry(guid=f"g{i}", title=f"Item {i}") for i in range(7)]
    result = normalize_entries(feed_of(*entries), now=NOW, max_items=5)
    assert [item.guid for item in result.items] == ["g0", "g1", "g2", "g3", "g4"]
    assert result.warnings == ("feed has 7 items, kept the first 5",)


def test_field_caps_and_untitled() -> None:
    long = entry(
        guid="g" * 1_500,
        title="T" * 2_000,
        summary="s " * 4_000,
        content="<p>" + "c" * 60_000 + "</p>",
        author="A" * 600,
    )
    (item,) = normalize_entries(feed_of(long), now=NOW).items
    assert len(item.title) == TITLE_MAX
    assert len(item.summary) <= SUMMARY_MAX
    assert len(item.content) == CONTENT_MAX
    assert item.author is not None and len(item.author) == 500
    assert item.guid is not None and item.guid.startswith("sha256:") and len(item.guid) < 1_000
    (bare,) = normalize_entries(feed_of(entry(guid="x")), now=NOW).items
    assert bare.title == UNTITLED


def test_title_from_long_summary_is_cut_with_ellipsis() -> None:
    words = " ".join(f"word{i}" for i in range(30))
    (item,) = normalize_entries(feed_of(entry(guid="x", summary=words)), now=NOW).items
    assert item.title == " ".join(f"word{i}" for i in range(12)) + "…"


def test_relative_link_resolved_against_feed_link() -> None:
    (item,) = normalize_entries(feed_of(entry(link="/story/1")), now=NOW).items
    assert item.url == item.identity == "https://site.example/story/1"


def test_a_link_urljoin_cannot_resolve_is_no_url_and_the_feed_goes_on() -> None:
    broken, fine = entry(guid="a", link="//[::1"), entry(guid="b", link="/story/2")
    first, second = normalize_entries(feed_of(broken, fine), now=NOW).items
    assert first.url is None and first.identity == "a"
    assert second.url == "https://site.example/story/2"


def test_non_http_link_is_no_url_but_still_an_identity() -> None:
    (item,) = normalize_entries(feed_of(entry(link="mailto:desk@example.com")), now=NOW).items
    assert item.url is None
    assert item.identity == "mailto:desk@example.com"


def test_lang_hint_decides_short_text_only() -> None:
    short = entry(guid="a", title="Kyiv")
    long = entry(guid="b", title="Переговоры продолжатся, что подтвердили обе стороны")
    result = normalize_entries(feed_of(short, long), now=NOW, feed_lang="uk")
    assert [item.lang for item in result.items] == ["uk", "ru"]


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        normalize_entries(feed_of(), now=datetime(2025, 1, 1))


# --- identity properties ----------------------------------------------------------------------

_small_text = st.sampled_from(["", "a", "b", "Talks", "<b>x</b>"])
_raw_entries = st.builds(
    entry,
    guid=st.one_of(st.none(), st.sampled_from(["g1", "g2", "", " g1 "])),
    link=st.one_of(st.none(), st.sampled_from(["https://e.example/1", "/2", "mailto:x@y"])),
    title=_small_text,
    summary=_small_text,
    content=_small_text,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_raw_entries, max_size=12))
def test_identities_are_unique_and_stable(entries: list[RawEntry]) -> None:
    feed = feed_of(*entries)
    first = normalize_entries(feed, now=NOW)
    again = normalize_entries(feed, now=NOW + timedelta(hours=1))
    identities = [item.identity for item in first.items]
    assert len(identities) == len(set(identities))
    assert identities == [item.identity for item in again.items]
    assert all(len(identity) <= 1_100 for identity in identities)


@settings(max_examples=100, deadline=None)
@given(st.lists(_raw_entries, min_size=1, max_size=8), st.data())
def test_adding_later_entries_keeps_earlier_identities(
    entries: list[RawEntry], data: st.DataObject
) -> None:
    cut = data.draw(st.integers(min_value=0, max_value=len(entries)))
    before = normalize_entries(feed_of(*entries[:cut]), now=NOW).items
    after = normalize_entries(feed_of(*entries), now=NOW).items
    assert [item.identity for item in after[: len(before)]] == [item.identity for item in before]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_html_to_text_never_leaves_controls(text: str) -> None:
    out = html_to_text(text)
    assert not any((ord(ch) < 32 and ch not in "\n\t") or 0xD800 <= ord(ch) <= 0xDFFF for ch in out)
    assert out == out.strip()


# --- fast paths agree with the general ones ------------------------------------------------

_URL_PIECES = st.sampled_from(["a", "Z", "0", "-", ".", "/", "%2F", "~", ":", "@", "=", "&", "'"])


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["http", "https"]),
    st.from_regex(r"[a-z0-9.-]{1,12}", fullmatch=True),
    st.lists(_URL_PIECES, max_size=10).map("".join),
    st.sampled_from(["", "?", "?a=1", "?utm_source=x&b=2&&", "?fbclid=1#top", "#top"]),
)
def test_simple_url_shortcut_agrees_with_parsing(
    scheme: str, host: str, path: str, tail: str
) -> None:
    url = f"{scheme}://{host}{'/' + path if path else ''}{tail}"
    assert _SIMPLE_URL_RE.fullmatch(url)
    assert canonical_url(url) == _parsed_canonical_url(url)


def _regex_cleanup(text: str) -> str:
    """html_to_text's whitespace and control cleanup as a chain of regular expressions."""
    text = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]", "", text)
    text = re.sub(r"[^\S\n]+", " ", text)
    return re.sub(r"\s*\n\s*", "\n", text).strip()


_CLEANUP_TEXT = st.text(
    alphabet=st.sampled_from(list("ab .é\n\t\r\x00\x0b\x1f\x7f\x85\xa0\u2028\u3000\ud800")),
    max_size=40,
)


@settings(max_examples=500, deadline=None)
@given(_CLEANUP_TEXT)
def test_line_cleanup_agrees_with_regex_cleanup(text: str) -> None:
    assert html_to_text(text) == _regex_cleanup(text)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=60))
def test_ascii_hash_form_agrees_with_regex_form(text: str) -> None:
    assert _hash_form(text) == " ".join(re.sub(r"[^\w\s]|_", " ", text.casefold()).split())


_GUIDS = st.one_of(st.none(), st.sampled_from(["g1", "g2", "g3", " g1 ", "", "\x00g2"]))
_LINKS = st.one_of(
    st.none(),
    st.sampled_from(["https://a.example/1", "/2", "https://a.example/1?utm_source=x", "mailto:x"]),
)
_TEXTS = st.sampled_from(["Talks resume", "<b>Talks</b> resume", "Ceasefire holds", ""])


@settings(max_examples=300, deadline=None)
@given(
    entries=st.lists(st.tuples(_GUIDS, _LINKS, _TEXTS, _TEXTS), max_size=8),
    known_share=st.integers(0, 3),
    max_items=st.integers(1, 9),
)
def test_skipping_known_identities_leaves_exactly_the_other_items(
    entries: list[tuple[str | None, str | None, str, str]], known_share: int, max_items: int
) -> None:
    """Entries left out before normalising are items whose identity was known, and every such
    item that could be told early is left out; the rest, their identities, order and
    warnings are what the full path gives."""
    feed = ParsedFeed(
        kind="rss",
        title="F",
        link="https://a.example/",
        lang=None,
        ttl_min=None,
        entries=tuple(
            RawEntry(g, link, title, summary, None, None, None, None)
            for g, link, title, summary in entries
        ),
    )
    full = normalize_entries(feed, now=NOW, max_items=max_items)
    known = {item.identity for n, item in enumerate(full.items) if n % 4 < known_share}
    skipped = normalize_entries(feed, now=NOW, max_items=max_items, skip=known)
    unknown = tuple(i for i in full.items if i.identity not in known)
    assert tuple(i for i in skipped.items if i.identity not in known) == unknown
    early = {i for i in entry_identities(feed, max_items) if i is not None}
    assert not {i.identity for i in skipped.items} & known & early
    assert skipped.warnings == full.warnings
