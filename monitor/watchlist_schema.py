"""The watchlist file's schema (pydantic, strict) and its validation into matcher records.

Imported only when a watchlist file is read: the records themselves (`monitor.watchlist`)
and the matcher need neither pydantic nor a YAML library, so a parse worker that receives
a compiled matcher imports neither."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from monitor import yamlio
from monitor.errors import WatchlistError
from monitor.watchlist import Actor, ActorType, Phrase, PhraseLang, Status, Topic

_ID = re.compile(r"^[a-z0-9_]+$")


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


def validated(
    data: dict[str, Any], *, source: str, document: Any
) -> tuple[tuple[Actor, ...], tuple[Topic, ...], float]:
    """The actors, topics and default threshold of a watchlist's plain data; every problem
    names `source`, the key path and (from the round-trip `document`) the line."""
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
    actors = tuple(_actor(a) for a in spec.actors)
    return actors, tuple(_topic(t) for t in spec.topics), spec.defaults.threshold


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
