"""`monitor doctor`: run the set-up checks and print them as a table with a fix per failure."""

from __future__ import annotations

import os
from collections.abc import Sequence

import typer
from rich.table import Table
from rich.text import Text

from monitor.cli.common import (
    ConfigDirOption,
    FormatOption,
    config_dir,
    console,
    print_json,
    utcnow,
)
from monitor.doctor import Check, run_checks


def doctor(
    ctx: typer.Context,
    output: FormatOption = "table",
    config_dir_option: ConfigDirOption = None,
) -> None:
    """Check config, database, spaCy model, corpus, mail server, digest folders and feeds.

    Exits 1 when any check fails; each failure comes with a one-line fix.
    """
    checks = run_checks(config_dir(ctx, config_dir_option), os.environ, utcnow())
    if output == "json":
        print_json([{"name": c.name, "ok": c.ok, "detail": c.detail, "fix": c.fix} for c in checks])
    else:
        console.print(checks_table(checks))
        console.print(summary_line(checks))
    if not all(c.ok for c in checks):
        raise typer.Exit(1)


def checks_table(checks: Sequence[Check]) -> Table:
    """One row per check: ✓ or ✗, its name, what was found and, when failed, the fix."""
    table = Table(show_header=True, header_style="bold")
    table.add_column("", width=1, no_wrap=True)
    table.add_column("check", no_wrap=True)
    table.add_column("detail", overflow="fold")
    for check in checks:
        mark = Text("✓", style="green") if check.ok else Text("✗", style="bold red")
        detail = Text(check.detail)
        if check.fix:
            detail.append("\nfix: ", style="bold yellow").append(check.fix, style="yellow")
        table.add_row(mark, check.name, detail)
    return table


def summary_line(checks: Sequence[Check]) -> str:
    bad = sum(1 for c in checks if not c.ok)
    if bad == 0:
        return f"[green]all {len(checks)} checks passed[/]"
    return f"[red]{bad} of {len(checks)} checks failed[/]"
