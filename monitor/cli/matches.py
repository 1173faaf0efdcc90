"""`monitor matches` (stored matches as table, JSON or CSV) and `monitor rematch`."""

from __future__ import annotations

import csv
import sys
from collections import Counter
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy import Connection

from monitor.cli.common import (
    ConfigDirOption,
    console,
    fail,
    load_runtime,
    print_json,
    since_option,
    utcnow,
)
from monitor.errors import WatchlistError
from monitor.match import match_record
from monitor.rematch import RematchChange, plan
from monitor.store import items as item_rows
from monitor.store import match_row
from monitor.store import matches as match_rows
from monitor.store import stories as story_rows
from monitor.store.lock import instance_lock


def matches(
    ctx: typer.Context,
    since: Annotated[str | None, typer.Option(help="e.g. 2d, 12h, or an ISO date.")] = None,
    topic: Annotated[str | None, typer.Option(help="Only this topic id.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 200,
    output: Annotated[str, typer.Option("--format", "-f", help="table, json or csv.")] = "table",
    config_dir: ConfigDirOption = None,
) -> None:
    """Stored matches, newest first."""
    if output not in ("table", "json", "csv"):
        fail("--format: expected table, json or csv")
    runtime = load_runtime(ctx, config_dir, migrate=False)
    with runtime.engine.connect() as conn:
        found = match_rows.list_matches(conn, since_option(since, utcnow()), topic, limit)
    if output == "json":
        print_json([m.as_json() for m in found])
    elif output == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(
            ["first_seen", "published", "score", "topics", "actors", "feed", "title", "link"]
        )
        for m in found:
            writer.writerow(
                [
                    m.first_seen.isoformat(),
                    m.published.isoformat() if m.published else "",
                    f"{m.score:.2f}",
                    " ".join(m.topics),
                    " ".join(m.actors),
                    m.feed,
                    m.title,
                    m.link or "",
                ]
            )
    else:
        table = Table("seen", "score", "topics", "title", "feed")
        for m in found:
            table.add_row(
                m.first_seen.strftime("%m-%d %H:%M"),
                f"{m.score:.1f}",
                ", ".join(m.topics),
                m.title[:80],
                m.feed[:30],
            )
        console.print(table)
        console.print(f"{len(found)} matches")


def rematch(
    ctx: typer.Context,
    since: Annotated[str, typer.Option(help="Items first seen within, e.g. 7d.")] = "7d",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show, change nothing.")] = False,
    config_dir: ConfigDirOption = None,
) -> None:
    """Apply the current watchlist to stored items (new matches join the next digest).

    Matches already delivered are never re-sent, and are kept even if they no longer match."""
    from monitor.service import Monitor

    runtime = load_runtime(ctx, config_dir)
    monitor = Monitor(runtime.config, runtime.storage, utcnow)
    try:
        matcher = monitor.matchers.reload(runtime.config.watchlist_path)
    except WatchlistError as e:
        fail(str(e), 2)
    now = utcnow()
    planned: list[tuple[RematchChange, dict[str, Any]]] = []
    with runtime.engine.connect() as conn:
        for stored in match_rows.items_since(conn, since_option(since, now)):
            result = matcher.match(stored.item)
            change = plan(
                stored.id,
                stored.item.title,
                stored.match_id,
                stored.topics,
                stored.delivered,
                result,
            )
            if change is not None:
                planned.append((change, match_row(stored.id, match_record(result), now)))
    _print_changes([c for c, _ in planned], dry_run)
    if dry_run or not planned:
        return
    with instance_lock(runtime.engine), runtime.engine.begin() as conn:
        _apply(conn, planned)
    console.print("applied; new matches join the next digest")


def _apply(conn: Connection, planned: list[tuple[RematchChange, dict[str, Any]]]) -> None:
    item_rows.insert_matches(conn, [row for c, row in planned if c.kind == "added"])
    # An item placed alone before it matched gets its story written, as a matched item has.
    story_rows.write_matched_stories(conn, [c.item_id for c, _ in planned if c.kind == "added"])
    for change, row in planned:
        if change.kind == "changed" and change.match_id is not None:
            match_rows.replace_match(conn, change.match_id, row)
    removed = [c.match_id for c, _ in planned if c.kind == "removed" and c.match_id is not None]
    match_rows.delete_undelivered(conn, removed)


def _print_changes(changes: list[RematchChange], dry_run: bool) -> None:
    counts = Counter(c.kind for c in changes)
    table = Table("change", "topics before", "topics after", "score", "title")
    for c in changes[:100]:
        table.add_row(
            c.kind, ", ".join(c.before), ", ".join(c.after), f"{c.score:.1f}", c.title[:70]
        )
    if changes:
        console.print(table)
    verb = "would change" if dry_run else "changes"
    console.print(
        f"rematch {verb}: {counts['added']} added, {counts['changed']} changed, "
        f"{counts['removed']} removed, {counts['kept_delivered']} kept (already delivered)"
    )
