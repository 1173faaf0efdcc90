"""Watchlist file: validation errors with file/key/line, versions, and comment-keeping edits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from monitor.cli import watchlist as cli
from monitor.errors import WatchlistError
from monitor.watchlist import load_watchlist

ROOT = Path(__file__).resolve().parent.parent

BASE = """\
# header comment kept on rewrite
version: 1
defaults:
  threshold: 2.0
actors:
  - id: kyiv   # the capital
    name: Kyiv
    type: place
    aliases: [Kyiv, {text: Київ, lang: uk}]
topics:
  - id: talks
    name: Talks
    terms: [talks]
    actors: [kyiv]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "watchlist.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_default_watchlist_is_valid() -> None:
    wl = load_watchlist(ROOT / "config" / "watchlist.yaml")
    assert len(wl.actors) > 50 and len(wl.topics) >= 10
    assert len(wl.version) == 16


def test_version_ignores_comments_but_not_content(tmp_path: Path) -> None:
    a = load_watchlist(write(tmp_path, BASE)).version
    b = load_watchlist(write(tmp_path, "# another comment\n" + BASE)).version
    c = load_watchlist(write(tmp_path, BASE.replace("2.0", "2.5"))).version
    assert a == b != c


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("    type: place\n", "    type: place\n    colour: red\n"),
            ":9: actors.0.colour: unknown key",
        ),
        (("type: place", "type: planet"), ":8: actors.0.type"),
        (("id: kyiv   #", "id: Kyiv   #"), ":6: actors.0.id"),
        (("actors: [kyiv]", "actors: [nobody]"), "topics.0.actors.0: unknown actor id 'nobody'"),
        (("id: talks", "id: kyiv"), "duplicate id 'kyiv'"),
        (("terms: [talks]", "terms: ['--']"), "topics.0.terms.0: term has no letters"),
        (("version: 1", "version: 2"), ":2: version"),
    ],
)
def test_errors_name_file_key_and_line(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    path = write(tmp_path, BASE.replace(*change))
    with pytest.raises(WatchlistError) as e:
        load_watchlist(path)
    problems = "\n".join(e.value.problems)
    assert str(path) in problems
    assert expected in problems


def test_missing_file_and_bad_yaml_are_watchlist_errors(tmp_path: Path) -> None:
    with pytest.raises(WatchlistError, match="not found"):
        load_watchlist(tmp_path / "nope.yaml")
    with pytest.raises(WatchlistError, match=r"watchlist.yaml:\d+"):
        load_watchlist(write(tmp_path, "version: 1\nactors: [\n"))


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def root(ctx: typer.Context) -> None:
        ctx.obj = {"config_dir": None}

    app.add_typer(cli.app, name="watchlist")
    return app


def test_cli_add_actor_and_term_keep_comments(tmp_path: Path) -> None:
    path = write(tmp_path, BASE)
    runner = CliRunner()
    args = ["watchlist", "add-actor", "Rustem Umerov", "--alias", "Umerov", "--alias", "Умеров"]
    result = runner.invoke(_app(), [*args, "--watchlist", str(path)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        _app(),
        ["watchlist", "add-term", "talks", "переговоры", "--lang", "ru", "--watchlist", str(path)],
    )
    assert result.exit_code == 0, result.output
    text = path.read_text(encoding="utf-8")
    assert "# header comment kept on rewrite" in text and "# the capital" in text
    wl = load_watchlist(path)
    umerov = wl.actor("rustem_umerov")
    assert umerov is not None and [a.text for a in umerov.aliases][-1] == "Умеров"
    talks = wl.topic("talks")
    assert talks is not None and talks.terms[-1].text == "переговоры"


def test_cli_refuses_invalid_edit_and_keeps_file(tmp_path: Path) -> None:
    path = write(tmp_path, BASE)
    before = path.read_bytes()
    runner = CliRunner()
    bad_id = ["watchlist", "add-actor", "X", "--id", "Bad Id", "--watchlist", str(path)]
    assert runner.invoke(_app(), bad_id).exit_code == 2
    no_topic = ["watchlist", "add-term", "nope", "x", "--watchlist", str(path)]
    assert runner.invoke(_app(), no_topic).exit_code == 2
    assert path.read_bytes() == before


def test_cli_list_json(tmp_path: Path) -> None:
    path = write(tmp_path, BASE)
    result = CliRunner().invoke(
        _app(), ["watchlist", "list", "--format", "json", "--watchlist", str(path)]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["actors"][0]["aliases"] == ["Kyiv", "Київ"]
    assert data["topics"][0]["threshold"] == 2.0
