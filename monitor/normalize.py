"""Raw entries in, normalised items out: plain text, canonical URLs, UTC dates, stable ids."""

from __future__ import annotations

import hashlib
import html
import re
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

from monitor.lang import detect_lang
from monitor.types import Item, ParsedFeed, RawEntry

TITLE_MAX = 1_000
SUMMARY_MAX = 5_000
CONTENT_MAX = 50_000
URL_MAX = 2_000
AUTHOR_MAX = 500
GUID_MAX = 1_000
#: Dates further ahead than this are taken as wrong and set to `now`.
FUTURE_TOLERANCE = timedelta(minutes=10)
UNTITLED = "(untitled)"
_TITLE_FROM_SUMMARY_WORDS = 12
_TITLE_FROM_SUMMARY_CHARS = 120

_TRACKING_PARAMS = frozenset(
    {
        "fbclid",
        "gclid",
        "gclsrc",
        "dclid",
        "msclkid",
        "mc_cid",
        "mc_eid",
        "yclid",
        "_ga",
        "_gl",
        "igshid",
        "ref_src",
        "ref_url",
        "twclid",
        "ttclid",
        "li_fat_id",
        "wt.mc_id",
        "oly_enc_id",
        "oly_anon_id",
        "vero_id",
        "_hsenc",
        "_hsmi",
        "mkt_tok",
        "spm",
        "cmpid",
        "at_medium",
        "at_campaign",
        "ns_mchannel",
        "ns_source",
        "ns_campaign",
        "ns_linkname",
        "ns_fee",
    }
)
_TRACKING_PREFIXES = ("utm_", "pk_", "mtm_")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_PATH_SAFE = "/:@!$&'()*+,;=%~-._"

#: Elements whose text is never shown (dropped with their contents).
_HIDDEN_RE = re.compile(
    r"<(script|style|template|noscript|applet)\b[^>]*+>.*?(?:</\1\s*>|\Z)",
    re.IGNORECASE | re.DOTALL,
)
_COMMENT_RE = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)
_CDATA_RE = re.compile(r"<!\[CDATA\[(.*?)(?:\]\]>|\Z)", re.DOTALL)
_BLOCK_TAG_RE = re.compile(
    r"<(?:br|p|div|li|ul|ol|h[1-6]|tr|table|blockquote|pre|section|article|header|footer"
    r"|aside|figure|figcaption|hr|dd|dt|dl|address|main|nav|details|summary)\b"
    r"(?:[^>\"']++|\"[^\"]*+\"|'[^']*+')*+>"
    r"|</(?:p|div|li|ul|ol|h[1-6]|tr|table|blockquote|pre|section|article|header|footer"
    r"|aside|figure|figcaption|dd|dt|dl|address|main|nav|details|summary)\s*>",
    re.IGNORECASE,
)
_CELL_TAG_RE = re.compile(r"</?t[dh]\b[^>]*+>", re.IGNORECASE)
_ANY_TAG_RE = re.compile(r"</?[A-Za-z][^\s/>]*+(?:[^>\"']++|\"[^\"]*+\"|'[^']*+')*+>|<![^>]*+>")
#: C0 controls (except tab and newline), DEL and lone surrogates: PostgreSQL refuses them.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
_PUNCTUATION_RE = re.compile(r"[^\w\s]|_")
#: `_ascii_hash_form` in C (`monitor._wordscan.hash_form`), where the optional module was built:
#: 1.4 µs for a bench summary against 5-7 µs, a tenth of normalising an item.
_HASH_FORM: Callable[[str], str | None] | None
try:
    from monitor import _wordscan
except ImportError:  # installed without a C compiler: the Python path
    _HASH_FORM = None
else:
    _HASH_FORM = _wordscan.hash_form
#: str.translate table for `_ascii_hash_form`: lower case, punctuation and whitespace to " ".
_ASCII_HASH_FORM = {
    code: " " if _PUNCTUATION_RE.match(chr(code)) or chr(code).isspace() else chr(code).lower()
    for code in range(128)
}
#: URLs whose canonical form needs no parsing: lower-case http(s) scheme and host name, no
#: port or user, a path `quote` leaves alone; only tracking, fragment and an empty path change.
_SIMPLE_URL_RE = re.compile(
    r"(https?)://([a-z0-9.-]+)(/[A-Za-z0-9/:@!$&'()*+,;=%~._-]*)?"
    r"(?:\?([\x21\x22\x24-\x7e]*))?(?:#[\x21-\x7e]*)?"
)


@dataclass(frozen=True, slots=True)
class NormalizedFeed:
    """A feed's entries as items ready for deduplication, plus what went wrong on the way."""

    items: tuple[Item, ...]
    warnings: tuple[str, ...] = ()


def normalize_entries(
    feed: ParsedFeed,
    *,
    now: datetime,
    max_items: int = 500,
    feed_lang: str | None = None,
    skip: Collection[str] = (),
) -> NormalizedFeed:
    """Normalise a parsed feed's entries in document order; `now` must be timezone-aware.

    Entries whose identity (`entry_identities`) is in `skip`, typically the identities the
    feed has stored already, are left out without being normalised: exactly the items that
    would have had those identities."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    warnings: list[str] = [feed.warning] if feed.warning else []
    entries = feed.entries
    if len(entries) > max_items:
        warnings.append(f"feed has {len(entries)} items, kept the first {max_items}")
        entries = entries[:max_items]
    if skip:
        identities = entry_identities(feed, max_items)
        entries = tuple(e for e, i in zip(entries, identities, strict=True) if i not in skip)
    base = feed.link or ""
    hint = feed_lang
    items: list[Item] = []
    seen: dict[str, Item | set[str]] = {}
    dropped = 0
    for entry in entries:
        item = _normalize_entry(entry, base=base, now=now, hint=hint, feed_hint=feed.lang)
        identity = _unique_identity(item, seen)
        if identity is None:
            dropped += 1
            continue
        items.append(item if identity == item.identity else _with_identity(item, identity))
    if dropped:
        warnings.append(f"dropped {dropped} exact duplicate items (same GUID and content)")
    return NormalizedFeed(items=tuple(items), warnings=tuple(warnings))


def _normalize_entry(
    entry: RawEntry, *, base: str, now: datetime, hint: str | None, feed_hint: str | None
) -> Item:
    summary = _flat(html_to_text(entry.summary or ""), SUMMARY_MAX)
    content = _cap(html_to_text(entry.content or ""), CONTENT_MAX)
    title = _flat(html_to_text(entry.title or ""), TITLE_MAX) or _title_from(summary or content)
    url = _item_url(entry.link, base)
    guid = _clean_id(entry.guid)
    return Item(
        identity=_identity(guid, url, entry.link, title, summary, content),
        guid=guid,
        url=url,
        title=title,
        summary=summary,
        content=content,
        author=_flat(entry.author or "", AUTHOR_MAX) or None,
        published_at=_clamp(entry.published, now),
        updated_at=_clamp(entry.updated, now),
        first_seen_at=now,
        lang=detect_lang(f"{title}\n{summary}", hint=hint or entry.lang or feed_hint),
        content_hash=content_hash(title, summary),
    )


# --- identity -----------------------------------------------------------------------------


def entry_identities(feed: ParsedFeed, max_items: int = 500) -> list[str | None]:
    """For each entry `normalize_entries` would keep, the identity its item will have when
    that can be told without normalising it: its GUID or its link, unless another entry of
    the feed shares it (a repeated identity is qualified by the item's content); None
    otherwise (no GUID or link: the identity is a hash of the normalised text)."""
    entries = feed.entries[:max_items]
    base = feed.link or ""
    cheap = [_early_identity(e, base) for e in entries]
    repeated = {i for i, n in Counter(cheap).items() if n > 1}
    return [None if i in repeated else i for i in cheap]


def _early_identity(entry: RawEntry, base: str) -> str | None:
    """`_identity` of an entry, as far as it needs no normalised text."""
    return _clean_id(entry.guid) or _item_url(entry.link, base) or _clean_id(entry.link)


def _identity(
    guid: str | None, url: str | None, link: str | None, title: str, summary: str, content: str
) -> str:
    if guid:
        return guid
    if url:
        return url
    raw_link = _clean_id(link)
    if raw_link:
        return raw_link
    return "sha256:" + _sha256("\x1f".join((title, summary, content)))


def _unique_identity(item: Item, seen: dict[str, Item | set[str]]) -> str | None:
    """The item's identity, content-qualified for a repeated GUID; None for an exact copy.

    `seen` maps each identity given out so far to the fingerprints of the items sharing its
    base identity, so a copy is recognised whatever its position; until a second item shares
    it, to the one item itself, whose fingerprint (a hash of all its text) is then taken
    only if that ever happens.
    """
    known = seen.get(item.identity)
    if known is None:
        seen[item.identity] = item
        return item.identity
    if isinstance(known, Item):
        known = seen[item.identity] = {_fingerprint(known)}
    fingerprint = _fingerprint(item)
    if fingerprint in known:
        return None
    known.add(fingerprint)
    qualified = f"{item.identity}#{fingerprint}"
    seen[qualified] = {fingerprint}
    return qualified


def _fingerprint(item: Item) -> str:
    return _sha256("\x1f".join((item.url or "", item.title, item.summary, item.content)))[:16]


def _with_identity(item: Item, identity: str) -> Item:
    return Item(
        identity=identity,
        guid=item.guid,
        url=item.url,
        title=item.title,
        summary=item.summary,
        content=item.content,
        author=item.author,
        published_at=item.published_at,
        updated_at=item.updated_at,
        first_seen_at=item.first_seen_at,
        lang=item.lang,
        content_hash=item.content_hash,
    )


def _clean_id(value: str | None) -> str | None:
    if not value:
        return None
    cleaned = _CONTROL_RE.sub("", value).strip()
    if len(cleaned) > GUID_MAX:
        return "sha256:" + _sha256(cleaned)
    return cleaned or None


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


# --- text ---------------------------------------------------------------------------------


def html_to_text(html_text: str) -> str:
    """Plain text from an HTML fragment: tags gone, entities decoded, one newline per break."""
    text = html_text
    if "<" in text:
        text = _strip_tags(text)
    if "&" in text:
        text = html.unescape(text)
    if "\n" not in text:
        return _clean_line(text)
    # Each whitespace run holding a newline becomes one newline, so blank lines go.
    lines = [_clean_line(line) for line in text.split("\n")]
    return "\n".join([line for line in lines if line])


def _clean_line(line: str) -> str:
    """The line without control characters, with single spaces for whitespace runs, stripped."""
    if line.isprintable() and "  " not in line:
        # Nothing to remove or collapse: all control and whitespace characters bar " " are
        # unprintable.
        return line.strip()
    return " ".join(_CONTROL_RE.sub("", line).split())


def _strip_tags(text: str) -> str:
    text = _COMMENT_RE.sub("", text)
    if "<![" in text:
        text = _CDATA_RE.sub(lambda m: html.escape(m.group(1), quote=False), text)
    text = _HIDDEN_RE.sub("", text)
    text = _BLOCK_TAG_RE.sub("\n", text)
    text = _CELL_TAG_RE.sub(" ", text)
    return _ANY_TAG_RE.sub("", text)


def _flat(text: str, limit: int) -> str:
    """One line of text, collapsed and capped."""
    if "\n" in text or "\t" in text:
        text = " ".join(text.split())
    return _cap(text.strip(), limit)


def _cap(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit].rstrip()


def _title_from(text: str) -> str:
    """The first words of `text` as a stand-in title, with an ellipsis when cut."""
    words = text.split()
    if not words:
        return UNTITLED
    head = " ".join(words[:_TITLE_FROM_SUMMARY_WORDS])
    if len(head) > _TITLE_FROM_SUMMARY_CHARS:
        head = head[:_TITLE_FROM_SUMMARY_CHARS].rsplit(" ", 1)[0]
    cut = len(head) < len(" ".join(words))
    return head + "…" if cut else head


def content_hash(title: str, summary: str) -> str:
    """sha256 of casefolded, punctuation-free, whitespace-collapsed title + summary."""
    return _sha256(_hash_form(title) + "\x1f" + _hash_form(summary))


def _hash_form(text: str) -> str:
    if text.isascii():
        formed = _HASH_FORM(text) if _HASH_FORM is not None else None
        return formed if formed is not None else _ascii_hash_form(text)
    return " ".join(_PUNCTUATION_RE.sub(" ", text.casefold()).split())


def _ascii_hash_form(text: str) -> str:
    """`_hash_form` for ASCII text, where casefold() is lower().

    The table blanks what the regex blanks and turns all whitespace into spaces, so collapsing
    runs of spaces and stripping them does what split() and join() do.
    """
    text = text.translate(_ASCII_HASH_FORM)
    while "  " in text:
        text = text.replace("  ", " ")
    return text.strip(" ")


# --- URLs and dates -----------------------------------------------------------------------


def _item_url(link: str | None, base: str) -> str | None:
    if not link:
        return None
    link = link.strip()
    if base and "://" not in link[:12]:
        try:
            link = urljoin(base, link)
        except ValueError:  # "//[::1": urljoin parses the would-be host and gives up
            return None
    return canonical_url(link)


def canonical_url(url: str) -> str | None:
    """http(s) URL with lower-cased scheme and host, no default port, tracking or fragment."""
    simple = _SIMPLE_URL_RE.fullmatch(url)
    if simple is not None:
        return _simple_canonical_url(*simple.groups())
    return _parsed_canonical_url(url)


def _parsed_canonical_url(url: str) -> str | None:
    try:
        parts = urlsplit(_CONTROL_RE.sub("", url).strip())
        scheme = parts.scheme.lower()
        host = parts.hostname
        port = parts.port
    except ValueError:
        return None
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None or port == _DEFAULT_PORTS[scheme] else f"{host}:{port}"
    path = quote(parts.path, safe=_PATH_SAFE) or "/"
    canonical = urlunsplit((scheme, netloc, path, _clean_query(parts.query), ""))
    return canonical if len(canonical) <= URL_MAX else None


def _simple_canonical_url(
    scheme: str, host: str, path: str | None, query: str | None
) -> str | None:
    """What `_parsed_canonical_url` makes of a URL `_SIMPLE_URL_RE` matched, without parsing."""
    canonical = f"{scheme}://{host}{path or '/'}"
    kept = _clean_query(query or "")
    if kept:
        canonical = f"{canonical}?{kept}"
    return canonical if len(canonical) <= URL_MAX else None


def _clean_query(query: str) -> str:
    if not query:
        return ""
    kept = [pair for pair in query.split("&") if pair and not _is_tracking(pair)]
    return "&".join(kept)


def _is_tracking(pair: str) -> bool:
    key = pair.split("=", 1)[0].lower()
    return key in _TRACKING_PARAMS or key.startswith(_TRACKING_PREFIXES)


def _clamp(moment: datetime | None, now: datetime) -> datetime | None:
    if moment is None:
        return None
    return now if moment > now + FUTURE_TOLERANCE else moment
