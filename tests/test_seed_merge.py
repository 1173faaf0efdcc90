"""Merging seeding proposals into the user's watchlist: comments, edits and removals survive."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest
import typer
from ruamel.yaml.comments import CommentedMap
from typer.testing import CliRunner

from monitor import yamlio
from monitor.cli.seed import app as seed_app
from monitor.errors import ConfigError
from monitor.seed import (
    ActorCandidate,
    Proposal,
    TopicCandidate,
    ledger_path,
    load_ledger,
    merge,
    save_ledger,
)
from monitor.watchlist import parse_watchlist

TODAY = date(2025, 6, 20)
REPO = Path(__file__).resolve().parent.parent

USER_YAML = """\
# My watchlist: hand-written notes that must survive seeding.
version: 1
defaults:
  threshold: 2.0   # keep it strict
actors:
  - id: zelensky          # the user's own id
    name: Volodymyr Zelensky
    type: person
    aliases:
      - Zelensky
      - Zelenskyy         # added by hand
      - {text: Зеленський, lang: uk}
    needs_context: false
    status: curated
  - id: medvedev
    name: Dmitry Medvedev
    type: person
    aliases: [Medvedev]
    status: rejected      # tennis noise
topics:
  - id: ceasefire
    name: Ceasefire and truce
    terms: [ceasefire, truce]
    needs_context: true
    exclude: [Gaza]       # other wars
"""


def _actor(actor_id: str, name: str, *aliases: str, mentions: int = 3) -> ActorCandidate:
    return ActorCandidate(
        id=actor_id,
        name=name,
        type="person",
        aliases=(name, *aliases),
        mentions=mentions,
        documents=("000_a", "004_b"),
    )


PROPOSAL = Proposal(
    actors=(
        _actor("volodymyr_zelensky", "Volodymyr Zelensky", "Zelensky", mentions=9),
        _actor("medvedev", "Dmitry Medvedev", "Medvedev"),
        _actor("peskov", "Dmitry Peskov", "Peskov", mentions=2),
        _actor("lavrov", "Sergey Lavrov", "Lavrov", mentions=4),
    ),
    topics=(
        TopicCandidate("truce", "Truce", ("truce", "temporary truce"), 3, ("002_c",), 8.7),
        TopicCandidate(
            "sanctions", "Sanctions", ("sanctions", "new sanctions"), 6, ("003_d",), 9.1
        ),
        TopicCandidate("lavrov", "Lavrov visits", ("lavrov visit",), 2, ("004_b",), 1.0),
    ),
)


def _document(text: str = USER_YAML) -> CommentedMap:
    document = yamlio.loads(text)
    assert isinstance(document, CommentedMap)
    return document


def _entry(document: CommentedMap, section: str, entry_id: str) -> CommentedMap:
    found = [e for e in document[section] if e["id"] == entry_id]
    assert len(found) == 1, f"{entry_id}: {len(found)} entries"
    entry: CommentedMap = found[0]
    return entry


def test_merge_keeps_comments_and_user_edits() -> None:
    document = _document()
    merge(document, PROPOSAL, today=TODAY)
    out = yamlio.dumps(document)
    for comment in (
        "# My watchlist: hand-written",
        "# keep it strict",
        "# the user's own id",
        "# added by hand",
        "# tennis noise",
        "# other wars",
    ):
        assert comment in out
    zelensky = _entry(document, "actors", "zelensky")
    assert list(zelensky["aliases"])[:2] == ["Zelensky", "Zelenskyy"]
    assert zelensky["aliases"][2]["text"] == "Зеленський"
    assert zelensky["status"] == "curated"
    assert zelensky["mentions"] == 9 and list(zelensky["documents"]) == ["000_a", "004_b"]
    parse_watchlist(document, source="merged")  # still a valid watchlist


def test_an_actor_known_by_an_alias_is_not_duplicated() -> None:
    document = _document()
    report = merge(document, PROPOSAL, today=TODAY)
    assert [e["id"] for e in document["actors"]].count("zelensky") == 1
    assert "volodymyr_zelensky" not in [e["id"] for e in document["actors"]]
    action = next(a for a in report.actions if a.id == "volodymyr_zelensky")
    assert (action.action, action.into) == ("updated", "zelensky")


def test_new_candidates_are_appended_as_proposed_with_a_dated_comment() -> None:
    document = _document()
    report = merge(document, PROPOSAL, today=TODAY)
    peskov = _entry(document, "actors", "peskov")
    assert peskov["status"] == "proposed"
    assert peskov["aliases"] == ["Dmitry Peskov", "Peskov"]
    assert "id: peskov  # proposed by seeding on 2025-06-20" in yamlio.dumps(document)
    assert _entry(document, "topics", "sanctions")["status"] == "proposed"
    added = sorted((a.kind, a.id) for a in report.actions if a.action == "added")
    assert added == [
        ("actor", "lavrov"),
        ("actor", "peskov"),
        ("topic", "lavrov"),
        ("topic", "sanctions"),
    ]


def test_a_topic_sharing_a_term_merges_and_ids_stay_unique() -> None:
    document = _document()
    report = merge(document, PROPOSAL, today=TODAY)
    assert "truce" not in [e["id"] for e in document["topics"]]
    assert next(a for a in report.actions if a.id == "truce").into == "ceasefire"
    ceasefire = _entry(document, "topics", "ceasefire")
    assert list(ceasefire["terms"]) == ["ceasefire", "truce"]
    topic_ids = [e["id"] for e in document["topics"]]
    assert "lavrov_topic" in topic_ids  # the actor took "lavrov"


def test_rejected_entries_stay_rejected_and_untouched() -> None:
    document = _document()
    before = yamlio.dumps(_entry(document, "actors", "medvedev"))
    report = merge(document, PROPOSAL, today=TODAY)
    assert yamlio.dumps(_entry(document, "actors", "medvedev")) == before
    action = next(a for a in report.actions if a.id == "medvedev")
    assert action.action == "skipped" and "rejected" in action.reason


def test_seeding_twice_changes_nothing_the_second_time() -> None:
    document = _document()
    first = merge(document, PROPOSAL, today=TODAY)
    once = yamlio.dumps(document)
    second = merge(document, PROPOSAL, ledger=first.ledger, today=date(2025, 7, 1))
    assert yamlio.dumps(document) == once
    assert not second.changed
    assert second.ledger == first.ledger


def test_a_removed_id_does_not_come_back_unless_restored() -> None:
    document = _document()
    first = merge(document, PROPOSAL, today=TODAY)
    document["actors"] = [e for e in document["actors"] if e["id"] != "peskov"]
    document = _document(yamlio.dumps(document))

    again = merge(document, PROPOSAL, ledger=first.ledger, today=TODAY)
    assert "peskov" not in [e["id"] for e in document["actors"]]
    action = next(a for a in again.actions if a.id == "peskov")
    assert action.action == "skipped" and "--restore" in action.reason
    assert "peskov" in again.ledger

    restored = merge(
        document, PROPOSAL, ledger=again.ledger, restore={"peskov", "nobody"}, today=TODAY
    )
    assert _entry(document, "actors", "peskov")["status"] == "proposed"
    assert restored.unknown_restores == ("nobody",)


def test_merge_into_an_empty_watchlist_is_valid() -> None:
    from monitor.seed import new_watchlist_document

    document = new_watchlist_document()
    merge(document, PROPOSAL, today=TODAY)
    watchlist = parse_watchlist(_document(yamlio.dumps(document)), source="new")
    assert {a.id for a in watchlist.actors} >= {"volodymyr_zelensky", "peskov", "medvedev"}


def test_ledger_round_trip_and_errors(tmp_path: Path) -> None:
    path = ledger_path(tmp_path / "watchlist.yaml")
    assert path.name == ".watchlist-seed.json"
    assert load_ledger(path) == frozenset()
    save_ledger(path, ["b", "a", "b"])
    assert load_ledger(path) == {"a", "b"}
    path.write_text('{"proposed_ids": "oops"}', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\.watchlist-seed\.json: key 'proposed_ids'"):
        load_ledger(path)
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\.watchlist-seed\.json"):
        load_ledger(path)


# ── the command ──────────────────────────────────────────────────────────────────────


def _cli() -> typer.Typer:
    root = typer.Typer()

    @root.callback()
    def _root(ctx: typer.Context) -> None:
        ctx.obj = {}

    root.add_typer(seed_app, name="watchlist")
    return root


@pytest.fixture()
def small_corpus(tmp_path: Path) -> Path:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text(
        "Talks in Geneva\nSergey Lavrov met Antony Blinken in Geneva on Friday. Later, Lavrov "
        "told reporters that Blinken had offered no security guarantees. Blinken disagreed.\n",
        encoding="utf-8",
    )
    (corpus / "b.txt").write_text(
        "Sanctions\nJoe Biden warned of new sanctions. Biden said NATO would not wait, and "
        "Lavrov answered that sanctions and security guarantees were separate matters.\n",
        encoding="utf-8",
    )
    return corpus


def _run(config: Path, corpus: Path, *args: str) -> str:
    result = CliRunner().invoke(
        _cli(), ["watchlist", "seed", str(corpus), "--config-dir", str(config), *args]
    )
    assert result.exit_code == 0, result.output
    return result.output


def test_cli_dry_run_writes_nothing_then_seeding_writes(tmp_path: Path, small_corpus: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    output = _run(config, small_corpus, "--dry-run")
    assert "dry run" in output and "lavrov" in output
    assert not (config / "watchlist.yaml").exists()

    _run(config, small_corpus)
    written = (config / "watchlist.yaml").read_text(encoding="utf-8")
    assert "id: lavrov  # proposed by seeding on" in written
    assert "lavrov" in load_ledger(ledger_path(config / "watchlist.yaml"))
    assert "already up to date" in _run(config, small_corpus)
    assert (config / "watchlist.yaml").read_text(encoding="utf-8") == written


def test_cli_respects_removal_and_restore(tmp_path: Path, small_corpus: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    _run(config, small_corpus)
    path = config / "watchlist.yaml"
    document = yamlio.load(path)
    document["actors"] = [e for e in document["actors"] if e["id"] != "blinken"]
    yamlio.save(path, document)

    _run(config, small_corpus)
    assert "id: blinken" not in path.read_text(encoding="utf-8")
    _run(config, small_corpus, "--restore", "blinken")
    assert "id: blinken" in path.read_text(encoding="utf-8")


def test_cli_names_a_bad_corpus(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        _cli(), ["watchlist", "seed", str(tmp_path / "none"), "--config-dir", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "corpus directory not found" in result.output


def test_seeding_the_curated_watchlist_keeps_it_valid(tmp_path: Path, small_corpus: Path) -> None:
    curated = REPO / "config" / "watchlist.yaml"
    if not curated.exists():
        pytest.skip("config/watchlist.yaml not written yet")
    config = tmp_path / "config"
    config.mkdir()
    shutil.copy(curated, config / "watchlist.yaml")
    before = curated.read_text(encoding="utf-8")
    _run(config, small_corpus)
    after = (config / "watchlist.yaml").read_text(encoding="utf-8")
    comments = [line.strip() for line in before.splitlines() if line.strip().startswith("#")]
    assert all(c in after for c in comments)
    parse_watchlist(yamlio.load(config / "watchlist.yaml"), source="seeded copy")
