"""Pure decision of what re-matching a stored item under the current watchlist changes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from monitor.types import MatchResult

ChangeKind = Literal["added", "removed", "changed", "kept_delivered"]


@dataclass(frozen=True, slots=True)
class RematchChange:
    item_id: int
    match_id: int | None
    kind: ChangeKind
    title: str
    before: tuple[str, ...]
    after: tuple[str, ...]
    score: float


def plan(
    item_id: int,
    title: str,
    match_id: int | None,
    topics_before: tuple[str, ...],
    delivered: bool,
    result: MatchResult,
) -> RematchChange | None:
    """What to do with one stored item: add a match, remove one (only if never delivered —
    a delivered alert is history), change topics/score in place, or nothing."""
    after = result.topics if result.matched else ()

    def change(kind: ChangeKind) -> RematchChange:
        return RematchChange(item_id, match_id, kind, title, topics_before, after, result.score)

    if match_id is None:
        return change("added") if result.matched else None
    if not result.matched:
        return change("kept_delivered" if delivered else "removed")
    if tuple(sorted(after)) != tuple(sorted(topics_before)):
        return change("changed")
    return None
