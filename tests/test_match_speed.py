"""The fast matcher gives exactly the results of the straightforward one it replaced.

`_RefMatcher` below is the matcher as it was before the speed work (token loop over `_scan`,
every topic scored with the seed similarity, hits and snippet always built), kept verbatim as the
reference. `Matcher.match_text` (explain, the default) must equal it on every item of the
evaluation sets and the seed documents; `Matcher.match` (lean, the stream's path) must agree on
every verdict, equal it whole on matched items, and differ on the others only as documented.
"""

from __future__ import annotations

import importlib
import json
import math
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Literal, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.match import (
    _BREAK,
    _PREPARE,
    _TILE,
    ACTOR_WEIGHT,
    ANCHOR_WEIGHT,
    COOCCURRENCE_BONUS,
    EXTRA_ACTOR_BONUS,
    FIELD_WEIGHTS,
    MAX_ACTORS_COUNTED,
    MIN_ACTORS_WITHOUT_TERM,
    SIMILARITY_WEIGHT,
    SNIPPET_CHARS,
    STRONG_EVIDENCE_ACTORS,
    TITLE_BONUS,
    Entry,
    Matcher,
    PhraseIndex,
    _entries,
    _Memo,
    _only_plain_spaces,
    _scan,
    _tile_key,
    _tile_start,
    match_record,
    phrase_keys,
    prepare,
)
from monitor.normalize import normalize_entries
from monitor.parse import parse_feed
from monitor.similarity import _STOPWORDS, _WORD, SeedIndex, load_seed_index
from monitor.types import FieldName, Hit, Item, Lang, MatchResult, TopicScore
from monitor.watchlist import Actor, Topic, Watchlist, load_watchlist

ROOT = Path(__file__).resolve().parent.parent
WATCHLIST = ROOT / "config" / "watchlist.yaml"
CORPUS = ROOT / "corpus"

# --- the reference: the matcher before the speed work ----------------------------------------


def _ref_terms(text: str) -> Counter[str]:
    words = (w.lower() for w in _WORD.findall(text))
    return Counter(_ref_singular(w) for w in words if w not in _STOPWORDS)


def _ref_singular(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _ref_weights(
    counts: Mapping[str, int], idf: Mapping[str, float], unseen: float
) -> dict[str, float]:
    vec = {t: (1.0 + math.log(n)) * idf.get(t, unseen) for t, n in counts.items()}
    norm = math.sqrt(sum(v * v for v in vec.values()))
    return {t: v / norm for t, v in vec.items()} if norm else {}


def _ref_nearest(seeds: SeedIndex, text: str) -> tuple[str | None, float]:
    query = _ref_weights(_ref_terms(text), seeds.idf, seeds.unseen_idf)
    best: tuple[str | None, float] = (None, 0.0)
    for name, vec in zip(seeds.names, seeds.vectors, strict=True):
        sim = sum(w * vec.get(t, 0.0) for t, w in query.items())
        if sim > best[1]:
            best = (name, sim)
    return best[0], round(best[1], 4)


@dataclass(frozen=True, slots=True)
class _RefRawHit:
    entry: Entry
    field: FieldName
    start: int
    end: int


class _RefIndex:
    """Phrases indexed by their first token key: each text token costs one dict lookup plus
    a comparison per phrase starting with that key, however many phrases there are."""

    __slots__ = ("_first", "size")

    def __init__(self, entries: Iterable[Entry]) -> None:
        first: dict[str, list[tuple[tuple[str, ...], Entry]]] = defaultdict(list)
        size = 0
        for entry in entries:
            keys = phrase_keys(entry.phrase)
            if keys:
                first[keys[0]].append((keys, entry))
                size += 1
        self._first: Mapping[str, tuple[tuple[tuple[str, ...], Entry], ...]] = {
            k: tuple(v) for k, v in first.items()
        }
        self.size = size

    def find(self, text: str) -> list[tuple[Entry, int, int]]:
        """Every (entry, start, end) whose phrase occurs in `text`, overlaps included."""
        keys, starts, ends = _scan(text.translate(_PREPARE))
        found: list[tuple[Entry, int, int]] = []
        lookup = self._first.get
        for i, key in enumerate(keys):
            candidates = lookup(key)
            if candidates is None:
                continue
            for pkeys, entry in candidates:
                n = len(pkeys)
                if n == 1 or tuple(keys[i : i + n]) == pkeys:
                    found.append((entry, starts[i], ends[i + n - 1]))
        return found


@dataclass(frozen=True)
class _ActorVerdict:
    counted: dict[str, list[_RefRawHit]]
    notes: list[str] = field(default_factory=list)


class _RefMatcher:
    """A watchlist compiled once; immutable and pure, so threads may share it."""

    __slots__ = ("_actors", "_index", "_seeds", "_topics", "watchlist")

    def __init__(self, watchlist: Watchlist, seeds: SeedIndex | None, index: _RefIndex) -> None:
        self.watchlist = watchlist
        self._seeds = seeds
        self._index = index
        self._actors: Mapping[str, Actor] = {a.id: a for a in watchlist.actors}
        self._topics: Mapping[str, Topic] = {t.id: t for t in watchlist.topics}

    @classmethod
    def compile(cls, watchlist: Watchlist, seeds: SeedIndex | None) -> _RefMatcher:
        """Compile the watchlist's phrases (rejected entries are left out)."""
        return cls(watchlist, seeds, _RefIndex(_entries(watchlist)))

    @property
    def phrase_count(self) -> int:
        return self._index.size

    def match(self, item: Item) -> MatchResult:
        return self.match_text(item.title, item.summary, item.content, item.lang)

    def match_text(
        self, title: str, summary: str = "", content: str = "", lang: Lang | None = None
    ) -> MatchResult:
        """Match one item's fields; `lang` is informational (each word's script decides)."""
        del lang
        fields: dict[FieldName, str] = {"title": title, "summary": summary, "content": content}
        raw = [
            _RefRawHit(entry, name, start, end)
            for name, text in fields.items()
            if text
            for entry, start, end in self._index.find(text)
        ]
        return self._score(fields, raw)

    def raw_hits(self, text: str) -> list[tuple[Entry, int, int]]:
        """The automaton's hits on one text, before any rule (used to prove it equals spaCy)."""
        return self._index.find(text)

    # the decision, step by step

    def _score(self, fields: Mapping[FieldName, str], raw: list[_RefRawHit]) -> MatchResult:
        notes: list[str] = []
        watched = _drop_contained(
            _unique_spans([h for h in raw if h.entry.kind in ("actor", "topic")]), notes
        )
        rules = [h for h in raw if h.entry.kind in ("exclude", "context")]
        actor_hits = _group(h for h in watched if h.entry.kind == "actor")
        term_hits = _group(h for h in watched if h.entry.kind == "topic")
        excluded = _group(h for h in rules if h.entry.kind == "exclude")
        context = _group(h for h in rules if h.entry.kind == "context")
        verdict = self._actors_verdict(actor_hits, term_hits, excluded, context)
        notes.extend(verdict.notes)
        counted = verdict.counted
        seed_name, seed_sim = self._nearest(fields, bool(counted or term_hits))
        scores = [
            s
            for topic in self.watchlist.topics
            if topic.status != "rejected"
            and (s := self._topic_score(topic, counted, term_hits, excluded, context, seed_sim))
        ]
        scores.sort(key=lambda s: (not s.passed, -s.score, s.topic))
        passed = [s for s in scores if s.passed]
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

    def _nearest(self, fields: Mapping[FieldName, str], any_hit: bool) -> tuple[str | None, float]:
        if self._seeds is None or not any_hit:
            return None, 0.0
        return _ref_nearest(self._seeds, " ".join(t for t in fields.values() if t))

    def _actors_verdict(
        self,
        actor_hits: Mapping[str, list[_RefRawHit]],
        term_hits: Mapping[str, list[_RefRawHit]],
        excluded: Mapping[str, list[_RefRawHit]],
        context: Mapping[str, list[_RefRawHit]],
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

    def _weak(self, hit: _RefRawHit) -> bool:
        return hit.entry.needs_context or self._actors[hit.entry.target].needs_context

    def _has_context(
        self,
        actor: Actor,
        independent: set[str],
        term_hits: Mapping[str, list[_RefRawHit]],
        context: Mapping[str, list[_RefRawHit]],
    ) -> bool:
        if actor.context:
            present = (independent - {actor.id}) | set(term_hits)
            return bool(present & set(actor.context)) or bool(context.get(f"actor:{actor.id}"))
        return bool(independent - {actor.id}) or bool(term_hits)

    def _topic_score(
        self,
        topic: Topic,
        counted: Mapping[str, list[_RefRawHit]],
        term_hits: Mapping[str, list[_RefRawHit]],
        excluded: Mapping[str, list[_RefRawHit]],
        context: Mapping[str, list[_RefRawHit]],
        seed_sim: float,
    ) -> TopicScore | None:
        terms = term_hits.get(topic.id, [])
        anchors = [a for a in counted if a in topic.actors]
        if not terms and not anchors:
            return None
        weights = {a: ANCHOR_WEIGHT if a in topic.actors else ACTOR_WEIGHT for a in counted}
        parts = _topic_parts(terms, counted, weights, seed_sim)
        notes: list[str] = []
        if not terms and not self._anchors_suffice(topic, counted):
            notes.append(
                f"topic {topic.id} has no term; its anchors ({', '.join(sorted(anchors))}) need "
                "a second anchor or a context person or organisation (not a country or place)"
            )
        if topic.needs_context and not self._topic_context(topic, counted, term_hits, context):
            wanted = ", ".join(topic.context) if topic.context else "any counted actor"
            notes.append(f"topic {topic.id} needs context ({wanted}); none found")
        vetoes = excluded.get(f"topic:{topic.id}", [])
        if vetoes:
            strong = [
                a
                for a in counted
                if self._specific(a)
                and not self._actors[a].needs_context
                and (not topic.context or a in topic.context)
            ]
            if len(strong) < STRONG_EVIDENCE_ACTORS:
                notes.append(
                    f"topic {topic.id} vetoed by {_quote(vetoes)}: fewer than "
                    f"{STRONG_EVIDENCE_ACTORS} specific independent context actors"
                )
        threshold = topic.threshold if topic.threshold is not None else self.watchlist.threshold
        return TopicScore(
            topic=topic.id,
            score=round(sum(parts.values()), 3),
            threshold=threshold,
            parts=parts,
            notes=tuple(notes),
        )

    def _supporting(self, topic: Topic, counted: Mapping[str, list[_RefRawHit]]) -> set[str]:
        """Counted actors that vouch for a topic without a term: its anchors, and people,
        organisations and groups from its context. Countries and other places are left out:
        they are named in too many stories (a concert in Kharkiv, a museum in Moscow)."""
        allowed = set(topic.context)
        return {
            a
            for a in counted
            if self._actors[a].type != "country"
            and (
                a in topic.actors
                or ((a in allowed or not allowed) and self._actors[a].type != "place")
            )
        }

    def _anchors_suffice(self, topic: Topic, counted: Mapping[str, list[_RefRawHit]]) -> bool:
        """At least two distinct supporting actors, one of them an anchor of the topic."""
        support = self._supporting(topic, counted)
        return len(support) >= MIN_ACTORS_WITHOUT_TERM and any(a in topic.actors for a in support)

    def _topic_context(
        self,
        topic: Topic,
        counted: Mapping[str, list[_RefRawHit]],
        term_hits: Mapping[str, list[_RefRawHit]],
        context: Mapping[str, list[_RefRawHit]],
    ) -> bool:
        if not topic.context:
            return bool(counted)
        present = set(counted) | (set(term_hits) - {topic.id})
        return bool(present & set(topic.context)) or bool(context.get(f"topic:{topic.id}"))


_FIELD_ORDER: Mapping[FieldName, int] = {"title": 0, "summary": 1, "content": 2}


def _group(hits: Iterable[_RefRawHit]) -> dict[str, list[_RefRawHit]]:
    """Hits by target; rule hits are keyed `actor:<id>` or `topic:<id>`."""
    out: dict[str, list[_RefRawHit]] = defaultdict(list)
    for h in hits:
        key = h.entry.target
        if h.entry.kind in ("exclude", "context"):
            key = f"{h.entry.owner}:{key}"
        out[key].append(h)
    return dict(out)


def _unique_spans(hits: list[_RefRawHit]) -> list[_RefRawHit]:
    """One hit per target and span (two spellings of one alias may find the same words)."""
    seen: dict[tuple[str, str, str, int, int], _RefRawHit] = {}
    for h in hits:
        seen.setdefault((h.entry.kind, h.entry.target, h.field, h.start, h.end), h)
    return list(seen.values())


def _drop_contained(hits: list[_RefRawHit], notes: list[str]) -> list[_RefRawHit]:
    """Drop a hit lying inside a longer hit of the same kind in the same field."""
    kept: list[_RefRawHit] = []
    for h in hits:
        outer = next(
            (
                o
                for o in hits
                if o is not h
                and o.field == h.field
                and o.entry.kind == h.entry.kind
                and o.start <= h.start
                and h.end <= o.end
                and (o.end - o.start) > (h.end - h.start)
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
    terms: list[_RefRawHit],
    toward: Mapping[str, list[_RefRawHit]],
    weights: Mapping[str, float],
    seed_sim: float,
) -> dict[str, float]:
    best_term: dict[str, float] = {}
    for h in terms:
        w = FIELD_WEIGHTS[h.field] * h.entry.weight
        key = " ".join(phrase_keys(h.entry.phrase))
        best_term[key] = max(best_term.get(key, 0.0), w)
    actor_weights = sorted(
        (
            weights[actor] * max(FIELD_WEIGHTS[h.field] * h.entry.weight for h in hits)
            for actor, hits in toward.items()
        ),
        reverse=True,
    )[:MAX_ACTORS_COUNTED]
    term_part = sum(best_term.values())
    actor_part = sum(actor_weights)
    all_hits = [*terms, *(h for hits in toward.values() for h in hits)]
    parts = {
        "terms": term_part,
        "actors": actor_part,
        "cooccurrence": (COOCCURRENCE_BONUS if term_part and actor_part else 0.0)
        + (EXTRA_ACTOR_BONUS if len(actor_weights) >= 2 else 0.0),
        "title": TITLE_BONUS if any(h.field == "title" for h in all_hits) else 0.0,
        "similarity": SIMILARITY_WEIGHT * seed_sim,
    }
    return {k: round(v, 3) for k, v in parts.items()}


def _no_context_note(actor: Actor, hits: Sequence[_RefRawHit]) -> str:
    wanted = ", ".join(actor.context) if actor.context else "another independent actor or a term"
    return f"actor {actor.id} ({_quote(hits)}) not counted: needs context ({wanted}), none found"


def _quote(hits: Sequence[_RefRawHit]) -> str:
    return ", ".join(dict.fromkeys(repr(h.entry.phrase) for h in hits))


def _to_hit(h: _RefRawHit, fields: Mapping[FieldName, str]) -> Hit:
    kind = cast(Literal["actor", "topic"], h.entry.kind)
    text = fields[h.field][h.start : h.end]
    return Hit(kind, h.entry.target, h.entry.phrase, h.field, h.start, h.end, text)


# --- snippet --------------------------------------------------------------------------------------


def make_snippet(fields: Mapping[FieldName, str], hits: Sequence[_RefRawHit]) -> str:
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


# --- the data ----------------------------------------------------------------------------------

Fields = tuple[str, str, str]


@cache
def _items() -> tuple[Fields, ...]:
    """Every evaluation item, every seed document whole, and each of its paragraphs."""
    out: list[Fields] = []
    for path in sorted(ROOT.glob("tests/data/eval*/items.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            out.append((row["title"], row["summary"], row.get("content") or ""))
    for doc in sorted(CORPUS.glob("*.txt")):
        text = doc.read_text(encoding="utf-8")
        out.append((doc.stem, "", text))
        paragraphs = [p for p in text.split("\n") if p.strip()]
        out += [(" ".join(p.split()[:8]), p, "") for p in paragraphs]
    return tuple(out)


@cache
def _seeds() -> SeedIndex:
    return load_seed_index(CORPUS)


@cache
def _fast(with_seeds: bool = True) -> Matcher:
    return Matcher.compile(load_watchlist(WATCHLIST), _seeds() if with_seeds else None)


@cache
def _reference(with_seeds: bool = True) -> _RefMatcher:
    return _RefMatcher.compile(load_watchlist(WATCHLIST), _seeds() if with_seeds else None)


@cache
def _expected(fields: Fields, with_seeds: bool = True) -> MatchResult:
    """The reference's result for one item (computed once for all the tests)."""
    return _reference(with_seeds).match_text(*fields)


def _item(fields: Fields) -> Item:
    return Item(
        identity="x",
        guid=None,
        url=None,
        title=fields[0],
        summary=fields[1],
        content=fields[2],
        author=None,
        published_at=None,
        updated_at=None,
        first_seen_at=datetime(2025, 1, 1, tzinfo=UTC),
        lang="en",
        content_hash="x",
    )


# --- the tests ---------------------------------------------------------------------------------


def test_the_data_is_there_and_varied() -> None:
    results = [_expected(f) for f in _items()]
    assert len(results) > 700
    assert 100 < sum(r.matched for r in results) < len(results) - 100
    assert sum(1 for r in results if r.hits and not r.matched) > 50


@pytest.mark.parametrize("with_seeds", [True, False], ids=["seeds", "no-seeds"])
def test_explained_results_equal_the_reference(with_seeds: bool) -> None:
    fast = _fast(with_seeds)
    for fields in _items():
        assert fast.match_text(*fields) == _expected(fields, with_seeds), fields[0]


def _lean_expected(fields: Fields, lean: MatchResult) -> MatchResult:
    """What the lean path must give: the reference whole for a match; for the rest the same
    verdict, actors, scores and notes without hits and snippet, and, when no topic could pass
    (similarity left out), the reference scored without seeds."""
    full = _expected(fields)
    if full.matched:
        return full
    source = full if lean.nearest_seed is not None else _expected(fields, False)
    return replace(source, hits=(), snippet="")


def test_lean_results_agree_with_the_reference() -> None:
    fast = _fast()
    skipped = 0
    for fields in _items():
        lean = fast.match(_item(fields))
        assert lean == _lean_expected(fields, lean), fields[0]
        full = _expected(fields)
        skipped += lean.nearest_seed is None and full.nearest_seed is not None
    assert skipped > 50  # the lean path does leave similarity out where it cannot matter


def test_similarity_is_only_skipped_when_no_topic_could_pass() -> None:
    fast = _fast()
    for fields in _items():
        lean = fast.match(_item(fields))
        if lean.nearest_seed is None and _expected(fields).nearest_seed:
            assert not lean.matched
            for s in lean.topic_scores:
                assert s.notes or s.score + SIMILARITY_WEIGHT < s.threshold, (fields[0], s)


def test_item_without_hits_is_lean_and_explained() -> None:
    fast = _fast()
    fields = ("Storm floods the coast", "Rain fell for three days on the harbour.", "")
    lean = fast.match(_item(fields))
    assert not lean.matched and lean.snippet == "" and lean.topic_scores == ()
    assert fast.match_text(*fields) == _expected(fields)
    assert fast.match_text(*fields).snippet.startswith("Storm floods")


_ALPHABET = [
    *"aAsSzZ'’ʼ`-—– _.,;:!?()[]#0129\n\t\u00a0ЁёяЯ",
    " ",
    " ",
    "'s",
    "'S",
    "s's",
    "Ⓐ",
    "ǅ",
    "²",
    "٣",
    "O'Brien",
    "rock'n'roll",
    "1990's",
    "Москва's",
]


@cache
def _words() -> tuple[str, ...]:
    wl = load_watchlist(WATCHLIST)
    return tuple(sorted({w for e in _entries(wl) for w in e.phrase.split()}))


def _texts(alphabet: Sequence[str] = _ALPHABET) -> st.SearchStrategy[str]:
    """Texts of watchlist words and `alphabet` pieces."""
    piece = st.one_of(st.sampled_from(alphabet), st.sampled_from(_words()))
    return st.lists(piece, max_size=30).map("".join)


@settings(max_examples=200, deadline=None)
@given(_texts())
def test_tiles_give_the_tokens_of_scan(text: str) -> None:
    prepared = prepare(text)
    assert prepared == text.translate(_PREPARE)
    keys, starts, ends = _scan(prepared)
    tiles = _TILE.findall(prepared)
    assert "".join(tiles) == prepared[: len("".join(tiles))]
    assert prepared[len("".join(tiles)) :] in ("", " ")
    assert [_tile_key(t) for t in tiles] == keys
    end = 0
    for tile, key, start, stop in zip(tiles, keys, starts, ends, strict=True):
        end += len(tile)
        if key != _BREAK:
            assert (_tile_start(tile, end), end) == (start, stop)


@settings(max_examples=200, deadline=None)
@given(_texts())
def test_phrase_index_finds_what_the_token_loop_finds(text: str) -> None:
    fast, ref = _indexes()
    assert fast.find(text) == ref.find(text)


@cache
def _indexes() -> tuple[PhraseIndex, _RefIndex]:
    entries = _entries(load_watchlist(WATCHLIST))
    return PhraseIndex(entries), _RefIndex(entries)


# --- the stream's items, the spaced path, the memos and the similarity ---------------------------


@cache
def _bench_items() -> tuple[Fields, ...]:
    """Items of the benchmark's generated feeds, parsed and normalised as the pipeline does:
    most match nothing, some name watched actors and topics."""
    sys.path.insert(0, str(ROOT / "bench"))
    feedgen = importlib.import_module("feedgen")
    now = datetime(2025, 6, 2, 9, tzinfo=UTC)
    out: list[Fields] = []
    for feed in feedgen.make_feeds(16, seed=3):
        parsed = parse_feed(feedgen.render(feed), url=f"http://bench/{feed.index}", headers={})
        items = normalize_entries(parsed, now=now, max_items=200, feed_lang=None).items
        out += [(i.title, i.summary, i.content) for i in items]
    return tuple(out)


def test_bench_items_equal_the_reference() -> None:
    fast = _fast()
    results = []
    for fields in _bench_items():
        assert fast.match_text(*fields) == _expected(fields), fields[0]
        lean = fast.match(_item(fields))
        assert lean == _lean_expected(fields, lean), fields[0]
        results.append(lean)
    assert len(results) > 600
    assert 20 < sum(r.matched for r in results) < len(results) // 3
    assert sum(1 for r in results if r.topic_scores and not r.matched) > 100


def _stored(matcher: Matcher, fields: Fields) -> object:
    """What the stream stored before `Matcher.record`: the record of a full lean match."""
    result = matcher.match(_item(fields))
    return match_record(result) if result.matched else None


def test_records_equal_the_records_of_full_matches() -> None:
    """`record` stores exactly what `match` would, and does skip scoring: on the bench items
    (common words such as "talks" with no watched actor) and on the evaluation items."""
    fast = _fast()
    skipped = 0
    for fields in (*_bench_items(), *_items()):
        item = _item(fields)
        assert fast.record(item) == _stored(fast, fields), fields[0]
        hits = [e for t in fields if t for e, _, _ in fast.raw_hits(t)]
        skipped += bool(hits) and fast._cannot_pass(hits)
    assert skipped > 200


@pytest.mark.parametrize(
    ("title", "passes"),
    [
        ("Kremlin says talks are off", True),  # an actor gives the term its context
        ("Talks on a ceasefire resume", False),  # two topic terms, neither the other's context
        ("Talks resume at the summit", False),
        ("Sanctions and climate talks", False),
    ],
)
def test_cannot_pass_only_where_no_topic_has_context(title: str, passes: bool) -> None:
    fast = _fast()
    fields = (title, "", "")
    hits = [e for e, _, _ in fast.raw_hits(title)]
    full = fast.match(_item(fields))
    assert full.matched is passes
    assert fast._cannot_pass(hits) is not passes  # the shipped watchlist: context is actors
    assert fast.record(_item(fields)) == _stored(fast, fields)


_CONTEXT_WATCHLIST = """
version: 1
defaults: {threshold: 1.0}
actors:
  - {id: envoy, name: Envoy, type: person, aliases: [Envoy Smith]}
topics:
  - id: grain
    name: Grain corridor
    terms: [grain corridor, grain deal]
    needs_context: true
    context: [black sea, shipping]
  - id: shipping
    name: Shipping
    terms: [tanker, convoy]
    needs_context: true
    context: [envoy]
  - id: talks
    name: Talks
    terms: [talks]
    needs_context: true
  - id: ferry
    name: Ferries
    terms: [ferry]
"""


@pytest.mark.parametrize(
    ("title", "shortcut", "matched"),
    [
        ("The grain deal was renewed", True, False),
        ("The grain deal was renewed in the Black Sea", False, True),  # a context phrase
        ("The grain deal covers every tanker", False, True),  # another topic's term
        ("A tanker convoy left port", True, False),  # its context is an actor: none here
        ("Envoy Smith joined the talks on the convoy", False, True),
        ("Talks on the grain deal", True, False),
        ("Talks on a ferry", False, True),  # a topic that needs no context
    ],
)
def test_context_from_phrases_and_other_topics_disables_the_shortcut(
    tmp_path: Path, title: str, shortcut: bool, matched: bool
) -> None:
    path = tmp_path / "watchlist.yaml"
    path.write_text(_CONTEXT_WATCHLIST, encoding="utf-8")
    fast = Matcher.compile(load_watchlist(path), None)
    fields = (title, "", "")
    assert fast._cannot_pass([e for e, _, _ in fast.raw_hits(title)]) is shortcut
    assert fast.match(_item(fields)).matched is matched
    assert fast.record(_item(fields)) == _stored(fast, fields)


@settings(max_examples=300, deadline=None)
@given(_texts(), _texts())
def test_records_of_random_texts_equal_full_matches(title: str, summary: str) -> None:
    fast = _fast()
    fields = (title, summary, "")
    assert fast.record(_item(fields)) == _stored(fast, fields)


def test_only_plain_spaces_knows_every_whitespace_character() -> None:
    spaces = [c for c in map(chr, range(sys.maxunicode + 1)) if c.isspace()]
    assert all(_TILE.match(c * 2) for c in spaces)  # `\s` is `str.isspace`
    for c in spaces:
        assert _only_plain_spaces(f"a{c}b") == (c == " "), hex(ord(c))
    assert _only_plain_spaces("a  b\u00ad")  # unprintable but no other whitespace


_SPACED_ALPHABET = [p for p in _ALPHABET if p == " " or not any(c.isspace() for c in p)]


@settings(max_examples=300, deadline=None)
@given(_texts(_SPACED_ALPHABET))
def test_spaced_texts_find_what_the_token_loop_finds(text: str) -> None:
    assert _only_plain_spaces(prepare(text))
    fast, ref = _indexes()
    assert fast.find(text) == ref.find(text)


def test_memos_forget_when_full_and_find_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("monitor.match._MEMO_SIZE", 16)
    entries = _entries(load_watchlist(WATCHLIST))
    fast, ref = PhraseIndex(entries), _RefIndex(entries)
    for fields in (*_items()[:150], *_items()[-150:]):  # spaced texts and whole documents
        for text in fields:
            assert fast.find(text) == ref.find(text)
    memos = [m for name in fast.__slots__ if isinstance(m := getattr(fast, name), _Memo)]
    assert memos and all(0 < len(m) <= 16 for m in memos)


def _ref_similarities(seeds: SeedIndex, text: str) -> list[tuple[str, float]]:
    query = _ref_weights(_ref_terms(text), seeds.idf, seeds.unseen_idf)
    return [
        (name, sum(w * vec.get(t, 0.0) for t, w in query.items()))
        for name, vec in zip(seeds.names, seeds.vectors, strict=True)
    ]


@cache
def _seed_words() -> tuple[str, ...]:
    return tuple(sorted({w for d in CORPUS.glob("*.txt") for w in d.read_text().split()}))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(_ALPHABET), st.sampled_from(_seed_words()))))
def test_similarities_equal_the_reference_bit_for_bit(pieces: list[str]) -> None:
    text = " ".join(pieces)
    seeds = _seeds()
    assert list(seeds.similarities(text)) == _ref_similarities(seeds, text)
    assert seeds.nearest(text) == _ref_nearest(seeds, text)
