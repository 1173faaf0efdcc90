"""Evaluation of story clustering against a labelled set: pairwise precision, recall, mistakes.

The labelled set (`items.jsonl`: id, story, feed, link, title, summary, published, …) is
clustered in published order by the same `plan_batch` decision the store path uses, with an
in-memory word index like the one storage keeps.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import combinations
from pathlib import Path
from typing import Any

from monitor.errors import ConfigError
from monitor.jsonl import read_rows
from monitor.shingles import content_words, shingles
from monitor.stories import (
    Candidate,
    Prepared,
    StoryRules,
    duplicate_roots,
    fingerprints,
    plan_batch,
)


@dataclass(frozen=True, slots=True)
class LabelledItem:
    """One line of the labelled set."""

    id: str
    story: str
    feed: str
    link: str
    title: str
    summary: str
    published: datetime


@dataclass(frozen=True, slots=True)
class Mistake:
    """A predicted cluster mixing gold stories ("merged"), or a gold story spread over
    several clusters ("split"), with the item ids grouped by the other side's label."""

    kind: str
    label: str
    groups: tuple[tuple[str, ...], ...]


@dataclass(frozen=True, slots=True)
class Evaluation:
    precision: float
    recall: float
    f1: float
    true_pairs: int
    predicted_pairs: int
    gold_pairs: int
    clusters: int
    gold_stories: int
    mistakes: tuple[Mistake, ...]


_REQUIRED = ("id", "story", "link", "title", "summary", "published")


def load_labelled(path: Path) -> list[LabelledItem]:
    """Read items.jsonl (or a directory holding it); errors name the file and line."""
    return [_item(where, row) for where, row in read_rows(path, _REQUIRED)]


def _item(where: str, row: dict[str, Any]) -> LabelledItem:
    try:
        published = datetime.fromisoformat(row["published"].replace("Z", "+00:00"))
    except ValueError as e:
        raise ConfigError(f"{where}: published: not an ISO 8601 date: {row['published']!r}") from e
    if published.tzinfo is None:
        raise ConfigError(f"{where}: published: needs a time zone (e.g. a trailing Z)")
    return LabelledItem(
        id=row["id"],
        story=row["story"],
        feed=str(row.get("feed") or ""),
        link=row["link"],
        title=row["title"],
        summary=row["summary"],
        published=published,
    )


def content_key(title: str, summary: str) -> str:
    """Stand-in for the normaliser's content_hash: hash of the normalised words."""
    words = " ".join(content_words(f"{title}\n{summary}"))
    return hashlib.sha256(words.encode("utf-8")).hexdigest()


def cluster(items: Sequence[LabelledItem], rules: StoryRules) -> dict[str, int]:
    """Cluster label per item id, through `plan_batch` with an in-memory band index."""
    ordered = sorted(items, key=lambda it: (it.published, it.id))
    sets = [shingles(it.title, it.summary) for it in ordered]
    prints = fingerprints(sets)
    roots = duplicate_roots(
        [(n, it.link, content_key(it.title, it.summary)) for n, it in enumerate(ordered)]
    )
    batch = [
        Prepared(item_id=n, appeared_at=it.published, fingerprint=fp, duplicate_of=roots.get(n))
        for n, (it, fp) in enumerate(zip(ordered, prints, strict=True))
    ]
    no_stored: dict[int, list[Candidate]] = {}
    decisions = plan_batch(batch, no_stored, {}, rules)
    story_of = {d.item_id: d.leader_id if d.leader_id is not None else -1 for d in decisions}
    return {ordered[n].id: label for n, label in story_of.items()}


def evaluate(items: Sequence[LabelledItem], predicted: dict[str, int]) -> Evaluation:
    """Pairwise precision/recall of `predicted` against the gold `story` labels."""
    tp = fp = fn = 0
    for a, b in combinations(items, 2):
        same = predicted[a.id] == predicted[b.id]
        gold = a.story == b.story
        tp += same and gold
        fp += same and not gold
        fn += gold and not same
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Evaluation(
        precision=precision,
        recall=recall,
        f1=f1,
        true_pairs=tp,
        predicted_pairs=tp + fp,
        gold_pairs=tp + fn,
        clusters=len(set(predicted.values())),
        gold_stories=len({it.story for it in items}),
        mistakes=tuple(mistakes(items, predicted)),
    )


def mistakes(items: Sequence[LabelledItem], predicted: dict[str, int]) -> list[Mistake]:
    """Merged clusters (several gold stories) and split stories (several clusters)."""
    by_cluster: dict[int, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    by_story: dict[str, dict[int, list[str]]] = defaultdict(lambda: defaultdict(list))
    for it in items:
        by_cluster[predicted[it.id]][it.story].append(it.id)
        by_story[it.story][predicted[it.id]].append(it.id)
    out = [
        Mistake("merged", "+".join(sorted(stories)), tuple(tuple(v) for v in stories.values()))
        for stories in by_cluster.values()
        if len(stories) > 1
    ]
    out += [
        Mistake("split", story, tuple(tuple(v) for v in parts.values()))
        for story, parts in sorted(by_story.items())
        if len(parts) > 1
    ]
    return out


def run(path: Path, rules: StoryRules) -> Evaluation:
    items = load_labelled(path)
    return evaluate(items, cluster(items, rules))


def sweep(
    path: Path, rules: StoryRules, thresholds: Sequence[float], slopes: Sequence[float]
) -> list[tuple[float, float, Evaluation]]:
    """Evaluation for every (threshold, slope) pair, for the table in docs/decisions.md."""
    items = load_labelled(path)
    out = []
    for slope in slopes:
        for threshold in thresholds:
            varied = StoryRules(rules.window, threshold, slope)
            out.append((threshold, slope, evaluate(items, cluster(items, varied))))
    return out


def format_report(result: Evaluation) -> str:
    """Plain-text report: the scores, then one line per mistake."""
    lines = [
        f"pairwise precision {result.precision:.3f}  recall {result.recall:.3f}  "
        f"F1 {result.f1:.3f}",
        f"pairs: {result.true_pairs} right of {result.predicted_pairs} predicted, "
        f"{result.gold_pairs} gold; clusters {result.clusters} for {result.gold_stories} stories",
    ]
    for m in result.mistakes:
        groups = " | ".join(",".join(g) for g in m.groups)
        lines.append(f"{m.kind:6} {m.label}: {groups}")
    return "\n".join(lines)
