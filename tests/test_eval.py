"""The labelled evaluation guards the default watchlist: floors a little below what it reaches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from monitor.cli import match as match_cli
from monitor.errors import ConfigError
from monitor.evaluate import evaluate, load_eval_items
from monitor.match import Matcher
from monitor.similarity import load_seed_index
from monitor.watchlist import load_watchlist

ROOT = Path(__file__).resolve().parent.parent
EVAL_DIR = ROOT / "tests" / "data" / "eval"
needs_eval = pytest.mark.skipif(
    not (EVAL_DIR / "items.jsonl").exists(), reason="evaluation set not present"
)

#: Reached with the committed watchlist: 1.00 everywhere; floors leave room for new cases.
FLOORS = {"en": (0.95, 0.95), "ru": (0.92, 0.92), "uk": (0.92, 0.92)}


@needs_eval
def test_eval_floors_per_language() -> None:
    matcher = Matcher.compile(
        load_watchlist(ROOT / "config" / "watchlist.yaml"), load_seed_index(ROOT / "corpus")
    )
    report = evaluate(matcher, load_eval_items(EVAL_DIR))
    for lang, (precision, recall) in FLOORS.items():
        s = report.by_lang[lang]
        assert s.precision >= precision, (lang, [o.item.id for o in report.false_alarms])
        assert s.recall >= recall, (lang, [o.item.id for o in report.misses])
    assert report.by_label["hard_negative"].false_alarm_rate <= 0.05


#: Held-out sets (never tuned on) guard generalisation. Reached on 2026-11-22: holdout
#: P 0.98 R 1.00 (after fixes guided by its misses, so optimistic); holdout-2, measured once
#: untouched: P 0.96 R 0.98 overall (en 0.97/0.97, ru 0.86/1.00, uk 1.00/1.00).
HELD_OUT_FLOORS = {"eval-holdout": (0.95, 0.97), "eval-holdout-2": (0.93, 0.95)}


@pytest.mark.parametrize("name", sorted(HELD_OUT_FLOORS))
def test_held_out_floors(name: str) -> None:
    directory = ROOT / "tests" / "data" / name
    if not (directory / "items.jsonl").exists():
        pytest.skip(f"{directory} not present")
    matcher = Matcher.compile(
        load_watchlist(ROOT / "config" / "watchlist.yaml"), load_seed_index(ROOT / "corpus")
    )
    report = evaluate(matcher, load_eval_items(directory))
    precision, recall = HELD_OUT_FLOORS[name]
    assert report.overall.precision >= precision, [o.item.id for o in report.false_alarms]
    assert report.overall.recall >= recall, [o.item.id for o in report.misses]


def test_eval_file_errors_name_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "items.jsonl"
    good = {"id": "a", "title": "t", "summary": "s", "lang": "en", "label": "related"}
    bad.write_text(json.dumps(good) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"items.jsonl:2: invalid JSON"):
        load_eval_items(tmp_path)
    bad.write_text(json.dumps({**good, "label": "maybe"}) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"items.jsonl:1: label"):
        load_eval_items(bad)


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def root(ctx: typer.Context) -> None:
        ctx.obj = {"config_dir": ROOT / "config"}

    app.command("match")(match_cli.match)
    app.command("eval")(match_cli.eval_)
    return app


def _paths() -> list[str]:
    return ["--watchlist", str(ROOT / "config/watchlist.yaml"), "--corpus", str(ROOT / "corpus")]


def test_cli_eval_json_on_a_small_set(tmp_path: Path) -> None:
    rows = [
        {
            "id": "1",
            "title": "Zelensky and Putin agree to talks in Istanbul",
            "summary": "",
            "lang": "en",
            "label": "related",
        },
        {
            "id": "2",
            "title": "Witkoff on Gaza hostage talks",
            "summary": "",
            "lang": "en",
            "label": "hard_negative",
        },
        {
            "id": "3",
            "title": "Ukraine receives F-16 jets",
            "summary": "",
            "lang": "en",
            "label": "unrelated",
        },
    ]
    path = tmp_path / "set.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    result = CliRunner().invoke(_app(), ["eval", str(path), "--format", "json", *_paths()])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["overall"]["tp"] == 1 and data["overall"]["fp"] == 1
    assert [m["id"] for m in data["false_alarms"]] == ["3"]
    assert data["false_alarms"][0]["evidence"]["hits"]


def test_cli_match_text_and_json(tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["match", "Медвежий угол", "--title", "Зеленский призвал к перемирию", *_paths()]
    text = runner.invoke(_app(), args)
    assert text.exit_code == 0, text.output
    assert "MATCH" in text.output and "ceasefire" in text.output
    item = tmp_path / "item.json"
    item.write_text(json.dumps({"title": "Trump signs order", "summary": ""}), encoding="utf-8")
    out = runner.invoke(_app(), ["match", "--file", str(item), "--format", "json", *_paths()])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["matched"] is False and any("trump" in n for n in data["notes"])
