"""Seeding the watchlist: corpus → proposed actors and topics → merged into the user's YAML.

The flow, one step per function::

    read_corpus(dir)            plain .txt files → SeedDocument records          (I/O)
    propose(docs, nlp)          entities + key terms → Proposal                    (pure)
    merge(yaml_doc, proposal)   proposal folded into the round-trip document      (in memory)
    load_ledger / save_ledger   ids seeding ever proposed (sidecar JSON)           (I/O)

`propose` only decides; `merge` never touches what the user wrote except the `mentions`
and `documents` bookkeeping of actors, and never brings back an id the user removed.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from spacy.language import Language
from spacy.tokens import Doc, Span, Token

from monitor import yamlio
from monitor.errors import ConfigError
from monitor.nlp import has_entities, has_parser

ActorType = Literal["person", "org", "place", "country", "group"]
Action = Literal["added", "updated", "unchanged", "skipped"]
#: Relative frequency of a word or phrase in general English (0 when unknown).
Background = Callable[[str], float]

ENTITY_LABELS = frozenset({"PERSON", "ORG", "GPE", "LOC", "NORP", "FAC", "EVENT"})
_LABEL_TYPES: Mapping[str, ActorType] = {
    "PERSON": "person",
    "ORG": "org",
    "GPE": "place",
    "LOC": "place",
    "FAC": "place",
    "NORP": "group",
}
#: Label for capitalised spans found without an entity model.
UNKNOWN_LABEL = "UNKNOWN"
#: Words before a name that suggest a place rather than a person.
_PLACE_CUES = frozenset(
    {"in", "into", "from", "of", "to", "near", "around", "across", "toward", "towards"}
)
_CONNECTORS = frozenset({"of", "and", "the", "for", "de"})
_QUOTES = "\"'‘’“”«»`"
#: Minimum log10(corpus frequency / general-English frequency) for a key term.
MIN_KEYNESS = 1.0
#: Keyness from which a noun anchors a topic without any phrase around it.
ANCHOR_KEYNESS = 1.5
#: A term seen once is no evidence of anything, whatever --min-mentions says.
MIN_TERM_MENTIONS = 2
MAX_TOPICS = 12
MAX_TERMS_PER_TOPIC = 8
MAX_TERM_WORDS = 3


# ── records ──────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class SeedDocument:
    """One corpus file as read from disk."""

    #: File stem, e.g. "000_e28bf5d034a1058e"; written to `documents:` in the watchlist.
    name: str
    #: First non-empty line.
    title: str
    #: The whole file text, title included.
    text: str


@dataclass(frozen=True, slots=True)
class ActorCandidate:
    """A named entity seeding proposes as an actor, with its evidence."""

    id: str
    name: str
    type: ActorType
    #: Every surface form seen, most frequent first (the name included).
    aliases: tuple[str, ...]
    mentions: int
    documents: tuple[str, ...]
    needs_context: bool = False
    #: Entity labels spaCy gave the mentions, with counts (evidence for the type).
    labels: Mapping[str, int] = field(default_factory=dict)
    notes: str | None = None


@dataclass(frozen=True, slots=True)
class TermCandidate:
    """A key term or noun phrase, weighted against general English."""

    text: str
    #: Lemmas of its words, space-separated ("security guarantee"); phrases join topics by these.
    lemma: str
    mentions: int
    documents: tuple[str, ...]
    #: log10(corpus relative frequency / general-English relative frequency).
    keyness: float
    score: float


@dataclass(frozen=True, slots=True)
class TopicCandidate:
    """A group of key terms seeding proposes as a topic."""

    id: str
    name: str
    terms: tuple[str, ...]
    mentions: int
    documents: tuple[str, ...]
    score: float


@dataclass(frozen=True, slots=True)
class Proposal:
    """What the corpus suggests watching; deterministic for the same corpus and pipeline."""

    actors: tuple[ActorCandidate, ...]
    topics: tuple[TopicCandidate, ...]
    #: Problems worth showing (e.g. the spaCy model was missing).
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MergeAction:
    """What merging did with one candidate (or one restore request)."""

    kind: Literal["actor", "topic"]
    #: The candidate's id.
    id: str
    action: Action
    #: The watchlist entry it was merged into, when that differs from `id`.
    into: str | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class MergeReport:
    """The outcome of one merge: one action per candidate, and the ledger to save."""

    actions: tuple[MergeAction, ...]
    #: Every id seeding has proposed so far, this run included.
    ledger: frozenset[str]
    #: Restore requests that named no candidate of this run.
    unknown_restores: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return any(a.action in ("added", "updated") for a in self.actions)

    def count(self, action: Action) -> int:
        return sum(1 for a in self.actions if a.action == action)


# ── corpus ───────────────────────────────────────────────────────────────────────────


def read_corpus(directory: Path) -> tuple[SeedDocument, ...]:
    """Every `*.txt` file of `directory`, sorted by name; errors name the file."""
    if not directory.is_dir():
        raise ConfigError(f"{directory}: corpus directory not found")
    paths = sorted(p for p in directory.glob("*.txt") if p.is_file())
    if not paths:
        raise ConfigError(f"{directory}: corpus directory has no .txt files")
    return tuple(_read_document(p) for p in paths)


def _read_document(path: Path) -> SeedDocument:
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start}): {e.reason}") from e
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror or e}") from e
    text = text.removeprefix("\ufeff")
    title = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if not title:
        raise ConfigError(f"{path}: empty document (the first line should be its title)")
    return SeedDocument(name=path.stem, title=title, text=text)


# ── helpers ──────────────────────────────────────────────────────────────────────────


def slugify(text: str) -> str:
    """A watchlist id: ASCII lower case, digits and underscores."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "_", ascii_text.lower()).strip("_")
    return slug or "x" + format(abs(hash(text)) % 10**6, "06d")


@cache
def english_frequency(text: str) -> float:
    """Relative frequency of a word or phrase in general English (wordfreq's merged lists)."""
    from wordfreq import word_frequency

    return float(word_frequency(text, "en"))


@cache
def country_names() -> frozenset[str]:
    """Lower-cased country names and codes from the tz database's ISO 3166 table."""
    table = resources.files("tzdata").joinpath("zoneinfo/iso3166.tab").read_text("utf-8")
    names: set[str] = set()
    for line in table.splitlines():
        if line.startswith("#") or "\t" not in line:
            continue
        _, name = line.split("\t", 1)
        main, _, rest = name.partition("(")
        names.add(main.strip().lower())
        code = rest.rstrip(")").strip()
        if code.isupper():
            names.add(code.lower())
    return frozenset(names)


# ── entities ─────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class _Mention:
    form: str
    key: str
    label: str
    doc: str
    place_cue: bool


def clean_entity_text(text: str) -> str:
    """An entity as an alias: no leading article, possessive, quotes or trailing clause."""
    text = text.split(",")[0].strip().strip(_QUOTES).strip()
    text = re.sub(r"['’]s?$", "", text).strip(_QUOTES).strip()
    text = re.sub(r"^(?:the|The|THE)\s+", "", text)
    return re.sub(r"\s+", " ", text)


def entity_key(form: str) -> str:
    """What makes two surface forms the same name: case, dots and hyphens ignored."""
    return re.sub(r"[.\-‐]", "", form).casefold()


def _entity_spans(doc: Doc, with_model: bool) -> Iterator[tuple[Span, str]]:
    if with_model:
        yield from ((e, e.label_) for e in doc.ents if e.label_ in ENTITY_LABELS)
    else:
        yield from ((s, UNKNOWN_LABEL) for s in _capitalised_spans(doc))


def _capitalised_spans(doc: Doc) -> Iterator[Span]:
    """Runs of capitalised words (not sentence-initial alone), for pipelines without NER."""
    start: int | None = None
    for token in [*doc, None]:
        if token is not None and _is_capitalised(token):
            start = token.i if start is None else start
            continue
        if start is not None:
            end = token.i if token is not None else len(doc)
            span = doc[start:end]
            if len(span) > 1 or not span[0].is_sent_start:
                yield span
            start = None


def _is_capitalised(token: Token) -> bool:
    return token.is_alpha and token.text[0].isupper() and not token.is_stop


def _mentions(docs: Sequence[tuple[SeedDocument, Doc]], with_model: bool) -> list[_Mention]:
    found: list[_Mention] = []
    for seed, doc in docs:
        for span, label in _entity_spans(doc, with_model):
            form = clean_entity_text(span.text)
            if not form or not any(c.isalpha() for c in form) or not form[0].isupper():
                continue
            before = doc[span.start - 1].lower_ if span.start > 0 else ""
            found.append(_Mention(form, entity_key(form), label, seed.name, before in _PLACE_CUES))
    return found


class _UnionFind:
    def __init__(self, keys: Iterable[str]) -> None:
        self.parent = {k: k for k in keys}

    def find(self, key: str) -> str:
        while self.parent[key] != key:
            self.parent[key] = self.parent[self.parent[key]]
            key = self.parent[key]
        return key

    def union(self, a: str, b: str) -> None:
        ra, rb = sorted((self.find(a), self.find(b)))
        self.parent[rb] = ra


def _majority(labels: Counter[str]) -> str:
    return min(labels.items(), key=lambda kv: (-kv[1], kv[0]))[0]


def _join_plurals(groups: Mapping[str, list[_Mention]], uf: _UnionFind) -> None:
    """ "Americans" joins "American": a people's plural and its adjective are one group."""
    for key, mentions in groups.items():
        singular = key.removesuffix("s")
        if singular != key and singular in groups and {m.label for m in mentions} == {"NORP"}:
            uf.union(singular, key)


def _join_surnames(groups: Mapping[str, list[_Mention]], uf: _UnionFind) -> None:
    """A one-word name joins the full names ending in it when their first names agree."""
    full_by_surname: dict[str, list[str]] = defaultdict(list)
    for key, mentions in groups.items():
        words = key.split()
        if len(words) > 1 and _majority(Counter(m.label for m in mentions)) == "PERSON":
            full_by_surname[words[-1]].append(key)
    for surname, full_names in full_by_surname.items():
        if len({name[0] for name in full_names}) != 1:
            continue  # Bill / Hillary: ambiguous, leave the surname alone
        for name in full_names:
            uf.union(full_names[0], name)
        if surname in groups:
            uf.union(full_names[0], surname)


def _initials(form: str) -> str:
    words = [w for w in form.split() if w.lower() not in _CONNECTORS]
    return "".join(w[0] for w in words if w[0].isupper()).casefold()


def _join_acronyms(groups: Mapping[str, list[_Mention]], uf: _UnionFind) -> None:
    """An acronym ("US", "U.S.") joins the one multi-word name it abbreviates."""
    long_forms: dict[str, set[str]] = defaultdict(set)
    for key, mentions in groups.items():
        if " " in key:
            for m in mentions:
                long_forms[_initials(m.form)].add(key)
    for key, mentions in groups.items():
        acronym = mentions[0].form.replace(".", "")
        if " " in key or not (2 <= len(acronym) <= 6 and acronym.isupper()):
            continue
        targets = long_forms.get(key, set())
        if len(targets) == 1:
            uf.union(next(iter(targets)), key)


def _cluster(mentions: Sequence[_Mention]) -> list[list[_Mention]]:
    groups: dict[str, list[_Mention]] = defaultdict(list)
    for m in mentions:
        groups[m.key].append(m)
    uf = _UnionFind(groups)
    _join_plurals(groups, uf)
    _join_surnames(groups, uf)
    _join_acronyms(groups, uf)
    clusters: dict[str, list[_Mention]] = defaultdict(list)
    for key, members in groups.items():
        clusters[uf.find(key)].extend(members)
    return [clusters[k] for k in sorted(clusters)]


def _actor_type(mentions: Sequence[_Mention]) -> ActorType | None:
    """The actor type from label votes and cues; None for events (they become topics)."""
    labels = Counter(m.label for m in mentions)
    if any(" " in m.key and m.label == "PERSON" for m in mentions):
        return "person"
    label = _majority(labels)
    if label == "EVENT":
        return None
    if any(m.key in country_names() for m in mentions):
        return "country"
    if label == "PERSON" and (
        labels["GPE"] + labels["LOC"] + labels["FAC"] > 0
        or sum(m.place_cue for m in mentions) * 3 >= len(mentions)
    ):
        return "place"
    return _LABEL_TYPES.get(label, "org")


def _ranked_forms(mentions: Sequence[_Mention]) -> tuple[str, ...]:
    counts = Counter(m.form for m in mentions)
    ordered = sorted(counts, key=lambda f: (-counts[f], -len(f), f))
    unique: dict[str, str] = {}
    for form in ordered:
        unique.setdefault(form.casefold(), form)
    return tuple(unique.values())


def _display_name(forms: Sequence[str], actor_type: ActorType | None) -> str:
    if actor_type == "person":
        full = [f for f in forms if " " in f]
        if full:
            return full[0]
    multi = [f for f in forms if " " in f and not f.isupper()]
    acronym_first = forms[0].replace(".", "").isupper()
    return multi[0] if acronym_first and multi else forms[0]


def _base_id(name: str, actor_type: ActorType | None) -> str:
    return slugify(name.split()[-1] if actor_type == "person" else name)


def _count_occurrences(
    docs: Sequence[SeedDocument], alias_owner: Mapping[str, int]
) -> tuple[Counter[int], dict[int, set[str]]]:
    """Mentions per cluster by exact, longest-first matching of every alias (as a matcher would)."""
    counts: Counter[int] = Counter()
    documents: dict[int, set[str]] = defaultdict(set)
    if not alias_owner:
        return counts, documents
    forms = sorted(alias_owner, key=lambda f: (-len(f), f))
    pattern = re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, forms)) + r")(?!\w)")
    for doc in docs:
        for match in pattern.finditer(doc.text):
            owner = alias_owner[match.group(0)]
            counts[owner] += 1
            documents[owner].add(doc.name)
    return counts, documents


def _is_common_word(form: str, lowercase_counts: Counter[str], mentions: int) -> bool:
    """A one-word name the corpus mostly writes in lower case ("State", "Suffice")."""
    return " " not in form and lowercase_counts[form.lower()] >= mentions


def propose_actors(
    docs: Sequence[tuple[SeedDocument, Doc]],
    *,
    with_model: bool,
    min_mentions: int,
) -> tuple[tuple[ActorCandidate, ...], tuple[TopicCandidate, ...]]:
    """Actor candidates (and event topics) from the named entities of parsed documents."""
    clusters = _cluster(_mentions(docs, with_model))
    lowercase_counts = Counter(t.text for _, d in docs for t in d if t.is_lower)
    typed = [(c, _actor_type(c), _ranked_forms(c)) for c in clusters]
    typed = [
        (c, t, forms)
        for c, t, forms in typed
        if not (len(forms) == 1 and _is_common_word(forms[0], lowercase_counts, len(c)))
    ]
    owner = {form: i for i, (_, _, forms) in enumerate(typed) for form in forms}
    counts, documents = _count_occurrences([s for s, _ in docs], owner)
    actors: list[ActorCandidate] = []
    events: list[TopicCandidate] = []
    for i, (mentions, actor_type, forms) in enumerate(typed):
        total = max(counts[i], len(mentions))
        if total < min_mentions:
            continue
        doc_names = tuple(sorted(documents[i] | {m.doc for m in mentions}))
        name = _display_name(forms, actor_type)
        if actor_type is None:
            events.append(TopicCandidate(slugify(name), name, forms, total, doc_names, 0.0))
            continue
        actors.append(
            ActorCandidate(
                id=_base_id(name, actor_type),
                name=name,
                type=actor_type,
                aliases=forms,
                mentions=total,
                documents=doc_names,
                needs_context=actor_type == "group",
                labels=dict(sorted(Counter(m.label for m in mentions).items())),
                notes=None if with_model else "type unknown: seeded without an entity model",
            )
        )
    return tuple(_unique_ids(actors)), tuple(events)


def _unique_ids(actors: Sequence[ActorCandidate]) -> Iterator[ActorCandidate]:
    taken: set[str] = set()
    for actor in sorted(actors, key=lambda a: (-a.mentions, a.id, a.name)):
        new_id = actor.id
        n = 2
        while new_id in taken:
            new_id, n = f"{actor.id}_{n}", n + 1
        taken.add(new_id)
        yield actor if new_id == actor.id else replace(actor, id=new_id)


# ── key terms and topics ─────────────────────────────────────────────────────────────


def _trim(tokens: Sequence[Token]) -> list[Token]:
    """A noun phrase without determiners, pronouns, numbers, names and stop words at its edges."""

    def droppable(t: Token) -> bool:
        return (
            t.is_stop
            or t.is_punct
            or not t.is_alpha
            or t.pos_ in ("DET", "PRON", "NUM", "PROPN", "ADV")
            or bool(t.ent_type_)
            or t.text[:1].isupper()
        )

    words = list(tokens)
    while words and droppable(words[0]):
        words.pop(0)
    while words and droppable(words[-1]):
        words.pop()
    return words


def _phrases(doc: Doc, parsed: bool) -> Iterator[list[Token]]:
    """Candidate phrases: trimmed noun chunks, or runs of content words without a parser."""
    if parsed:
        for chunk in doc.noun_chunks:
            words = _trim(list(chunk))
            if words and all(w.is_alpha and w.is_lower and not w.ent_type_ for w in words):
                yield words
        return
    run: list[Token] = []
    for token in [*doc, None]:
        if token is not None and token.is_alpha and not token.is_stop and token.is_lower:
            run.append(token)
        elif run:
            yield run
            run = []


def _is_term_word(token: Token, parsed: bool) -> bool:
    """A single word worth weighing: a lower-case noun (any content word without a tagger)."""
    if not (token.is_alpha and token.is_lower and not token.is_stop and len(token) >= 3):
        return False
    return token.pos_ == "NOUN" if parsed else True


def _lemma(token: Token, parsed: bool) -> str:
    return (token.lemma_ or token.lower_).lower() if parsed else token.lower_


def _term_counts(
    docs: Sequence[tuple[SeedDocument, Doc]], parsed: bool
) -> tuple[dict[tuple[str, ...], Counter[str]], dict[tuple[str, ...], set[str]]]:
    """Surface forms per lemma key (nouns, and phrases of 2–3 words ending in a head) and docs."""
    forms: dict[tuple[str, ...], Counter[str]] = defaultdict(Counter)
    where: dict[tuple[str, ...], set[str]] = defaultdict(set)

    def add(words: Sequence[Token], doc_name: str) -> None:
        key = tuple(_lemma(w, parsed) for w in words)
        forms[key][" ".join(w.lower_ for w in words)] += 1
        where[key].add(doc_name)

    for seed, doc in docs:
        for token in doc:
            if _is_term_word(token, parsed):
                add([token], seed.name)
        for words in _phrases(doc, parsed):
            for size in range(2, min(len(words), MAX_TERM_WORDS) + 1):
                add(words[-size:], seed.name)
    return forms, where


def key_terms(
    docs: Sequence[tuple[SeedDocument, Doc]],
    *,
    parsed: bool,
    min_mentions: int,
    background: Background,
) -> tuple[TermCandidate, ...]:
    """Terms far more frequent in the corpus than in general English, best first."""
    total_words = sum(1 for _, d in docs for t in d if t.is_alpha) or 1
    min_mentions = max(min_mentions, MIN_TERM_MENTIONS)
    forms, where = _term_counts(docs, parsed)
    terms: list[TermCandidate] = []
    for key, surface in forms.items():
        mentions = sum(surface.values())
        if mentions < min_mentions:
            continue
        text = min(surface, key=lambda f: (-surface[f], f))
        keyness = math.log10((mentions / total_words) / max(background(text), 1e-9))
        if keyness < MIN_KEYNESS:
            continue
        spread = 1 + (len(where[key]) - 1) / len(docs)
        score = round(keyness * math.log2(1 + mentions) * spread, 4)
        terms.append(
            TermCandidate(
                text, " ".join(key), mentions, tuple(sorted(where[key])), round(keyness, 4), score
            )
        )
    return tuple(sorted(terms, key=lambda t: (-t.score, t.text)))


def group_topics(
    terms: Sequence[TermCandidate], *, max_topics: int = MAX_TOPICS
) -> tuple[TopicCandidate, ...]:
    """Topics anchored on key nouns; each phrase joins the topic of every key noun it holds.

    A noun anchors a topic when it is strongly key on its own (`ANCHOR_KEYNESS`) or when at
    least one key phrase contains it ("truce" with "temporary truce").
    """
    words = {t.lemma: t for t in terms if " " not in t.lemma}
    phrases = [t for t in terms if " " in t.lemma]
    members: dict[str, list[TermCandidate]] = defaultdict(list)
    for phrase in phrases:
        for lemma in dict.fromkeys(phrase.lemma.split()):
            if lemma in words:
                members[lemma].append(phrase)
    topics: list[TopicCandidate] = []
    for lemma, anchor in words.items():
        attached = members.get(lemma, [])
        if anchor.keyness < ANCHOR_KEYNESS and not attached:
            continue
        group = sorted([anchor, *attached], key=lambda t: (-t.score, t.text))
        topics.append(
            TopicCandidate(
                id=slugify(anchor.text),
                name=anchor.text[:1].upper() + anchor.text[1:],
                terms=tuple(t.text for t in group[:MAX_TERMS_PER_TOPIC]),
                mentions=anchor.mentions,
                documents=anchor.documents,
                score=round(sum(t.score for t in group), 4),
            )
        )
    ranked = sorted(topics, key=lambda t: (-t.score, t.id))
    return tuple(ranked[:max_topics])


def propose(
    docs: Sequence[SeedDocument],
    nlp: Language,
    *,
    min_mentions: int = 2,
    max_topics: int = MAX_TOPICS,
    background: Background = english_frequency,
    warnings: Sequence[str] = (),
) -> Proposal:
    """Actors and topics the corpus suggests, sorted and with stable ids."""
    ordered = sorted(docs, key=lambda d: d.name)
    parsed_docs = list(zip(ordered, nlp.pipe(d.text for d in ordered), strict=True))
    actors, events = propose_actors(
        parsed_docs, with_model=has_entities(nlp), min_mentions=min_mentions
    )
    terms = key_terms(
        parsed_docs, parsed=has_parser(nlp), min_mentions=min_mentions, background=background
    )
    topics = _unique_topic_ids(
        [*group_topics(terms, max_topics=max_topics), *events], {a.id for a in actors}
    )
    return Proposal(actors=actors, topics=topics, warnings=tuple(warnings))


def _unique_topic_ids(
    topics: Sequence[TopicCandidate], taken: set[str]
) -> tuple[TopicCandidate, ...]:
    out: list[TopicCandidate] = []
    used = set(taken)
    for topic in topics:
        new_id = topic.id if topic.id not in used else f"{topic.id}_topic"
        n = 2
        while new_id in used:
            new_id, n = f"{topic.id}_topic_{n}", n + 1
        used.add(new_id)
        out.append(topic if new_id == topic.id else replace(topic, id=new_id))
    return tuple(out)


# ── merging into the YAML document ───────────────────────────────────────────────────

HEADER = """\
Watched actors and topics (schema version 1). Comments are kept when the program rewrites
this file. `monitor watchlist seed` appends candidates with `status: proposed`; review them
and set `status: curated` or `status: rejected` (rejected entries are kept, never matched).
Delete an entry and seeding will not propose it again (the ids it ever proposed are kept in
the sidecar file .watchlist-seed.json next to this one); `--restore ID` brings one back.
`mentions` and `documents` are bookkeeping written by seeding.
Optional keys: `weight` on aliases and terms, `notes` free text.
"""


def new_watchlist_document(threshold: float = 2.0) -> CommentedMap:
    """An empty watchlist document with the explanatory header."""
    doc = CommentedMap()
    doc.yaml_set_start_comment(HEADER)
    doc["version"] = 1
    defaults = CommentedMap()
    defaults["threshold"] = threshold
    doc["defaults"] = defaults
    doc["actors"] = CommentedSeq()
    doc["topics"] = CommentedSeq()
    return doc


def _flow(values: Iterable[Any]) -> CommentedSeq:
    seq = CommentedSeq(values)
    seq.fa.set_flow_style()
    return seq


def _phrase_texts(values: Any) -> set[str]:
    """Case-folded texts of an alias or term list (plain strings or {text: ...} maps)."""
    texts: set[str] = set()
    for value in values or ():
        text = value.get("text") if isinstance(value, Mapping) else value
        if isinstance(text, str):
            texts.add(text.casefold())
    return texts


def _entries(document: CommentedMap, key: str) -> CommentedSeq:
    entries = document.get(key)
    if not isinstance(entries, CommentedSeq):
        entries = CommentedSeq()
        document[key] = entries
    return entries


def _find_entry(
    entries: CommentedSeq, candidate_id: str, phrases: Iterable[str], phrase_key: str
) -> CommentedMap | None:
    wanted = {p.casefold() for p in phrases}
    maps = [e for e in entries if isinstance(e, CommentedMap)]
    for entry in maps:
        if entry.get("id") == candidate_id:
            return entry
    for entry in maps:
        known = _phrase_texts(entry.get(phrase_key))
        if isinstance(entry.get("name"), str):
            known.add(entry["name"].casefold())
        if known & wanted:
            return entry
    return None


def _actor_entry(candidate: ActorCandidate, today: date) -> CommentedMap:
    entry = CommentedMap()
    entry["id"] = candidate.id
    entry["name"] = candidate.name
    entry["type"] = candidate.type
    entry["aliases"] = CommentedSeq(candidate.aliases)
    entry["needs_context"] = candidate.needs_context
    entry["context"] = _flow([])
    entry["exclude"] = _flow([])
    entry["status"] = "proposed"
    entry["mentions"] = candidate.mentions
    entry["documents"] = CommentedSeq(candidate.documents)
    if candidate.notes:
        entry["notes"] = candidate.notes
    entry.yaml_add_eol_comment(f"# proposed by seeding on {today.isoformat()}", "id")
    return entry


def _topic_entry(candidate: TopicCandidate, today: date) -> CommentedMap:
    entry = CommentedMap()
    entry["id"] = candidate.id
    entry["name"] = candidate.name
    entry["terms"] = CommentedSeq(candidate.terms)
    entry["actors"] = _flow([])
    entry["needs_context"] = True
    entry["context"] = _flow([])
    entry["exclude"] = _flow([])
    entry["status"] = "proposed"
    entry["mentions"] = candidate.mentions
    entry["documents"] = CommentedSeq(candidate.documents)
    entry.yaml_add_eol_comment(f"# proposed by seeding on {today.isoformat()}", "id")
    return entry


def _set_bookkeeping(entry: CommentedMap, mentions: int, documents: Sequence[str]) -> bool:
    """Write `mentions` and `documents` when they differ; True when something changed."""
    changed = False
    if entry.get("mentions") != mentions:
        entry["mentions"] = mentions
        changed = True
    current = entry.get("documents")
    if not isinstance(current, list) or list(current) != list(documents):
        entry["documents"] = CommentedSeq(documents)
        changed = True
    return changed


@dataclass
class _Merge:
    """Working state of one merge (internal; the result is a MergeReport)."""

    document: CommentedMap
    ledger: frozenset[str]
    restore: frozenset[str]
    today: date
    actions: list[MergeAction] = field(default_factory=list)
    proposed: set[str] = field(default_factory=set)

    def skip_reason(self, candidate_id: str, entry: CommentedMap | None) -> str | None:
        if entry is not None and entry.get("status") == "rejected":
            return "rejected by the user"
        if entry is None and candidate_id in self.ledger and candidate_id not in self.restore:
            return "removed by the user (bring it back with --restore)"
        return None

    def section(self, kind: Literal["actor", "topic"], candidates: Sequence[_Candidate]) -> None:
        """Merge one kind of candidate into its list (`actors:` or `topics:`)."""
        entries = _entries(self.document, f"{kind}s")
        matched: dict[int, tuple[CommentedMap, list[_Candidate]]] = {}
        fresh: set[int] = set()
        for cand in candidates:
            entry = _find_entry(entries, cand.id, _phrases_of(cand), _PHRASE_KEYS[kind])
            self.proposed.add(cand.id)
            if (reason := self.skip_reason(cand.id, entry)) is not None:
                self.actions.append(MergeAction(kind, cand.id, "skipped", _into(entry), reason))
            elif entry is None:
                entry = self.add(kind, entries, cand)
                fresh.add(id(entry))
                matched[id(entry)] = (entry, [cand])
            else:
                matched.setdefault(id(entry), (entry, []))[1].append(cand)
        for entry, cands in matched.values():
            self.proposed.add(str(entry.get("id")))
            mentions = sum(c.mentions for c in cands)
            documents = sorted({d for c in cands for d in c.documents})
            changed = _set_bookkeeping(entry, mentions, documents)
            action: Action = "updated" if changed else "unchanged"
            reason = "mentions/documents refreshed" if changed else "already known"
            if id(entry) in fresh:  # the first candidate was reported as added
                cands, action, reason = cands[1:], "updated", "merged into a new entry"
            for cand in cands:
                self.actions.append(MergeAction(kind, cand.id, action, _into(entry), reason))

    def add(
        self, kind: Literal["actor", "topic"], entries: CommentedSeq, cand: _Candidate
    ) -> CommentedMap:
        """Append a new entry; an id another entry already uses gets a suffix."""
        taken = _all_ids(self.document)
        new_id, n = cand.id, 1
        while new_id in taken:
            new_id, n = f"{cand.id}_{kind}" + (f"_{n}" if n > 1 else ""), n + 1
        written = replace(cand, id=new_id)
        if isinstance(written, ActorCandidate):
            entry = _actor_entry(written, self.today)
        else:
            entry = _topic_entry(written, self.today)
        entries.append(entry)
        self.proposed.add(new_id)
        into = None if new_id == cand.id else new_id
        self.actions.append(MergeAction(kind, cand.id, "added", into, "new candidate"))
        return entry


_Candidate = ActorCandidate | TopicCandidate
_PHRASE_KEYS = {"actor": "aliases", "topic": "terms"}


def _phrases_of(candidate: _Candidate) -> tuple[str, ...]:
    if isinstance(candidate, ActorCandidate):
        return (candidate.name, *candidate.aliases)
    return candidate.terms


def _all_ids(document: CommentedMap) -> set[str]:
    return {
        str(e.get("id"))
        for key in ("actors", "topics")
        for e in document.get(key) or ()
        if isinstance(e, CommentedMap)
    }


def _into(entry: CommentedMap | None) -> str | None:
    return None if entry is None else str(entry.get("id"))


def merge(
    document: CommentedMap,
    proposal: Proposal,
    *,
    restore: Iterable[str] = (),
    ledger: Iterable[str] = (),
    today: date,
) -> MergeReport:
    """Fold `proposal` into the round-trip `document` in place; never undo the user's edits.

    Known entries (same id, or sharing an alias/term case-insensitively) keep everything the
    user wrote; only an actor's `mentions` and `documents` are refreshed. New candidates are
    appended with `status: proposed`. A candidate id found in `ledger` (proposed before) with
    no entry left in the document was removed by the user and stays out unless in `restore`.
    """
    state = _Merge(document, frozenset(ledger), frozenset(restore), today)
    state.section("actor", proposal.actors)
    state.section("topic", proposal.topics)
    unknown = tuple(sorted(set(restore) - state.proposed))
    return MergeReport(tuple(state.actions), state.ledger | state.proposed, unknown)


# ── ledger sidecar and file I/O ──────────────────────────────────────────────────────


def ledger_path(watchlist_path: Path) -> Path:
    """The sidecar that remembers every id seeding proposed: `.watchlist-seed.json`."""
    return watchlist_path.with_name(f".{watchlist_path.stem}-seed.json")


def load_ledger(path: Path) -> frozenset[str]:
    """Ids seeding proposed before; empty when the sidecar does not exist yet."""
    if not path.exists():
        return frozenset()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the seeding ledger: {e}") from e
    ids = data.get("proposed_ids") if isinstance(data, dict) else None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ConfigError(f"{path}: key 'proposed_ids' must be a list of ids")
    return frozenset(ids)


def save_ledger(path: Path, ids: Iterable[str]) -> None:
    """Write the ledger atomically, ids sorted so the file diffs cleanly."""
    payload = {"version": 1, "proposed_ids": sorted(set(ids))}
    yamlio.write_atomic(path, (json.dumps(payload, indent=2) + "\n").encode("utf-8"))


def load_watchlist_document(path: Path) -> CommentedMap:
    """The watchlist as a round-trip document, or a fresh one when the file does not exist."""
    if not path.exists():
        return new_watchlist_document()
    document = yamlio.load(path)
    if document is None:
        return new_watchlist_document()
    if not isinstance(document, CommentedMap):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return document
