"""Deterministic generator of realistic bench feeds (RSS 2.0, Atom, JSON Feed) from a seed."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Literal
from xml.sax.saxutils import escape

FeedKind = Literal["rss", "atom", "json"]

#: Share of items that mention watched actors or topics.
WATCHED_SHARE = 0.15
#: Default date of the newest item of a feed at offset 0; items are 17 minutes apart. The
#: harness passes the hour it starts in, so items look fresh to time windows (stories: 72 h).
BASE_TIME = datetime(2025, 6, 2, 8, 0, tzinfo=UTC)
ITEM_SPACING = timedelta(minutes=17)
KIND_WEIGHTS: tuple[tuple[FeedKind, float], ...] = (("rss", 0.5), ("atom", 0.3), ("json", 0.2))

CONTENT_TYPES: dict[FeedKind, str] = {
    "rss": "application/rss+xml; charset=utf-8",
    "atom": "application/atom+xml; charset=utf-8",
    "json": "application/feed+json; charset=utf-8",
}


def _wordlist(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# Everyday newsroom words; combined at random they read like wire copy without meaning much.
_NOUNS = _wordlist(
    """
    council budget harbour election committee report court ruling market shares bank rates
    inflation housing railway bridge storm flood drought harvest farmers teachers strike
    hospital clinic patients vaccine study researchers university students festival museum
    gallery exhibition concert league match coach striker transfer season stadium airport
    airline fares fuel prices factory workers union contract pension reform tax plan
    minister mayor governor senator parliament assembly district village city region coast
    border police inquiry investigation witness trial verdict appeal prison company profit
    losses quarter investors exports imports shipping port cargo container supply chain
    energy grid turbine solar panels emissions climate summit agreement deal proposal draft
    bill law vote ballot poll campaign rally speech statement spokesperson official agency
    ministry department data figures survey census residents neighbours volunteers charity
    donation fundraiser school pupils exams library park garden river lake forest wildfire
    rescue crews firefighters ambulance road traffic accident motorway tunnel software
    startup platform users privacy regulator fine lawsuit merger takeover chief executive
    board shareholders dividend forecast growth recession economy currency
    """
)
_VERBS = _wordlist(
    """
    announced approved rejected delayed confirmed denied warned promised criticised welcomed
    launched opened closed expanded cut raised lowered signed blocked backed questioned
    reviewed published revealed reported suspended resumed extended doubled halved postponed
    cancelled defended challenged urged examined proposed unveiled
    """
)
_ADJECTIVES = _wordlist(
    """
    new local national regional annual early late major minor sharp steady slow rapid record
    modest fresh long-awaited controversial temporary permanent joint independent public
    private rural urban coastal northern southern eastern western final interim
    """
)
_LINK_PHRASES = (
    "on Monday",
    "on Tuesday",
    "on Wednesday",
    "on Thursday",
    "on Friday",
    "this week",
    "last week",
    "after long talks",
    "before the deadline",
    "despite objections",
    "amid criticism",
    "according to officials",
    "in a statement",
    "late on Sunday",
    "for the third time",
)

# Phrases the watchlist knows: actors and topics of the negotiations story.
_WATCHED = (
    "Zelensky",
    "Volodymyr Zelensky",
    "the Kremlin",
    "Vladimir Putin",
    "Sergey Lavrov",
    "Dmitry Peskov",
    "Steve Witkoff",
    "Marco Rubio",
    "Donald Trump",
    "Kyiv",
    "Moscow",
    "NATO",
    "Istanbul talks",
    "a ceasefire",
    "new sanctions",
    "peace talks",
    "a prisoner exchange",
    "security guarantees",
    "the Ukrainian delegation",
    "Russian negotiators",
    "a peace deal",
    "the front line",
    "Rustem Umerov",
    "Vladimir Medinsky",
    "Kirill Dmitriev",
    "Keith Kellogg",
)
_WATCHED_LINES = (
    "{a} said {b} would be discussed at the next round",
    "{a} and {b} were on the agenda as delegations met",
    "officials close to {a} described {b} as the main sticking point",
    "{a} rejected claims about {b} in a short statement",
    "talks involving {a} turned to {b} late in the evening",
)


@dataclass(frozen=True, slots=True)
class GenItem:
    """One generated entry."""

    guid: str
    link: str
    title: str
    summary: str
    published: datetime
    watched: bool


@dataclass(frozen=True, slots=True)
class GenFeed:
    """A generated feed: which one, its format and size, and how far it has advanced."""

    index: int
    seed: int
    kind: FeedKind
    n_items: int
    #: Number of items published after the initial window (grows with `new_items`).
    offset: int = 0
    #: Publication date of the newest item at offset 0.
    base_time: datetime = BASE_TIME

    @property
    def title(self) -> str:
        return f"Bench Gazette {self.index}"

    @property
    def etag(self) -> str:
        return f'"g{self.seed}-{self.index}-{self.offset}"'

    @property
    def updated(self) -> datetime:
        return self.base_time + ITEM_SPACING * self.offset

    @property
    def last_modified(self) -> str:
        return format_datetime(self.updated, usegmt=True)


def make_feed(
    index: int, seed: int = 1, items_scale: float = 1.0, base_time: datetime = BASE_TIME
) -> GenFeed:
    """Feed number `index`: format and size drawn from a seeded RNG (20–100 items, mean 60)."""
    rng = random.Random(f"feed:{seed}:{index}")
    kinds = [k for k, _ in KIND_WEIGHTS]
    kind = rng.choices(kinds, weights=[w for _, w in KIND_WEIGHTS])[0]
    n_items = max(1, round(rng.randint(20, 100) * items_scale))
    return GenFeed(index=index, seed=seed, kind=kind, n_items=n_items, base_time=base_time)


def make_feeds(
    count: int, seed: int = 1, items_scale: float = 1.0, base_time: datetime = BASE_TIME
) -> list[GenFeed]:
    return [make_feed(i, seed, items_scale, base_time) for i in range(count)]


def new_items(feed: GenFeed, k: int) -> GenFeed:
    """The same feed after `k` new items were published (the oldest `k` fall off the end)."""
    return replace(feed, offset=feed.offset + k)


_SYLLABLES = _wordlist(
    """
    ba be bi bo da de di do fa fe fi ga go ha he ka ke ki ko la le li lo ma me mi mo na ne
    ni no pa pe pi po ra re ri ro sa se si so ta te ti to va ve vi vo za ze zo bran cor dal
    fen gar hol kin lun mar nor pel quin ros sten tor val wen
    """
)
#: Rare words (place names, surnames, jargon) so items share little beyond common words.
_TAIL_SIZE = 20000
#: Share of words drawn from the common lists; the rest come from the long tail.
_COMMON_SHARE = 0.3
_lexicon: list[str] = []
_cum_weights: list[float] = []


def _build_lexicon() -> None:
    rng = random.Random(20250602)
    common = [*_NOUNS, *_VERBS, *_ADJECTIVES]
    tail: set[str] = set()
    while len(tail) < _TAIL_SIZE:
        word = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4)))
        tail.add(word.title() if rng.random() < 0.3 else word)
    _lexicon.extend(common)
    _lexicon.extend(sorted(tail))
    total = 0.0
    for _ in common:
        total += _COMMON_SHARE / len(common)
        _cum_weights.append(total)
    for _ in range(_TAIL_SIZE):
        total += (1 - _COMMON_SHARE) / _TAIL_SIZE
        _cum_weights.append(total)


def _words(rng: random.Random, count: int) -> list[str]:
    if not _lexicon:
        _build_lexicon()
    return rng.choices(_lexicon, cum_weights=_cum_weights, k=count)


def _sentences(words: list[str], rng: random.Random) -> str:
    out: list[str] = []
    start = 0
    while start < len(words):
        end = start + rng.randint(8, 20)
        part = words[start:end]
        if rng.random() < 0.3 and len(part) > 5:
            link = _LINK_PHRASES[int(rng.random() * len(_LINK_PHRASES))].split()
            part = part[: len(part) - len(link)] + link
        chunk = " ".join(part)
        out.append(chunk[:1].upper() + chunk[1:] + ".")
        start = end
    return " ".join(out)


def _prose(rng: random.Random, words: int) -> str:
    return _sentences(_words(rng, words), rng)


def _item_rng(feed: GenFeed, number: int) -> random.Random:
    return random.Random(((feed.seed * 1_000_003) + feed.index) * 1_000_003 + number)


def _watched_line(rng: random.Random) -> str:
    a, b = rng.sample(_WATCHED, 2)
    line = rng.choice(_WATCHED_LINES).format(a=a, b=b)
    return line[:1].upper() + line[1:] + "."


def make_item(feed: GenFeed, number: int) -> GenItem:
    """Item `number` of `feed` (0 is the oldest ever published); the same inputs give the same
    item."""
    rng = _item_rng(feed, number)
    watched = rng.random() < WATCHED_SHARE
    total = rng.randint(40, 150)
    title_words = rng.randint(7, 14)
    title = _prose(rng, title_words).rstrip(".")
    if not watched:
        return _item(feed, number, title, _prose(rng, total - title_words), watched)
    line = _watched_line(rng)
    if rng.random() < 0.5:
        title = f"{rng.choice(_WATCHED)}: {title}"
    left = max(10, total - len(title.split()) - len(line.split()))
    summary = _prose(rng, left)
    summary = f"{line} {summary}" if rng.random() < 0.5 else f"{summary} {line}"
    return _item(feed, number, title, summary, watched)


def _item(feed: GenFeed, number: int, title: str, summary: str, watched: bool) -> GenItem:
    newest = feed.n_items - 1
    published = feed.base_time + ITEM_SPACING * (number - newest)
    return GenItem(
        guid=f"urn:bench:{feed.seed}:{feed.index}:{number}",
        link=f"http://news{feed.index % 37}.example/{feed.index}/story-{number}",
        title=title,
        summary=summary,
        published=published,
        watched=watched,
    )


def items_of(feed: GenFeed) -> list[GenItem]:
    """The items currently in the feed, newest first."""
    last = feed.offset + feed.n_items - 1
    return [make_item(feed, n) for n in range(last, feed.offset - 1, -1)]


def _rfc822(when: datetime) -> str:
    return format_datetime(when, usegmt=True)


def _iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def render_rss(feed: GenFeed, items: list[GenItem]) -> str:
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>',
        f"<title>{escape(feed.title)}</title><link>http://news{feed.index % 37}.example/</link>",
        "<description>Generated news for benchmarks</description>",
        f"<lastBuildDate>{_rfc822(feed.updated)}</lastBuildDate>",
    ]
    for it in items:
        parts.append(
            f"<item><title>{escape(it.title)}</title><link>{escape(it.link)}</link>"
            f'<guid isPermaLink="false">{it.guid}</guid>'
            f"<pubDate>{_rfc822(it.published)}</pubDate>"
            f"<description>{escape(it.summary)}</description></item>"
        )
    parts.append("</channel></rss>\n")
    return "\n".join(parts)


def render_atom(feed: GenFeed, items: list[GenItem]) -> str:
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">',
        f"<title>{escape(feed.title)}</title><id>urn:bench:feed:{feed.seed}:{feed.index}</id>",
        f"<updated>{_iso(feed.updated)}</updated>",
        f'<link href="http://news{feed.index % 37}.example/"/>',
    ]
    for it in items:
        parts.append(
            f"<entry><title>{escape(it.title)}</title><id>{it.guid}</id>"
            f'<link href="{escape(it.link)}"/>'
            f"<updated>{_iso(it.published)}</updated><published>{_iso(it.published)}</published>"
            f"<summary>{escape(it.summary)}</summary></entry>"
        )
    parts.append("</feed>\n")
    return "\n".join(parts)


def render_json(feed: GenFeed, items: list[GenItem]) -> str:
    document = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": feed.title,
        "home_page_url": f"http://news{feed.index % 37}.example/",
        "items": [
            {
                "id": it.guid,
                "url": it.link,
                "title": it.title,
                "content_text": it.summary,
                "date_published": _iso(it.published),
            }
            for it in items
        ],
    }
    return json.dumps(document, ensure_ascii=False)


_RENDERERS = {"rss": render_rss, "atom": render_atom, "json": render_json}


def render(feed: GenFeed) -> bytes:
    """The feed document as served."""
    return _RENDERERS[feed.kind](feed, items_of(feed)).encode("utf-8")


def content_type(feed: GenFeed) -> str:
    return CONTENT_TYPES[feed.kind]
