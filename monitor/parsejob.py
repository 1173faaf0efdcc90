"""What a parse worker process runs: one feed body parsed, normalised, matched and shingled.

The pipeline (`monitor.pipeline`) submits `parse_and_normalise` to a pool of spawned
processes, each started by `start_worker`. A spawned worker imports this module before its
first task, and with it only what that work needs: not the settings, the scheduler or
asyncio, which the orchestrator's module imports.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from monitor.errors import ConfigError, ParseError
from monitor.types import Item, MatchRecord

if TYPE_CHECKING:
    from monitor.match import Matcher as CompiledMatcher


@dataclass(frozen=True, slots=True)
class WatchlistRef:
    """Where a worker process finds the watchlist in force, and which version it must be."""

    path: str
    version: str
    corpus: str | None


@dataclass(frozen=True, slots=True)
class ParseOutcome:
    """Result of parse + normalise (+ match, in a worker), safe to send back between processes."""

    items: tuple[Item, ...] = ()
    title: str | None = None
    ttl_min: int | None = None
    warnings: tuple[str, ...] = ()
    error: str | None = None
    #: When a worker matched the items: what is stored of each one's match (None where it
    #: did not match). None leaves matching to the caller.
    matches: tuple[MatchRecord | None, ...] | None = None
    #: One per item when asked for: what story clustering compares (`story_shingles`).
    shingles: tuple[bytes | str, ...] | None = None
    #: Entries left out before normalising because the feed had stored them already.
    known_left_out: int = 0


def parse_and_normalise(
    body: bytes,
    url: str,
    headers: Mapping[str, str],
    now: datetime,
    max_items: int,
    feed_lang: str | None,
    watchlist: WatchlistRef | None = None,
    stories: bool = False,
    known: Callable[[Sequence[str]], set[str]] | None = None,
) -> ParseOutcome:
    """Bytes in, normalised items (or the reason the body is not a usable feed) out; with a
    `watchlist`, the items are matched too, and with `stories` their story shingles are taken
    (both in a worker process, off the storage thread). With `known` (which of these
    identities the feed has stored), entries already stored are left out before normalising
    where their identity can be told early (`entry_identities`): a steady cycle's changed
    feeds bring a few new entries among many known ones."""
    from monitor.normalize import entry_identities, normalize_entries
    from monitor.parse import parse_feed
    from monitor.shingles import story_shingles

    try:
        parsed = parse_feed(body, url=url, headers=headers)
    except ParseError as e:
        return ParseOutcome(error=e.reason)
    skip: set[str] = set()
    if known is not None:
        early = [i for i in entry_identities(parsed, max_items) if i is not None]
        skip = known(early) if early else set()
    normalised = normalize_entries(
        parsed, now=now, max_items=max_items, feed_lang=feed_lang, skip=skip
    )
    warnings = (*((parsed.warning,) if parsed.warning else ()), *normalised.warnings)
    matcher = _worker_matcher(watchlist) if watchlist is not None else None
    return ParseOutcome(
        items=normalised.items,
        title=parsed.title,
        ttl_min=parsed.ttl_min,
        warnings=tuple(warnings),
        matches=tuple(map(matcher.record, normalised.items)) if matcher else None,
        shingles=(
            tuple(story_shingles(i.title, i.summary) for i in normalised.items) if stories else None
        ),
        known_left_out=len(skip),
    )


def start_worker(parent_pid: int, matcher: str | None = None) -> None:
    """Worker process initializer: the collector tuned as in the parent (`tune_worker`), an
    end when the parent is gone (`exit_with_parent`), and the parent's compiled watchlist,
    if it left one at `matcher` (`MatcherHandoff`), kept for the tasks that ask for its
    version."""
    from monitor.collector import tune_worker

    tune_worker()
    exit_with_parent(parent_pid)
    if matcher is not None:
        with contextlib.suppress(OSError):  # gone: tasks read the watchlist file instead
            compiled: CompiledMatcher = pickle.loads(Path(matcher).read_bytes())
            _shipped[compiled.watchlist.version] = compiled


class MatcherHandoff:
    """The parent's compiled watchlist, left in a file of a private directory for its parse
    workers to load as they start (`start_worker`).

    A worker that loaded the watchlist itself imported pydantic and a YAML library, and
    validated and compiled the file: 0.2 s of its start, on the cycle's critical path (the
    parent has nothing to store until the workers send their first feeds). Loading the
    parent's matcher needs neither (`monitor.watchlist_schema` is imported only to read a
    file) and takes about 13 ms. It goes by file, not as an argument of the initializer: a
    spawned process reads its arguments only after starting its interpreter and importing
    its parent's main module, and the parent's write of more than a pipe's 64 KiB (the
    bench's matcher pickles to 260 KB) waited for that, holding the event loop 0.12 s per
    worker at the cycle's start."""

    def __init__(self) -> None:
        self._directory: tempfile.TemporaryDirectory[str] | None = None

    def path_for(self, matcher: CompiledMatcher | None) -> str | None:
        """Where `matcher` is left for the workers (None: nothing to hand over)."""
        if matcher is None:
            return None
        if self._directory is None:  # mode 0700, removed at exit if not before
            self._directory = tempfile.TemporaryDirectory(prefix="monitor-workers-")
        path = Path(self._directory.name) / f"matcher-{matcher.watchlist.version}.pickle"
        path.write_bytes(pickle.dumps(matcher, pickle.HIGHEST_PROTOCOL))
        return str(path)

    def close(self) -> None:
        """Remove what was left (call once the workers have started or are gone)."""
        if self._directory is not None:
            self._directory.cleanup()
            self._directory = None


#: Compiled watchlists the parent sent (`start_worker`), by version.
_shipped: dict[str, CompiledMatcher] = {}


def exit_with_parent(parent_pid: int, interval_s: float = 1.0) -> None:
    """End this worker process once the process that started it is gone (`start_worker`
    calls it as a worker starts).

    A pool's workers wait on its task queue, and they hold that queue's write end too, so a
    parent killed before it could shut the pool down (SIGKILL, or SIGTERM to `monitor poll`)
    would leave them waiting forever. A daemon thread checks the parent id every
    `interval_s` seconds (a dead parent's children are handed to another process)."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(interval_s)
        os._exit(0)

    threading.Thread(target=watch, name="monitor-parent-watch", daemon=True).start()


@lru_cache(maxsize=4)
def _worker_matcher(ref: WatchlistRef) -> CompiledMatcher | None:
    """The compiled watchlist of the version asked for: the one the parent sent, else the
    worker's own from the file (the watchlist changed since the pool started), or None when
    the file no longer holds that version (it was edited mid-cycle): the storage thread then
    matches with its own."""
    if ref.version in _shipped:
        return _shipped[ref.version]
    from monitor import match
    from monitor.similarity import load_seed_index
    from monitor.watchlist import load_watchlist

    try:
        watchlist = load_watchlist(Path(ref.path))
        seeds = load_seed_index(Path(ref.corpus)) if ref.corpus else None
    except ConfigError:
        return None
    if watchlist.version != ref.version:
        return None
    return match.Matcher.compile(watchlist, seeds)
