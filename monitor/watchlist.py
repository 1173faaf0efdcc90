"""The watchlist file (config/watchlist.yaml): schema, validation and records for the matcher."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from monitor import yamlio
from monitor.errors import ConfigError, WatchlistError

ActorType = Literal["person", "org", "place", "country", "group"]
Status = Literal["curated", "proposed", "rejected"]
PhraseLang = Literal["en", "ru", "uk"]

_ID = re.compile(r"^[a-z0-9_]+$")


# --- the file's schema (pydantic, strict: unknown keys are errors) ---------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _PhraseSpec(_Strict):
    text: str
    lang: PhraseLang | None = None
    needs_context: bool = False
    weight: float = Field(1.0, gt=0, le=5)

    @field_validator("text")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("a phrase cannot be empty")
        return v.strip()


def _check_id(v: str) -> str:
    if not _ID.match(v):
        raise ValueError(f"ids are lower-case letters, digits and _ only, got {v!r}")
    return v


class _EntrySpec(_Strict):
    id: str
    name: str
    needs_context: bool = False
    context: list[str] = []
    exclude: list[str] = []
    status: Status = "curated"
    mentions: int | None = Field(None, ge=0)
    documents: list[str] = []
    notes: str | None = None

    @field_validator("id")
    @classmethod
    def _valid_id(cls, v: str) -> str:
        return _check_id(v)


class _ActorSpec(_EntrySpec):
    type: ActorType
    aliases: list[str | _PhraseSpec] = []


class _TopicSpec(_EntrySpec):
    terms: list[str | _PhraseSpec] = []
    actors: list[str] = []
    threshold: float | None = Field(None, gt=0)


class _Defaults(_Strict):
    threshold: float = Field(2.0, gt=0)


class _WatchlistSpec(_Strict):
    version: Literal[1]
    defaults: _Defaults = _Defaults()
    actors: list[_ActorSpec] = []
    topics: list[_TopicSpec] = []


# --- the records the matcher compiles ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Phrase:
    """An alias of an actor or a term of a topic, as written in the file."""

    text: str
    #: Informational: the script of the text decides where it can match.
    lang: PhraseLang | None = None
    #: This phrase alone counts only when the item has other watched evidence.
    needs_context: bool = False
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class Actor:
    """A watched person, organisation, place, country or group."""

    id: str
    name: str
    type: ActorType
    aliases: tuple[Phrase, ...]
    needs_context: bool
    #: Actor/topic ids or literal phrases that count as context (empty: any independent hit).
    context: tuple[str, ...]
    #: Phrases that veto this actor in an item (unless strong independent evidence exists).
    exclude: tuple[str, ...]
    status: Status
    mentions: int | None = None
    documents: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Topic:
    """A watched theme: terms, the actors that count toward it, and its rules."""

    id: str
    name: str
    terms: tuple[Phrase, ...]
    #: Actor ids that count toward this topic (empty: every watched actor counts).
    actors: tuple[str, ...]
    needs_context: bool
    context: tuple[str, ...]
    exclude: tuple[str, ...]
    #: Per-topic threshold, or None for the watchlist's default.
    threshold: float | None
    status: Status


@dataclass(frozen=True, slots=True)
class Watchlist:
    """A validated watchlist; `version` identifies its content (stored with every match)."""

    #: First 16 hex digits of the SHA-256 of the canonical content (comments do not count).
    version: str
    actors: tuple[Actor, ...]
    topics: tuple[Topic, ...]
    #: Global minimum topic score (defaults.threshold).
    threshold: float
    path: Path | None

    def actor(self, actor_id: str) -> Actor | None:
        return next((a for a in self.actors if a.id == actor_id), None)

    def topic(self, topic_id: str) -> Topic | None:
        return next((t for t in self.topics if t.id == topic_id), None)


# --- loading -------------------------------------------------------------------------------------


def load_watchlist(path: Path) -> Watchlist:
    """Read and validate the watchlist; every problem names the file, the key path and the line."""
    try:
        plain = yamlio.load_plain(path)
    except ConfigError as e:
        raise WatchlistError(str(e), e.problems) from e
    try:
        return parse_watchlist(plain, source=str(path), path=path)
    except WatchlistError:
        # Validate again on the round-trip document, whose nodes know their lines.
        return parse_watchlist(yamlio.load(path), source=str(path), path=path)


def parse_watchlist(document: Any, *, source: str, path: Path | None = None) -> Watchlist:
    """Validate a loaded YAML document (round-trip or plain) into a Watchlist."""
    data = _plain(document)
    if not isinstance(data, dict):
        raise WatchlistError(f"{source}: expected a mapping with version, defaults, actors, topics")
    try:
        spec = _WatchlistSpec.model_validate(data)
    except ValidationError as e:
        problems = tuple(yamlio.validation_problems(e, source, document))
        raise WatchlistError(
            f"{source}: {len(problems)} problem(s): {problems[0]}", problems
        ) from e
    problems = tuple(_cross_check(spec, source, document))
    if problems:
        raise WatchlistError(f"{source}: {len(problems)} problem(s): {problems[0]}", problems)
    return Watchlist(
        version=content_version(data),
        actors=tuple(_actor(a) for a in spec.actors),
        topics=tuple(_topic(t) for t in spec.topics),
        threshold=spec.defaults.threshold,
        path=path,
    )


def content_version(data: Any) -> str:
    """First 16 hex digits of the SHA-256 of the canonical JSON of the content."""
    canonical = json.dumps(_plain(data), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def _problem(source: str, document: Any, loc: Sequence[str | int], message: str) -> str:
    line = yamlio.line_of(document, loc)
    where = f"{source}:{line}" if line else source
    return f"{where}: {'.'.join(str(p) for p in loc)}: {message}"


def _cross_check(spec: _WatchlistSpec, source: str, document: Any) -> list[str]:
    """Rules pydantic cannot see: unique ids, known actor references, phrases with words."""
    problems: list[str] = []
    seen: dict[str, str] = {}
    for section, entries in (("actors", spec.actors), ("topics", spec.topics)):
        for i, entry in enumerate(entries):
            if entry.id in seen:
                msg = f"duplicate id {entry.id!r} (already used in {seen[entry.id]})"
                problems.append(_problem(source, document, [section, i, "id"], msg))
            seen[entry.id] = section
    actor_ids = {a.id for a in spec.actors}
    for i, topic in enumerate(spec.topics):
        for j, ref in enumerate(topic.actors):
            if ref not in actor_ids:
                loc: list[str | int] = ["topics", i, "actors", j]
                problems.append(_problem(source, document, loc, f"unknown actor id {ref!r}"))
    for i, actor in enumerate(spec.actors):
        for j, alias in enumerate(actor.aliases):
            if not _has_word(alias if isinstance(alias, str) else alias.text):
                loc = ["actors", i, "aliases", j]
                problems.append(_problem(source, document, loc, "alias has no letters or digits"))
    for i, topic in enumerate(spec.topics):
        for j, term in enumerate(topic.terms):
            if not _has_word(term if isinstance(term, str) else term.text):
                loc = ["topics", i, "terms", j]
                problems.append(_problem(source, document, loc, "term has no letters or digits"))
    return problems


def _has_word(text: str) -> bool:
    return any(ch.isalnum() for ch in text)


def _phrase(entry: str | _PhraseSpec) -> Phrase:
    if isinstance(entry, str):
        return Phrase(text=entry.strip())
    return Phrase(entry.text, entry.lang, entry.needs_context, entry.weight)


def _actor(spec: _ActorSpec) -> Actor:
    return Actor(
        id=spec.id,
        name=spec.name,
        type=spec.type,
        aliases=tuple(_phrase(a) for a in spec.aliases),
        needs_context=spec.needs_context,
        context=tuple(spec.context),
        exclude=tuple(x for x in spec.exclude if x.strip()),
        status=spec.status,
        mentions=spec.mentions,
        documents=tuple(spec.documents),
    )


def _topic(spec: _TopicSpec) -> Topic:
    return Topic(
        id=spec.id,
        name=spec.name,
        terms=tuple(_phrase(t) for t in spec.terms),
        actors=tuple(spec.actors),
        needs_context=spec.needs_context,
        context=tuple(spec.context),
        exclude=tuple(x for x in spec.exclude if x.strip()),
        threshold=spec.threshold,
        status=spec.status,
    )


def _plain(node: Any) -> Any:
    if isinstance(node, Mapping):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [_plain(v) for v in node]
    return node


# --- editing (used by `monitor watchlist add-actor` / `add-term`) --------------------------------


def make_id(name: str) -> str:
    """An id from a display name: `Volodymyr Zelensky` -> `volodymyr_zelensky`."""
    ascii_words = re.findall(r"[a-z0-9]+", name.lower())
    return "_".join(ascii_words) or "actor_" + hashlib.sha256(name.encode()).hexdigest()[:8]


def add_actor(
    document: Any,
    *,
    name: str,
    aliases: Sequence[str],
    actor_type: ActorType = "person",
    actor_id: str | None = None,
    status: Status = "curated",
) -> str:
    """Append an actor to a round-trip document (in place); returns its id. Validate afterwards."""
    new_id = actor_id or make_id(name)
    actors = document.setdefault("actors", [])
    if any(str(a.get("id")) == new_id for a in actors):
        raise WatchlistError(f"actor id {new_id!r} already exists; pass --id to choose another")
    unique = list(dict.fromkeys([name, *aliases]))
    actors.append(
        {"id": new_id, "name": name, "type": actor_type, "aliases": unique, "status": status}
    )
    return new_id


def add_term(document: Any, *, topic_id: str, term: str, lang: PhraseLang | None = None) -> None:
    """Append a term to a topic of a round-trip document (in place). Validate afterwards."""
    topic = next((t for t in document.get("topics", []) if str(t.get("id")) == topic_id), None)
    if topic is None:
        raise WatchlistError(f"no topic with id {topic_id!r}")
    terms = topic.setdefault("terms", [])
    existing = {str(t if isinstance(t, str) else t.get("text")).casefold() for t in terms}
    if term.strip().casefold() in existing:
        raise WatchlistError(f"topic {topic_id!r} already has the term {term!r}")
    terms.append({"text": term.strip(), "lang": lang} if lang else term.strip())
