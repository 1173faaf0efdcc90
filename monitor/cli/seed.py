"""`monitor watchlist seed`: propose actors and topics from the corpus and merge them in."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from monitor import yamlio
from monitor.cli.common import ConfigDirOption, config_dir, console, err_console, fail
from monitor.errors import ConfigError
from monitor.settings import MonitorSettings, load_settings
from monitor.watchlist import parse_watchlist

if TYPE_CHECKING:  # spaCy and the seeding code load when `seed` runs, not with every command
    from monitor.seed import MergeReport, Proposal

app = typer.Typer(help="Build and review the watchlist (config/watchlist.yaml).")

_STYLES = {"added": "green", "updated": "cyan", "unchanged": "dim", "skipped": "yellow"}


def seed(
    ctx: typer.Context,
    corpus: Annotated[
        Path | None,
        typer.Argument(help="Directory of seed .txt files [default: matching.corpus]."),
    ] = None,
    config_dir_option: ConfigDirOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would change; write nothing.")
    ] = False,
    restore: Annotated[
        list[str] | None,
        typer.Option("--restore", help="Bring back an id you had removed (repeatable)."),
    ] = None,
    min_mentions: Annotated[
        int, typer.Option("--min-mentions", min=1, help="Mentions a candidate needs.")
    ] = 2,
) -> None:
    """Propose actors and topics from the corpus and merge them into the watchlist."""
    from monitor.nlp import load_pipeline
    from monitor.seed import (
        ledger_path,
        load_ledger,
        load_watchlist_document,
        merge,
        propose,
        read_corpus,
    )

    directory = config_dir(ctx, config_dir_option)
    settings = _settings(directory)
    watchlist_path = directory / settings.matching.watchlist
    try:
        docs = read_corpus(corpus or Path(settings.matching.corpus))
        nlp, warning = load_pipeline(settings.matching.spacy_model)
        if warning:
            err_console.print(f"[yellow]warning:[/] {warning}", soft_wrap=True)
        proposal = propose(docs, nlp, min_mentions=min_mentions)
        document = load_watchlist_document(watchlist_path)
        ledger = load_ledger(ledger_path(watchlist_path))
    except ConfigError as e:
        fail(str(e), 2)
    report = merge(
        document, proposal, restore=set(restore or ()), ledger=ledger, today=date.today()
    )
    try:
        parse_watchlist(document, source=str(watchlist_path))
    except ConfigError as e:
        fail(f"the merged watchlist would be invalid, nothing written: {'; '.join(e.problems)}", 2)
    console.print(report_table(report, proposal))
    for unknown in report.unknown_restores:
        err_console.print(f"[yellow]warning:[/] --restore {unknown}: not proposed by this corpus")
    _write(watchlist_path, document, report, ledger, dry_run)


def _settings(directory: Path) -> MonitorSettings:
    try:
        return load_settings(directory / "monitor.yaml", os.environ)
    except ConfigError as e:
        fail(str(e), 2)


def _write(
    path: Path, document: object, report: MergeReport, ledger: frozenset[str], dry_run: bool
) -> None:
    from monitor.seed import ledger_path, save_ledger

    summary = (
        f"{report.count('added')} added, {report.count('updated')} updated, "
        f"{report.count('unchanged')} unchanged, {report.count('skipped')} skipped"
    )
    if dry_run:
        console.print(f"dry run: {summary}; nothing written")
        return
    if report.changed or not path.exists():
        yamlio.save(path, document)
    if report.ledger != ledger:
        save_ledger(ledger_path(path), report.ledger)
    written = "written" if report.changed else "already up to date"
    console.print(f"{path}: {summary}; {written}")


def report_table(report: MergeReport, proposal: Proposal) -> Table:
    """One row per candidate: what merging did with it, and why."""
    evidence = {("actor", a.id): (a.mentions, len(a.documents)) for a in proposal.actors}
    evidence |= {("topic", t.id): (t.mentions, len(t.documents)) for t in proposal.topics}
    table = Table(title="Watchlist seeding")
    for column in ("kind", "id", "action", "into", "mentions", "docs", "reason"):
        table.add_column(column, justify="right" if column in ("mentions", "docs") else "left")
    for action in report.actions:
        mentions, documents = evidence.get((action.kind, action.id), (0, 0))
        style = _STYLES[action.action]
        table.add_row(
            action.kind,
            action.id,
            f"[{style}]{action.action}[/]",
            action.into or "",
            str(mentions),
            str(documents),
            action.reason,
        )
    return table


app.command("seed")(seed)
