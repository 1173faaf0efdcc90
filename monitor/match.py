"""The matcher: a watchlist compiled into a token automaton, and the pure scoring of one item.

    text ─ prepare (1:1 characters) ─ tokenize (regex) ─ token keys (lower, light stem)
         ─ automaton (first key → candidate phrases) ─ raw hits
         ─ context and exclusion rules ─ topic scores ─ MatchResult (+ evidence)

The automaton first looks an item's words up whole, each remembered once computed: most texts
hold no phrase and are done with after one dict lookup per word.

`prepare` maps characters one to one (apostrophes to ', hyphens and dashes to a space, Ё to Е),
so every offset found in the prepared text is an offset in the original text.

`Matcher.match_text` explains (every piece of evidence); `Matcher.match` is lean for items that
do not match (see `match_text`); `Matcher.record`, the stream's path, gives what storage keeps
and leaves unscored the items whose hits cannot make any topic pass. All decide alike.

Where the optional compiled module was built (`monitor._wordscan`), a C pass over each text
picks the words where a phrase may start, and only those are looked up here: the same hits,
without a Python string per word (`PhraseIndex.find`).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import accumulate, compress, count, islice
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypeVar, cast

from monitor.similarity import SeedIndex
from monitor.types import FieldName, Hit, Item, Lang, MatchRecord, MatchResult, TopicScore
from monitor.watchlist import Actor, Phrase, Topic, Watchlist, load_watchlist

try:
    from monitor._wordscan import Scanner as _Scanner
except ImportError:  # installed without a C compiler: every word is looked up in Python
    _COMPILED = False
else:
    _COMPILED = True

# --- text normalisation shared by phrases and items ------------------------------------------

_APOSTROPHES = "’‘ʼ`´′ʹ"
_HYPHENS = "-‐‑‒–—―−"
_PREPARE = str.maketrans(
    {**{c: "'" for c in _APOSTROPHES}, **{c: " " for c in _HYPHENS}, "Ё": "Е", "ё": "е"}
)
#: The same mapping as (character, replacement) pairs: a few `str.replace` calls on the
#: characters present are several times faster than `str.translate` with a dict.
_PREPARE_PAIRS = tuple((chr(c), str(r)) for c, r in _PREPARE.items())
#: The pairs an ASCII text may hold (the backtick and the hyphen-minus): `str.isascii` is
#: a flag lookup, and most texts need only these two scans instead of one per pair.
_ASCII_PREPARE_PAIRS = tuple((c, r) for c, r in _PREPARE_PAIRS if c.isascii())

#: A word (letters/digits, apostrophes inside), a whitespace break (anything but one plain
#: space: spaCy keeps those as tokens too), or one punctuation character.
_TOKEN = re.compile(r"(?P<w>[^\W_]+(?:'[^\W_]+)*)|(?P<b>\s{2,}|[^\S ])|(?P<p>[^\w\s]|_)")
_POSSESSIVE = re.compile(r"^(?P<stem>.*[a-zA-Z])'[sS]$")
_BREAK = "\x00"

#: Case endings stripped from Cyrillic words (longest first), on both phrases and items.
_CYR_ENDINGS = tuple(
    sorted(
        [
            "иями",
            "іями",
            "иям",
            "іям",
            "ією",
            "єю",
            "ями",
            "ами",
            "ого",
            "его",
            "ому",
            "ему",
            "ыми",
            "ими",
            "ием",
            "ией",
            "иях",
            "іях",
            "ях",
            "ах",
            "ам",
            "ям",
            "ом",
            "ем",
            "ой",
            "ей",
            "ий",
            "ый",
            "ій",
            "ая",
            "яя",
            "ое",
            "ее",
            "ые",
            "ие",
            "ую",
            "юю",
            "ия",
            "ии",
            "ию",
            "ья",
            "ье",
            "ью",
            "ою",
            "ею",
            "ої",
            "ії",
            "ія",
            "ію",
            "ым",
            "им",
            "ых",
            "их",
            "ов",
            "ев",
            "ів",
            "їв",
            "а",
            "я",
            "о",
            "е",
            "ы",
            "и",
            "у",
            "ю",
            "ь",
            "й",
            "і",
            "ї",
            "є",
        ],
        key=len,
        reverse=True,
    )
)
#: Capitalised Cyrillic words are names: their -ов/-ев/-ів suffix is part of the stem
#: (Лавров, Лаврова, Лавровым → лавров), so "умер" never matches Умеров.
_NAME_SUFFIXES = frozenset({"ов", "ев", "ів", "їв"})
_MIN_STEM = 3


def compiled() -> bool:
    """Whether the matcher's word passes run in the compiled module (`monitor._wordscan`)."""
    return _COMPILED


def prepare(text: str) -> str:
    """Normalise characters one to one, so offsets stay those of the original text."""
    pairs = _ASCII_PREPARE_PAIRS if text.isascii() else _PREPARE_PAIRS
    for char, replacement in pairs:
        if char in text:
            text = text.replace(char, replacement)
    return text


@lru_cache(maxsize=262_144)
def token_key(token: str) -> str:
    """The comparison key of one token: lower case, English plural/possessive, Cyrillic stem."""
    low = token.lower()
    if not low[:1].isalpha():
        return low
    if "\u0400" <= low[0] <= "\u04ff":
        if token.isupper() and len(token) <= 5:
            return low
        return _cyrillic_stem(low, proper=token[0].isupper())
    return _latin_stem(low)


def _cyrillic_stem(word: str, *, proper: bool) -> str:
    for ending in _CYR_ENDINGS:
        if word.endswith(ending) and len(word) - len(ending) >= _MIN_STEM:
            if proper and ending in _NAME_SUFFIXES:
                continue
            return word[: -len(ending)].rstrip("'")
    return word.rstrip("'")


def _latin_stem(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


@dataclass(frozen=True, slots=True)
class Token:
    key: str
    start: int
    end: int


def tokenize(text: str) -> list[Token]:
    """Tokens of (prepared) text: words split like spaCy's tokenizer splits them, punctuation
    one character each, and a break token for any whitespace other than a single space."""
    keys, starts, ends = _scan(text)
    return [Token(k, s, e) for k, s, e in zip(keys, starts, ends, strict=True)]


def _scan(text: str) -> tuple[list[str], list[int], list[int]]:
    """`tokenize` as three parallel lists (keys, starts, ends): the matcher's hot loop."""
    keys: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    key = token_key
    for m in _TOKEN.finditer(text):
        start, end = m.span()
        group = m.lastindex
        if group == 1:
            word = m.group()
            if word[-2:] in ("'s", "'S") and (pm := _POSSESSIVE.match(word)) is not None:
                cut = start + len(pm.group("stem"))
                keys += (key(pm.group("stem")), "'s")
                starts += (start, cut)
                ends += (cut, end)
                continue
            keys.append(key(word))
        elif group == 2:
            keys.append(_BREAK)
        else:
            keys.append(m.group())
        starts.append(start)
        ends.append(end)
    return keys, starts, ends


#: `_TOKEN` as one `findall` pattern without groups, for the automaton: each match is one token
#: with the single plain space before it (if any) taken along, so the matches tile the text and
#: offsets are running sums of their lengths; an English possessive 's (after a Latin letter, at
#: a word's end) is a token of its own, as `_scan` splits it.
_TILE = re.compile(
    r" ?(?:[^\W_]+(?:'(?!(?<=[a-zA-Z]')[sS](?![^\W_]|'[^\W_]))[^\W_]+)*"
    r"|(?<=[a-zA-Z])'[sS](?![^\W_]|'[^\W_])"
    r"|\s{2,}|[^\S ]|[^\w\s]|_)"
)


@lru_cache(maxsize=262_144)
def _tile_key(tile: str) -> str:
    """The key of one `_TILE` match: the same key `_scan` gives that token."""
    token = tile[1:] if tile[0] == " " and len(tile) > 1 else tile
    first = token[0]
    if first.isalnum():
        return token_key(token)
    if first.isspace():
        return _BREAK
    return "'s" if len(token) == 2 else token


def _tile_start(tile: str, end: int) -> int:
    """Where the token of a `_TILE` match ending at `end` starts (past the space taken along)."""
    return end - len(tile) + (tile[0] == " ")


def phrase_keys(phrase: str) -> tuple[str, ...]:
    """A phrase's token keys (breaks inside a phrase are ignored)."""
    return tuple(t.key for t in tokenize(prepare(phrase)) if t.key != _BREAK)


@lru_cache(maxsize=65_536)
def _joined_keys(phrase: str) -> str:
    """A phrase's keys joined by spaces: two spellings of one term share it."""
    return " ".join(phrase_keys(phrase))


# --- the automaton ----------------------------------------------------------------------------

EntryKind = Literal["actor", "topic", "exclude", "context"]


@dataclass(frozen=True, slots=True)
class Entry:
    """One phrase the automaton looks for, and what it stands for."""

    kind: EntryKind
    #: Actor or topic id (for exclude/context: the actor or topic the rule belongs to).
    target: str
    phrase: str
    weight: float = 1.0
    needs_context: bool = False
    #: For exclude/context entries: whether the rule belongs to an actor or a topic.
    owner: Literal["actor", "topic"] = "actor"


class RawHit(NamedTuple):
    """One phrase found in one field (a tuple: made for every hit of every item)."""

    entry: Entry
    field: FieldName
    start: int
    end: int


_V = TypeVar("_V")

#: How many strings a `_Memo` holds before it forgets them all (a bound on a worker's memory).
_MEMO_SIZE = 131_072
#: Whitespace other than the plain space (a text without any is tokenised word by word).
_OTHER_SPACE = re.compile(r"[^\S ]")


def _only_plain_spaces(text: str) -> bool:
    """Whether the only whitespace in `text` is the plain space. Every other whitespace
    character is unprintable, so `isprintable` (a fast C loop) answers for most texts."""
    return text.isprintable() or _OTHER_SPACE.search(text) is None


class _Memo(dict[str, _V]):
    """A function of strings computed once per string (the C-level `__getitem__` of a string
    seen before is the cheapest lookup there is); forgotten wholesale when full. Threads may
    share it: whichever computes a value computes the same one."""

    __slots__ = ("_compute",)

    def __init__(self, compute: Callable[[str], _V]) -> None:
        super().__init__()
        self._compute = compute

    def __missing__(self, key: str) -> _V:
        if len(self) >= _MEMO_SIZE:
            self.clear()
        value = self[key] = self._compute(key)
        return value


class PhraseIndex:
    """Phrases indexed by their first token key: each text token costs one dict lookup plus
    a comparison per phrase starting with that key, however many phrases there are.

    Most texts hold no phrase, and the words that do are few: `find` looks words up whole (runs
    of non-whitespace, split by `str.split`), each once per process, and tokenises only around
    the words that hold a phrase's first token. `_TILE` tokenises a word alone as it does within
    the whole text: its lookarounds see no further than the whitespace around the word, and
    every token but a whitespace one lies inside one word."""

    __slots__ = ("_first", "_reach", "_scanner", "_seconds", "_starts", "_word_starts", "size")

    def __init__(self, entries: Iterable[Entry]) -> None:
        first: dict[str, list[tuple[list[str], int, Entry]]] = defaultdict(list)
        size = 0
        for entry in entries:
            keys = phrase_keys(entry.phrase)
            if keys:
                first[keys[0]].append((list(keys), len(keys), entry))
                size += 1
        self._set_up({k: tuple(v) for k, v in first.items()}, size)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its phrases by first key: a parse worker receives the parent's compiled
        matcher (`monitor.parsejob.start_worker`) and builds the memos, empty, and the
        compiled pass where it is loaded."""
        return (_loaded_index, (self._first, self.size))

    def _set_up(
        self, first: Mapping[str, tuple[tuple[list[str], int, Entry], ...]], size: int
    ) -> None:
        self._first = first
        #: For each first key, how many tokens its longest phrase has, and its phrases' second keys.
        self._reach: Mapping[str, int] = {k: max(n for _, n, _ in v) for k, v in first.items()}
        self._seconds: Mapping[str, frozenset[str]] = {
            k: frozenset(keys[1] for keys, n, _ in v if n > 1) for k, v in first.items()
        }
        self.size = size
        #: Whether a `_TILE` match is the first token of some phrase.
        self._starts = _Memo(self._tile_starts)
        #: Where phrases may start in a word (see `find`).
        self._word_starts = _Memo(self._starts_in_word)
        #: The compiled pass picking the words that may hold a first key, if built. It is
        #: told the second keys of the first keys whose phrases all go on, so it leaves out
        #: a word whose only such token is followed by none of them: `_find_at` would find
        #: nothing there (on the bench's items, three words in five it picked).
        self._scanner = _Scanner(first, self._continuations()) if _COMPILED else None

    def _continuations(self) -> dict[str, frozenset[str]]:
        """The second keys of each first key none of whose phrases is a single token."""
        return {
            key: self._seconds[key]
            for key, phrases in self._first.items()
            if all(n > 1 for _, n, _ in phrases)
        }

    def _tile_starts(self, tile: str) -> bool:
        return _tile_key(tile) in self._first

    def _starts_in_word(self, word: str) -> tuple[tuple[int, int, str], ...]:
        """(start, end, key) of each token of `word` that starts some phrase."""
        if word.isalpha():  # one token, the common case
            key = token_key(word)
            return ((0, len(word), key),) if key in self._first else ()
        found, end = [], 0
        for tile in _TILE.findall(word):
            start, end = end, end + len(tile)
            if (key := _tile_key(tile)) in self._first:
                found.append((start, end, key))
        return tuple(found)

    def find(self, text: str) -> list[tuple[Entry, int, int]]:
        """Every (entry, start, end) whose phrase occurs in `text`, overlaps included: the same
        hits, in the same order, as a loop over `_scan`'s tokens."""
        prepared = prepare(text)
        if _only_plain_spaces(prepared):
            if self._scanner is not None:
                return self._find_in_words(prepared, self._scanner.spans(prepared))
            return self._find_in_spaced(prepared)
        if not any(map(self._word_starts.__getitem__, prepared.split())):
            return []
        return self._find_in_tiles(prepared)

    def _find_in_spaced(self, text: str) -> list[tuple[Entry, int, int]]:
        """`find` on a text whose only whitespace is plain spaces: its words (and the empty
        strings between two spaces) are where `str.split(" ")` cuts, one space apart."""
        words = text.split(" ")
        holding = list(compress(count(), map(self._word_starts.__getitem__, words)))
        if not holding:
            return []
        ends = list(accumulate(map(len, words)))
        found: list[tuple[Entry, int, int]] = []
        for k in holding:
            offset = ends[k] - len(words[k]) + k
            for start, end, key in self._word_starts[words[k]]:
                found += self._find_at(text, offset + start, offset + end, key)
        return found

    def _find_in_words(self, text: str, spans: list[int]) -> list[tuple[Entry, int, int]]:
        """`_find_in_spaced` given the words the compiled pass picked (start and end offsets,
        one pair after the other): every word holding a phrase start and perhaps others, each
        then looked up here, so the hits are the same."""
        found: list[tuple[Entry, int, int]] = []
        bounds = iter(spans)
        for begin, stop in zip(bounds, bounds, strict=True):
            for start, end, key in self._word_starts[text[begin:stop]]:
                found += self._find_at(text, begin + start, begin + end, key)
        return found

    def _find_at(self, text: str, start: int, end: int, key: str) -> list[tuple[Entry, int, int]]:
        """Hits of the phrases whose first token, of key `key`, lies at `start:end`: when the
        next token may continue one of them, the text is tokenised from there as far as the
        longest of them reaches (tokens tile the text, so the next one starts at `end`)."""
        keys, ends = [key], [end]
        following = _TILE.match(text, end) if self._reach[key] > 1 else None
        if following is not None and _tile_key(following.group()) in self._seconds[key]:
            for m in islice(_TILE.finditer(text, end), self._reach[key] - 1):
                keys.append(_tile_key(m.group()))
                ends.append(m.end())
        return [
            (entry, start, ends[n - 1])
            for pkeys, n, entry in self._first[key]
            if n == 1 or keys[:n] == pkeys
        ]

    def _find_in_tiles(self, text: str) -> list[tuple[Entry, int, int]]:
        """`find` on any text: the tokens and the positions where some phrase starts are found
        by C-level passes, keys and offsets are worked out only where a phrase may match."""
        tiles = _TILE.findall(text)
        ends = list(accumulate(map(len, tiles)))
        found: list[tuple[Entry, int, int]] = []
        for i in compress(count(), map(self._starts.__getitem__, tiles)):
            for pkeys, n, entry in self._first[_tile_key(tiles[i])]:
                if n == 1 or list(map(_tile_key, tiles[i : i + n])) == pkeys:
                    found.append((entry, _tile_start(tiles[i], ends[i]), ends[i + n - 1]))
        return found


def _loaded_index(
    first: Mapping[str, tuple[tuple[list[str], int, Entry], ...]], size: int
) -> PhraseIndex:
    """A `PhraseIndex` from what its `__reduce__` pickled."""
    index = PhraseIndex.__new__(PhraseIndex)
    index._set_up(first, size)
    return index


# --- scoring ------------------------------------------------------------------------------------

FIELD_WEIGHTS: Mapping[FieldName, float] = {"title": 1.5, "summary": 1.0, "content": 0.7}
ACTOR_WEIGHT = 0.75
#: A topic's own anchor actors (its `actors:` list) weigh more than other counted actors.
ANCHOR_WEIGHT = 1.0
#: Without a term, a topic needs this many distinct supporting actors, one of them an anchor.
MIN_ACTORS_WITHOUT_TERM = 2
MAX_ACTORS_COUNTED = 3
COOCCURRENCE_BONUS = 0.5
EXTRA_ACTOR_BONUS = 0.25
TITLE_BONUS = 0.25
SIMILARITY_WEIGHT = 2.0
#: An exclusion is overridden by at least this many other independent actors.
STRONG_EVIDENCE_ACTORS = 2
SNIPPET_CHARS = 240


@dataclass(frozen=True, slots=True)
class _Evidence:
    """What the rules left of an item's hits, grouped as `_by_kind` groups them."""

    counted: Mapping[str, list[RawHit]]
    term_hits: Mapping[str, list[RawHit]]
    excluded: Mapping[str, list[RawHit]]
    context: Mapping[str, list[RawHit]]
    #: Each counted actor's best hit weight (field weight × alias weight), in `counted` order.
    actor_best: Mapping[str, float]
    #: Whether some counted actor was found in the title.
    actor_in_title: bool

    @classmethod
    def of(
        cls,
        counted: Mapping[str, list[RawHit]],
        term_hits: Mapping[str, list[RawHit]],
        excluded: Mapping[str, list[RawHit]],
        context: Mapping[str, list[RawHit]],
    ) -> _Evidence:
        best = {
            a: max(FIELD_WEIGHTS[h.field] * h.entry.weight for h in hits)
            for a, hits in counted.items()
        }
        in_title = any(h.field == "title" for hits in counted.values() for h in hits)
        return cls(counted, term_hits, excluded, context, best, in_title)


def _may_pass(score: TopicScore) -> bool:
    """Whether a topic scored without similarity could pass with the largest similarity part
    (cosine 1; 0.001 covers the rounding of parts and total to 3 decimals)."""
    return not score.notes and score.score + SIMILARITY_WEIGHT + 0.001 >= score.threshold


@dataclass(frozen=True)
class _ActorVerdict:
    counted: dict[str, list[RawHit]]
    notes: list[str] = field(default_factory=list)


class Matcher:
    """A watchlist compiled once; immutable and pure, so threads may share it."""

    __slots__ = (
        "_actors",
        "_anchors",
        "_context_notes",
        "_context_topics",
        "_contexts",
        "_index",
        "_live_topics",
        "_no_hits",
        "_seeds",
        "_threshold",
        "_topics",
        "watchlist",
    )

    def __init__(self, watchlist: Watchlist, seeds: SeedIndex | None, index: PhraseIndex) -> None:
        self.watchlist = watchlist
        self._seeds = seeds
        self._index = index
        self._actors: Mapping[str, Actor] = {a.id: a for a in watchlist.actors}
        self._topics: Mapping[str, Topic] = {t.id: t for t in watchlist.topics}
        self._live_topics = tuple(t for t in watchlist.topics if t.status != "rejected")
        #: Each topic's anchor actors as a set, and its threshold (its own or the watchlist's).
        self._anchors: Mapping[str, frozenset[str]] = {
            t.id: frozenset(t.actors) for t in watchlist.topics
        }
        self._threshold: Mapping[str, float] = {
            t.id: t.threshold if t.threshold is not None else watchlist.threshold
            for t in watchlist.topics
        }
        #: Each actor's and topic's context ids as a set (keyed `actor:<id>`, `topic:<id>`),
        #: and each topic's note when its context is missing.
        self._contexts: Mapping[str, frozenset[str]] = {
            **{f"actor:{a.id}": frozenset(a.context) for a in watchlist.actors},
            **{f"topic:{t.id}": frozenset(t.context) for t in watchlist.topics},
        }
        self._context_notes: Mapping[str, str] = {
            t.id: _missing_context_note(t) for t in watchlist.topics
        }
        #: Each topic that needs context, with the topics whose terms its context lists (the
        #: only terms that can give it context; see `record`).
        topic_ids = frozenset(self._topics)
        self._context_topics: Mapping[str, frozenset[str]] = {
            t.id: self._contexts[f"topic:{t.id}"] & topic_ids
            for t in watchlist.topics
            if t.needs_context
        }
        self._no_hits = MatchResult(
            matched=False,
            score=0.0,
            topics=(),
            actors=(),
            hits=(),
            topic_scores=(),
            snippet="",
            nearest_seed=None,
            seed_similarity=0.0,
            watchlist_version=watchlist.version,
            notes=(),
        )

    @classmethod
    def compile(cls, watchlist: Watchlist, seeds: SeedIndex | None) -> Matcher:
        """Compile the watchlist's phrases (rejected entries are left out)."""
        return cls(watchlist, seeds, PhraseIndex(_entries(watchlist)))

    @property
    def phrase_count(self) -> int:
        return self._index.size

    def match(self, item: Item, *, explain: bool = False) -> MatchResult:
        """The pipeline's entry: a lean result unless `explain` (see `match_text`)."""
        return self.match_text(item.title, item.summary, item.content, item.lang, explain=explain)

    def match_text(
        self,
        title: str,
        summary: str = "",
        content: str = "",
        lang: Lang | None = None,
        *,
        explain: bool = True,
    ) -> MatchResult:
        """Match one item's fields; `lang` is informational (each word's script decides).

        With `explain` (the default here, for people: `monitor match`, evaluation) the result
        carries all the evidence. Without it (the stream), a result that did not match carries
        no hits and no snippet, and the seed similarity is computed only when some topic could
        still pass with it; otherwise nearest_seed is None and every similarity part 0. The
        verdict, scores and topics of a matched item are the same either way."""
        del lang
        fields: dict[FieldName, str] = {"title": title, "summary": summary, "content": content}
        raw = self._raw(fields)
        if not explain and not any(h.entry.kind in ("actor", "topic") for h in raw):
            return self._no_hits  # exclusions and context phrases alone raise nothing
        return self._score(fields, raw, explain=explain)

    def _raw(self, fields: Mapping[FieldName, str]) -> list[RawHit]:
        find = self._index.find
        return [
            RawHit(entry, name, start, end)
            for name, text in fields.items()
            if text
            for entry, start, end in find(text)
        ]

    def record(self, item: Item) -> MatchRecord | None:
        """What storage keeps of the item's match, None when it did not match: the stream's
        path, equal to `match_record(match(item))` for a matched item.

        Most items with hits hold only topic terms, such as "talks" or "summit" with no
        watched actor. A topic that needs context gets it only from a counted actor, one of
        its context phrases, or another topic's term listed in its context; when the hits
        hold none of these for any of their topics, nothing can pass and the item is left
        without scoring it. Deciding on the raw hits is safe: the rules applied after them
        (overlapping spans, context and exclusions of actors) only ever drop hits, so they
        cannot give a topic the context its raw hits lack (`_topic_context` decides)."""
        fields: dict[FieldName, str] = {
            "title": item.title,
            "summary": item.summary,
            "content": item.content,
        }
        raw = self._raw(fields)
        if self._cannot_pass([h.entry for h in raw]):
            return None
        result = self._score(fields, raw, explain=False)
        return match_record(result) if result.matched else None

    def _cannot_pass(self, entries: Sequence[Entry]) -> bool:
        """Whether raw hits of these entries leave every topic without the context it needs
        (no actor hit, no context phrase of a hit topic, no hit topic in another's context);
        true for no hits at all, and for exclusions and context phrases alone."""
        needing = self._context_topics
        topics: set[str] = set()
        contexts: set[str] = set()
        for entry in entries:
            kind = entry.kind
            if kind == "actor" or (kind == "topic" and entry.target not in needing):
                return False
            if kind == "topic":
                topics.add(entry.target)
            elif kind == "context" and entry.owner == "topic":
                contexts.add(entry.target)
        return contexts.isdisjoint(topics) and all(needing[t].isdisjoint(topics) for t in topics)

    def raw_hits(self, text: str) -> list[tuple[Entry, int, int]]:
        """The automaton's hits on one text, before any rule (used to prove it equals spaCy)."""
        return self._index.find(text)

    # the decision, step by step

    def _score(
        self, fields: Mapping[FieldName, str], raw: list[RawHit], *, explain: bool
    ) -> MatchResult:
        notes: list[str] = []
        watched = _drop_contained(
            _unique_spans([h for h in raw if h.entry.kind in ("actor", "topic")]), notes
        )
        groups = _by_kind(watched, [h for h in raw if h.entry.kind in ("exclude", "context")])
        actor_hits, term_hits = groups["actor"], groups["topic"]
        excluded, context = groups["exclude"], groups["context"]
        verdict = self._actors_verdict(actor_hits, term_hits, excluded, context)
        notes.extend(verdict.notes)
        counted = verdict.counted
        evidence = _Evidence.of(counted, term_hits, excluded, context)
        any_hit = bool(counted or term_hits)
        if explain:
            seed_name, seed_sim = self._nearest(fields, any_hit)
            scores = self._topic_scores(evidence, seed_sim)
        else:
            seed_name, seed_sim = None, 0.0
            scores = self._topic_scores(evidence, 0.0)
            if any(_may_pass(s) for s in scores):
                seed_name, seed_sim = self._nearest(fields, any_hit)
                if seed_sim:
                    scores = [_with_similarity(s, seed_sim) for s in scores]
        scores.sort(key=lambda s: (not s.passed, -s.score, s.topic))
        passed = [s for s in scores if s.passed]
        if not passed and not explain:
            return MatchResult(
                matched=False,
                score=0.0,
                topics=(),
                actors=tuple(sorted(counted)),
                hits=(),
                topic_scores=tuple(scores),
                snippet="",
                nearest_seed=seed_name,
                seed_similarity=seed_sim,
                watchlist_version=self.watchlist.version,
                notes=tuple(notes),
            )
        kept = [h for h in watched if h.entry.kind == "topic" or h.entry.target in counted]
        kept.sort(key=lambda h: (_FIELD_ORDER[h.field], h.start, h.end))
        return MatchResult(
            matched=bool(passed),
            score=passed[0].score if passed else 0.0,
            topics=tuple(s.topic for s in passed),
            actors=tuple(sorted(counted)),
            hits=tuple(_to_hit(h, fields) for h in kept),
            topic_scores=tuple(scores),
            snippet=make_snippet(fields, kept),
            nearest_seed=seed_name,
            seed_similarity=seed_sim,
            watchlist_version=self.watchlist.version,
            notes=tuple(notes),
        )

    def _topic_scores(self, evidence: _Evidence, seed_sim: float) -> list[TopicScore]:
        """Scores of the topics a term or an anchor actor raised, unsorted."""
        counted, term_hits = evidence.counted, evidence.term_hits
        return [
            s
            for topic in self._live_topics
            if (topic.id in term_hits or not self._anchors[topic.id].isdisjoint(counted))
            and (s := self._topic_score(topic, evidence, seed_sim))
        ]

    def _nearest(self, fields: Mapping[FieldName, str], any_hit: bool) -> tuple[str | None, float]:
        if self._seeds is None or not any_hit:
            return None, 0.0
        return self._seeds.nearest(" ".join(t for t in fields.values() if t))

    def _actors_verdict(
        self,
        actor_hits: Mapping[str, list[RawHit]],
        term_hits: Mapping[str, list[RawHit]],
        excluded: Mapping[str, list[RawHit]],
        context: Mapping[str, list[RawHit]],
    ) -> _ActorVerdict:
        """Which actors count: weak hits need context, exclusions veto without strong evidence."""
        independent = {a for a, hits in actor_hits.items() if any(not self._weak(h) for h in hits)}
        clean = {a for a in independent if not excluded.get(f"actor:{a}") and self._specific(a)}
        verdict = _ActorVerdict(counted={})
        for actor_id, hits in actor_hits.items():
            actor = self._actors[actor_id]
            strong = [h for h in hits if not self._weak(h)]
            if not strong and not self._has_context(actor, independent, term_hits, context):
                verdict.notes.append(_no_context_note(actor, hits))
                continue
            vetoes = excluded.get(f"actor:{actor_id}", [])
            others = clean - {actor_id}
            if vetoes and len(others) < STRONG_EVIDENCE_ACTORS:
                verdict.notes.append(
                    f"actor {actor_id} dropped: excluded by {_quote(vetoes)} "
                    f"and fewer than {STRONG_EVIDENCE_ACTORS} other specific independent actors"
                )
                continue
            if vetoes:
                verdict.notes.append(
                    f"actor {actor_id} kept despite {_quote(vetoes)}: "
                    f"strong evidence from {', '.join(sorted(others))}"
                )
            verdict.counted[actor_id] = hits
        return verdict

    def _specific(self, actor_id: str) -> bool:
        """Countries are named in too many stories to outweigh an exclusion."""
        return self._actors[actor_id].type != "country"

    def _weak(self, hit: RawHit) -> bool:
        return hit.entry.needs_context or self._actors[hit.entry.target].needs_context

    def _has_context(
        self,
        actor: Actor,
        independent: set[str],
        term_hits: Mapping[str, list[RawHit]],
        context: Mapping[str, list[RawHit]],
    ) -> bool:
        if actor.context:
            wanted = self._contexts[f"actor:{actor.id}"]
            present = (independent - {actor.id}) | set(term_hits)
            return not wanted.isdisjoint(present) or bool(context.get(f"actor:{actor.id}"))
        return bool(independent - {actor.id}) or bool(term_hits)

    def _topic_score(self, topic: Topic, evidence: _Evidence, seed_sim: float) -> TopicScore | None:
        counted, term_hits = evidence.counted, evidence.term_hits
        excluded, context = evidence.excluded, evidence.context
        terms = term_hits.get(topic.id, [])
        topic_actors = self._anchors[topic.id]
        anchors = [a for a in counted if a in topic_actors]
        if not terms and not anchors:
            return None
        parts = _topic_parts(terms, evidence, topic_actors, seed_sim)
        notes: list[str] = []
        if not terms and not self._anchors_suffice(topic, counted):
            notes.append(
                f"topic {topic.id} has no term; its anchors ({', '.join(sorted(anchors))}) need "
                "a second anchor or a context person or organisation (not a country or place)"
            )
        if topic.needs_context and not self._topic_context(topic, counted, term_hits, context):
            notes.append(self._context_notes[topic.id])
        vetoes = excluded.get(f"topic:{topic.id}", [])
        if vetoes:
            wanted = self._contexts[f"topic:{topic.id}"]
            strong = [
                a
                for a in counted
                if self._specific(a)
                and not self._actors[a].needs_context
                and (not wanted or a in wanted)
            ]
            if len(strong) < STRONG_EVIDENCE_ACTORS:
                notes.append(
                    f"topic {topic.id} vetoed by {_quote(vetoes)}: fewer than "
                    f"{STRONG_EVIDENCE_ACTORS} specific independent context actors"
                )
        threshold = self._threshold[topic.id]
        return TopicScore(
            topic=topic.id,
            score=round(sum(parts.values()), 3),
            threshold=threshold,
            parts=parts,
            notes=tuple(notes),
        )

    def _supporting(self, topic: Topic, counted: Mapping[str, list[RawHit]]) -> set[str]:
        """Counted actors that vouch for a topic without a term: its anchors, and people,
        organisations and groups from its context. Countries and other places are left out:
        they are named in too many stories (a concert in Kharkiv, a museum in Moscow)."""
        allowed, anchors = self._contexts[f"topic:{topic.id}"], self._anchors[topic.id]
        return {
            a
            for a in counted
            if self._actors[a].type != "country"
            and (
                a in anchors or ((a in allowed or not allowed) and self._actors[a].type != "place")
            )
        }

    def _anchors_suffice(self, topic: Topic, counted: Mapping[str, list[RawHit]]) -> bool:
        """At least two distinct supporting actors, one of them an anchor of the topic."""
        support = self._supporting(topic, counted)
        anchors = self._anchors[topic.id]
        return len(support) >= MIN_ACTORS_WITHOUT_TERM and not anchors.isdisjoint(support)

    def _topic_context(
        self,
        topic: Topic,
        counted: Mapping[str, list[RawHit]],
        term_hits: Mapping[str, list[RawHit]],
        context: Mapping[str, list[RawHit]],
    ) -> bool:
        if not topic.context:
            return bool(counted)
        wanted = self._contexts[f"topic:{topic.id}"]
        return (
            not wanted.isdisjoint(counted)
            or any(t != topic.id and t in wanted for t in term_hits)
            or bool(context.get(f"topic:{topic.id}"))
        )


_FIELD_ORDER: Mapping[FieldName, int] = {"title": 0, "summary": 1, "content": 2}


def _entries(watchlist: Watchlist) -> list[Entry]:
    ids = {a.id for a in watchlist.actors} | {t.id for t in watchlist.topics}
    entries: list[Entry] = []
    for actor in watchlist.actors:
        entries += _rule_entries("actor", actor.id, actor.status, actor.aliases, actor, ids)
    for topic in watchlist.topics:
        entries += _rule_entries("topic", topic.id, topic.status, topic.terms, topic, ids)
    return entries


def _rule_entries(
    kind: Literal["actor", "topic"],
    target: str,
    status: str,
    phrases: Sequence[Phrase],
    rule: Actor | Topic,
    ids: set[str],
) -> list[Entry]:
    """An actor's aliases or a topic's terms, plus its exclusions and its context phrases
    (context given as another actor or topic id is resolved by id, not searched as text)."""
    if status == "rejected":
        return []
    entries = [Entry(kind, target, p.text, p.weight, p.needs_context) for p in phrases]
    entries += [Entry("exclude", target, x, owner=kind) for x in rule.exclude]
    entries += [Entry("context", target, c, owner=kind) for c in rule.context if c not in ids]
    return entries


def _by_kind(*lists: list[RawHit]) -> dict[EntryKind, dict[str, list[RawHit]]]:
    """Hits by kind, then by target; rule hits are keyed `actor:<id>` or `topic:<id>`."""
    out: dict[EntryKind, dict[str, list[RawHit]]] = {
        "actor": {},
        "topic": {},
        "exclude": {},
        "context": {},
    }
    for hits in lists:
        for h in hits:
            entry = h.entry
            kind = entry.kind
            key = entry.target if kind in ("actor", "topic") else f"{entry.owner}:{entry.target}"
            group = out[kind]
            if key in group:
                group[key].append(h)
            else:
                group[key] = [h]
    return out


def _unique_spans(hits: list[RawHit]) -> list[RawHit]:
    """One hit per target and span (two spellings of one alias may find the same words)."""
    seen: dict[tuple[str, str, str, int, int], RawHit] = {}
    for h in hits:
        seen.setdefault((h.entry.kind, h.entry.target, h.field, h.start, h.end), h)
    return list(seen.values())


def _drop_contained(hits: list[RawHit], notes: list[str]) -> list[RawHit]:
    """Drop a hit lying inside a longer hit of the same kind in the same field."""
    alike: dict[tuple[FieldName, EntryKind], list[RawHit]] = defaultdict(list)
    for h in hits:
        alike[h.field, h.entry.kind].append(h)
    kept: list[RawHit] = []
    for h in hits:
        outer = next(
            (
                o
                for o in alike[h.field, h.entry.kind]
                if o.start <= h.start and h.end <= o.end and (o.end - o.start) > (h.end - h.start)
            ),
            None,
        )
        if outer is None:
            kept.append(h)
        else:
            notes.append(
                f"{h.entry.kind} {h.entry.target}: {h.entry.phrase!r} in {h.field} is part of "
                f"{outer.entry.phrase!r} ({outer.entry.target}); counted once"
            )
    return kept


def _topic_parts(
    terms: list[RawHit], evidence: _Evidence, anchors: frozenset[str], seed_sim: float
) -> dict[str, float]:
    best_term: dict[str, float] = {}
    for h in terms:
        w = FIELD_WEIGHTS[h.field] * h.entry.weight
        key = _joined_keys(h.entry.phrase)
        best_term[key] = max(best_term.get(key, 0.0), w)
    actor_weights = sorted(
        (
            (ANCHOR_WEIGHT if actor in anchors else ACTOR_WEIGHT) * best
            for actor, best in evidence.actor_best.items()
        ),
        reverse=True,
    )[:MAX_ACTORS_COUNTED]
    term_part = sum(best_term.values())
    actor_part = sum(actor_weights)
    in_title = evidence.actor_in_title or any(h.field == "title" for h in terms)
    cooccurrence = (COOCCURRENCE_BONUS if term_part and actor_part else 0.0) + (
        EXTRA_ACTOR_BONUS if len(actor_weights) >= 2 else 0.0
    )
    return {
        "terms": round(term_part, 3),
        "actors": round(actor_part, 3),
        "cooccurrence": round(cooccurrence, 3),
        "title": round(TITLE_BONUS if in_title else 0.0, 3),
        "similarity": round(SIMILARITY_WEIGHT * seed_sim, 3),
    }


def _with_similarity(score: TopicScore, seed_sim: float) -> TopicScore:
    """A score made without similarity, with it: the same parts `_topic_parts` gives."""
    parts = {**score.parts, "similarity": round(SIMILARITY_WEIGHT * seed_sim, 3)}
    total = round(sum(parts.values()), 3)
    return TopicScore(score.topic, total, score.threshold, parts, score.notes)


def _missing_context_note(topic: Topic) -> str:
    wanted = ", ".join(topic.context) if topic.context else "any counted actor"
    return f"topic {topic.id} needs context ({wanted}); none found"


def _no_context_note(actor: Actor, hits: Sequence[RawHit]) -> str:
    wanted = ", ".join(actor.context) if actor.context else "another independent actor or a term"
    return f"actor {actor.id} ({_quote(hits)}) not counted: needs context ({wanted}), none found"


def _quote(hits: Sequence[RawHit]) -> str:
    return ", ".join(dict.fromkeys(repr(h.entry.phrase) for h in hits))


#: A watched hit's kind (an alias: subscripting Literal at each call costs more than the Hit).
_HitKind = Literal["actor", "topic"]


def _to_hit(h: RawHit, fields: Mapping[FieldName, str]) -> Hit:
    kind = cast(_HitKind, h.entry.kind)
    text = fields[h.field][h.start : h.end]
    return Hit(kind, h.entry.target, h.entry.phrase, h.field, h.start, h.end, text)


# --- snippet --------------------------------------------------------------------------------------


def make_snippet(fields: Mapping[FieldName, str], hits: Sequence[RawHit]) -> str:
    """Title with hits marked, then the densest ~240-character window of the body."""
    spans: dict[FieldName, list[tuple[int, int]]] = defaultdict(list)
    for h in hits:
        spans[h.field].append((h.start, h.end))
    title = _mark(fields.get("title", ""), spans.get("title", []), 0, len(fields.get("title", "")))
    body_field: FieldName = max(
        ("summary", "content"), key=lambda f: (len(spans.get(f, [])), f == "summary")
    )
    body = fields.get(body_field, "") or fields.get("content", "")
    if not body:
        return title
    start, end = _densest_window(body, spans.get(body_field, []))
    window = _mark(body, spans.get(body_field, []), start, end)
    prefix = "…" if start > 0 else ""
    suffix = "…" if end < len(body) else ""
    return f"{title} — {prefix}{window}{suffix}" if title else f"{prefix}{window}{suffix}"


def _densest_window(text: str, spans: Sequence[tuple[int, int]]) -> tuple[int, int]:
    if len(text) <= SNIPPET_CHARS or not spans:
        return 0, min(len(text), SNIPPET_CHARS) if len(text) > SNIPPET_CHARS else len(text)
    best_start, best_count = 0, -1
    for s, _ in sorted(spans):
        start = max(0, min(s - 40, len(text) - SNIPPET_CHARS))
        count = sum(1 for a, b in spans if a >= start and b <= start + SNIPPET_CHARS)
        if count > best_count:
            best_start, best_count = start, count
    start, end = best_start, min(len(text), best_start + SNIPPET_CHARS)
    if start > 0 and (space := text.find(" ", start)) != -1 and space < end:
        start = space + 1
    if end < len(text) and (space := text.rfind(" ", start, end)) > start:
        end = space
    return start, end


def _mark(text: str, spans: Sequence[tuple[int, int]], start: int, end: int) -> str:
    merged: list[list[int]] = []
    for a, b in sorted(spans):
        if a < start or b > end:
            continue
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    out, pos = [], start
    for a, b in merged:
        out += [text[pos:a], "**", text[a:b], "**"]
        pos = b
    out.append(text[pos:end])
    return "".join(out)


# --- evidence (stored in matches.evidence) -----------------------------------------------------

EVIDENCE_FORMAT = 1


def evidence_to_json(result: MatchResult) -> dict[str, Any]:
    """Everything a person needs to check a match, as JSON-serialisable data with stable keys."""
    return {
        "format": EVIDENCE_FORMAT,
        "watchlist_version": result.watchlist_version,
        "matched": result.matched,
        "score": result.score,
        "topics": list(result.topics),
        "actors": list(result.actors),
        "hits": [
            {
                "kind": h.kind,
                "target": h.target,
                "phrase": h.phrase,
                "field": h.field,
                "start": h.start,
                "end": h.end,
                "text": h.text,
            }
            for h in result.hits
        ],
        "topic_scores": [
            {
                "topic": s.topic,
                "score": s.score,
                "threshold": s.threshold,
                "passed": s.passed,
                "parts": dict(s.parts),
                "notes": list(s.notes),
            }
            for s in result.topic_scores
        ],
        "snippet": result.snippet,
        "nearest_seed": result.nearest_seed,
        "seed_similarity": result.seed_similarity,
        "notes": list(result.notes),
    }


def match_record(result: MatchResult) -> MatchRecord:
    """What storage keeps of `result`: its verdict, its evidence as JSON text (as the
    `matches.evidence` column's own encoder writes it), and the topic phrases it hit
    (casefolded, each once)."""
    terms = dict.fromkeys(h.phrase.casefold() for h in result.hits if h.kind == "topic")
    return MatchRecord(
        score=result.score,
        topics=result.topics,
        actors=result.actors,
        evidence_json=json.dumps(evidence_to_json(result)),
        watchlist_version=result.watchlist_version,
        terms=tuple(terms),
    )


def evidence_from_json(data: Mapping[str, Any]) -> MatchResult:
    """Rebuild a MatchResult from stored evidence (for re-display)."""
    return MatchResult(
        matched=bool(data["matched"]),
        score=float(data["score"]),
        topics=tuple(data["topics"]),
        actors=tuple(data["actors"]),
        hits=tuple(
            Hit(h["kind"], h["target"], h["phrase"], h["field"], h["start"], h["end"], h["text"])
            for h in data["hits"]
        ),
        topic_scores=tuple(
            TopicScore(s["topic"], s["score"], s["threshold"], dict(s["parts"]), tuple(s["notes"]))
            for s in data["topic_scores"]
        ),
        snippet=data["snippet"],
        nearest_seed=data["nearest_seed"],
        seed_similarity=float(data["seed_similarity"]),
        watchlist_version=data["watchlist_version"],
        notes=tuple(data["notes"]),
    )


# --- the cache the scheduler reloads each cycle --------------------------------------------------


class MatcherCache:
    """Holds the current Matcher; `reload` recompiles only when the file's content changed.

    An invalid edit raises WatchlistError and leaves the previous Matcher in force.
    """

    def __init__(self, seeds: SeedIndex | None) -> None:
        self._seeds = seeds
        self._lock = threading.Lock()
        self._matcher: Matcher | None = None
        self._stat: tuple[int, int] | None = None
        self._digest: str | None = None
        self.compilations = 0

    @property
    def matcher(self) -> Matcher | None:
        return self._matcher

    def reload(self, path: Path) -> Matcher:
        """The Matcher for the file as it is now (recompiled only if its content changed)."""
        with self._lock:
            st = path.stat() if path.exists() else None
            stat = (st.st_mtime_ns, st.st_size) if st else None
            if self._matcher is not None and stat is not None and stat == self._stat:
                return self._matcher
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if st else None
            if self._matcher is not None and digest is not None and digest == self._digest:
                self._stat = stat
                return self._matcher
            matcher = Matcher.compile(load_watchlist(path), self._seeds)
            self._matcher, self._stat, self._digest = matcher, stat, digest
            self.compilations += 1
            return matcher
