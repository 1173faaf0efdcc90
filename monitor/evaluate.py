"""Evaluation of the matcher on a labelled JSONL set: precision, recall, F1 and the errors."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from monitor.errors import ConfigError
from monitor.jsonl import read_rows
from monitor.match import Matcher, evidence_to_json
from monitor.types import Lang, MatchResult

Label = Literal["related", "hard_negative", "unrelated"]
_LABELS: tuple[Label, ...] = ("related", "hard_negative", "unrelated")
_LANGS = ("en", "ru", "uk", "other")
_REQUIRED = ("id", "title", "summary", "lang", "label")


@dataclass(frozen=True, slots=True)
class EvalItem:
    """One labelled item of the evaluation set."""

    id: str
    title: str
    summary: str
    lang: Lang
    label: Label
    themes: tuple[str, ...] = ()
    note: str = ""

    @property
    def gold(self) -> bool:
        return self.label == "related"


@dataclass(frozen=True, slots=True)
class Outcome:
    item: EvalItem
    result: MatchResult

    @property
    def predicted(self) -> bool:
        return self.result.matched


@dataclass(frozen=True, slots=True)
class Scores:
    """Counts and rates for one slice of the set."""

    n: int
    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def false_alarm_rate(self) -> float:
        return self.fp / (self.fp + self.tn) if self.fp + self.tn else 0.0

    def as_dict(self) -> dict[str, float | int]:
        return {
            "n": self.n,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "tn": self.tn,
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
            "false_alarm_rate": round(self.false_alarm_rate, 4),
        }


@dataclass(frozen=True, slots=True)
class Report:
    """The whole evaluation: overall, per label, per language, and the errors."""

    overall: Scores
    by_label: Mapping[str, Scores]
    by_lang: Mapping[str, Scores]
    misses: tuple[Outcome, ...]
    false_alarms: tuple[Outcome, ...]
    watchlist_version: str


def load_eval_items(path: Path) -> list[EvalItem]:
    """Read a JSONL file (or `items.jsonl` in a directory); errors name the file and line."""
    return [_item(where, row) for where, row in read_rows(path, _REQUIRED)]


def _item(where: str, row: dict[str, Any]) -> EvalItem:
    if row["label"] not in _LABELS:
        raise ConfigError(f"{where}: label: expected one of {', '.join(_LABELS)}")
    lang = row["lang"] if row["lang"] in _LANGS else "other"
    return EvalItem(
        id=row["id"],
        title=row["title"],
        summary=row["summary"],
        lang=cast(Lang, lang),
        label=cast(Label, row["label"]),
        themes=tuple(row.get("themes") or ()),
        note=str(row.get("note") or ""),
    )


def evaluate(matcher: Matcher, items: Sequence[EvalItem]) -> Report:
    """Match every item (title + summary, its language) and compare with the gold label."""
    outcomes = [Outcome(it, matcher.match_text(it.title, it.summary, lang=it.lang)) for it in items]
    langs = sorted({o.item.lang for o in outcomes})
    return Report(
        overall=_scores(outcomes),
        by_label={lb: _scores(o for o in outcomes if o.item.label == lb) for lb in _LABELS},
        by_lang={lg: _scores(o for o in outcomes if o.item.lang == lg) for lg in langs},
        misses=tuple(o for o in outcomes if o.item.gold and not o.predicted),
        false_alarms=tuple(o for o in outcomes if not o.item.gold and o.predicted),
        watchlist_version=matcher.watchlist.version,
    )


def _scores(outcomes: Iterable[Outcome]) -> Scores:
    tp = fp = fn = tn = 0
    for o in outcomes:
        if o.item.gold:
            tp, fn = (tp + 1, fn) if o.predicted else (tp, fn + 1)
        else:
            fp, tn = (fp + 1, tn) if o.predicted else (fp, tn + 1)
    return Scores(n=tp + fp + fn + tn, tp=tp, fp=fp, fn=fn, tn=tn)


def report_to_json(report: Report) -> dict[str, Any]:
    """The report as JSON-serialisable data (for `monitor eval --format json`)."""
    return {
        "watchlist_version": report.watchlist_version,
        "overall": report.overall.as_dict(),
        "by_label": {k: v.as_dict() for k, v in report.by_label.items()},
        "by_lang": {k: v.as_dict() for k, v in report.by_lang.items()},
        "misses": [_outcome_json(o) for o in report.misses],
        "false_alarms": [_outcome_json(o) for o in report.false_alarms],
    }


def _outcome_json(o: Outcome) -> dict[str, Any]:
    return {
        "id": o.item.id,
        "lang": o.item.lang,
        "label": o.item.label,
        "title": o.item.title,
        "themes": list(o.item.themes),
        "note": o.item.note,
        "evidence": evidence_to_json(o.result),
    }
