"""The watchlist (config/watchlist.yaml): the records the matcher compiles, and loading them.

The file's schema lives in `monitor.watchlist_schema`, imported only when a file is read:
these records need neither pydantic nor a YAML library (see that module)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from monitor.errors import ConfigError, WatchlistError

ActorType = Literal["person", "org", "place", "country", "group"]
Status = Literal["curated", "proposed", "rejected"]
PhraseLang = Literal["en", "ru", "uk"]

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
    from monitor import yamlio

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
    from monitor.watchlist_schema import validated

    data = _plain(document)
    if not isinstance(data, dict):
        raise WatchlistError(f"{source}: expected a mapping with version, defaults, actors, topics")
    actors, topics, threshold = validated(data, source=source, document=document)
    return Watchlist(
        version=content_version(data),
        actors=actors,
        topics=topics,
        threshold=threshold,
        path=path,
    )


def content_version(data: Any) -> str:
    """First 16 hex digits of the SHA-256 of the canonical JSON of the content."""
    canonical = json.dumps(_plain(data), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


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
