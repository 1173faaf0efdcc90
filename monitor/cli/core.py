"""Commands that run the monitor: poll, run, status, config check, db upgrade, health."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import func, select

from monitor.cli.common import (
    ConfigDirOption,
    FormatOption,
    console,
    err_console,
    fail,
    load_config_or_exit,
    load_runtime,
    print_json,
    print_problems,
    utcnow,
)
from monitor.collector import release_free_memory, tune_for_polling
from monitor.errors import LockedError, StorageError
from monitor.store import feeds as feed_rows
from monitor.store import items as item_rows
from monitor.store.lock import instance_lock
from monitor.store.migrate import current_revision, upgrade
from monitor.store.schema import digests, items, matches

if TYPE_CHECKING:  # the pipeline and the alerts load with the commands that poll
    from monitor.pipeline import CycleReport, FeedOutcome
    from monitor.service import Monitor


def poll(
    ctx: typer.Context,
    feed: Annotated[
        list[str] | None,
        typer.Option("--feed", help="Poll only this feed (URL or name); repeatable."),
    ] = None,
    due: Annotated[
        bool, typer.Option("--due", help="Poll only feeds whose next poll time has come.")
    ] = False,
    config_dir: ConfigDirOption = None,
) -> None:
    """Run one poll cycle now over all enabled feeds (or --feed), with a progress bar."""
    from monitor.service import Monitor

    tune_for_polling()
    runtime = load_runtime(ctx, config_dir)
    monitor = Monitor(runtime.config, runtime.storage, utcnow)
    try:
        with instance_lock(runtime.engine):
            report = _poll_with_progress(monitor, feed, due)
    except LockedError as e:
        fail(str(e), 3)
    finally:
        monitor.close()
    _print_failures(report)
    console.print(report.line())


def _poll_with_progress(monitor: Monitor, urls: list[str] | None, due: bool) -> CycleReport:
    progress = Progress(
        TextColumn("polling"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[last]}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )
    with progress:
        task = progress.add_task("poll", total=None, last="")

        def started(total: int) -> None:
            progress.update(task, total=total)

        def advanced(outcome: FeedOutcome) -> None:
            progress.update(task, advance=1, last=outcome.url[-50:])

        return monitor.poll(urls, due_only=due, on_start=started, on_feed=advanced)


def _print_failures(report: CycleReport) -> None:
    for outcome in report.outcomes:
        if outcome.status == "failed":
            err_console.print(
                f"[yellow]failed[/] {outcome.url}: {outcome.error}", soft_wrap=True, markup=True
            )


def run(ctx: typer.Context, config_dir: ConfigDirOption = None) -> None:
    """Poll on a schedule until stopped (SIGINT/SIGTERM); deliver digests on their schedules."""
    from monitor.scheduler import run_forever
    from monitor.service import Monitor

    tune_for_polling()
    runtime = load_runtime(ctx, config_dir)
    monitor = Monitor(runtime.config, runtime.storage, utcnow)
    settings = runtime.config.settings
    console.print(
        f"monitor: {len(runtime.config.feeds)} feeds configured, database "
        f"{runtime.engine.url.render_as_string()}, tick {settings.schedule.tick:.0f} s; "
        "Ctrl-C to stop"
    )

    def report_cycle(report: CycleReport) -> None:
        if not report.outcomes:
            return  # a tick with nothing due
        release_free_memory()
        stamp = report.finished_at.strftime("%H:%M:%S")
        console.print(f"[dim]{stamp}[/] {report.line()}")

    try:
        with instance_lock(runtime.engine):
            run_forever(monitor, report_cycle)
    except LockedError as e:
        fail(str(e), 3)
    finally:
        monitor.close()
    console.print("monitor stopped")


def status(
    ctx: typer.Context,
    output: FormatOption = "table",
    config_dir: ConfigDirOption = None,
) -> None:
    """Counts of feeds (ok / failing), items, matches, digests, and the last cycle."""
    runtime = load_runtime(ctx, config_dir, migrate=False)
    with runtime.engine.connect() as conn:
        statuses = feed_rows.feed_statuses(conn)
        digest_counts: dict[str, int] = dict(
            conn.execute(select(digests.c.status, func.count()).group_by(digests.c.status)).all()
        )
        data: dict[str, Any] = {
            "feeds": {
                "total": len(statuses),
                "enabled": sum(s.enabled for s in statuses),
                "ok": sum(1 for s in statuses if s.enabled and s.error_count == 0),
                "failing": sum(1 for s in statuses if s.enabled and s.error_count > 0),
            },
            "items": item_rows.count_rows(conn, items),
            "matches": item_rows.count_rows(conn, matches),
            "digests": {
                "pending": digest_counts.get("pending", 0) + digest_counts.get("failed", 0),
                "sent": digest_counts.get("sent", 0),
                "failed": digest_counts.get("failed", 0),
            },
            "last_cycle": _cycle_json(item_rows.last_cycle(conn, polled_only=True)),
            "schema_revision": current_revision(conn),
        }
    if output == "json":
        print_json(data)
        return
    f = data["feeds"]
    console.print(f"feeds    {f['enabled']} enabled: {f['ok']} ok, {f['failing']} failing")
    console.print(f"items    {data['items']}")
    console.print(f"matches  {data['matches']}")
    d = data["digests"]
    console.print(f"digests  {d['sent']} sent, {d['pending']} pending ({d['failed']} failed)")
    cycle = data["last_cycle"]
    if cycle:
        console.print(
            f"last cycle finished {cycle['finished_at']}: {cycle['feeds_fetched']} fetched,"
            f" {cycle['feeds_not_modified']} not modified, {cycle['feeds_failed']} failed,"
            f" {cycle['new_items']} new items, {cycle['new_matches']} new matches"
        )
    else:
        console.print("no cycle has run yet: `monitor poll` or `monitor run`")


def _cycle_json(cycle: item_rows.CycleSummary | None) -> dict[str, object] | None:
    if cycle is None:
        return None
    return {
        "started_at": cycle.started_at.isoformat(),
        "finished_at": cycle.finished_at.isoformat() if cycle.finished_at else None,
        "feeds_fetched": cycle.feeds_fetched,
        "feeds_not_modified": cycle.feeds_not_modified,
        "feeds_failed": cycle.feeds_failed,
        "new_items": cycle.new_items,
        "new_matches": cycle.new_matches,
    }


def health(
    ctx: typer.Context,
    max_age: Annotated[
        str, typer.Option(help="Fail when the last cycle finished longer ago.")
    ] = "15m",
    config_dir: ConfigDirOption = None,
) -> None:
    """Exit 0 when a cycle completed within --max-age (for container health checks)."""
    from monitor.settings import parse_duration

    runtime = load_runtime(ctx, config_dir, migrate=False)
    with runtime.engine.connect() as conn:
        cycle = item_rows.last_cycle(conn)
    limit = timedelta(seconds=parse_duration(max_age))
    if cycle is None or cycle.finished_at is None:
        fail("no poll cycle has completed yet", 1)
    age = utcnow() - cycle.finished_at
    if age > limit:
        fail(f"the last cycle finished {age.total_seconds():.0f} s ago (limit {max_age})", 1)
    console.print(f"ok: last cycle finished {age.total_seconds():.0f} s ago")


config_app = typer.Typer(help="Check the configuration.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)


@config_app.command("check")
def config_check(ctx: typer.Context, config_dir: ConfigDirOption = None) -> None:
    """Validate monitor.yaml, feeds.yaml and watchlist.yaml; print every problem."""
    config = load_config_or_exit(ctx, config_dir)
    from monitor.errors import WatchlistError
    from monitor.watchlist import load_watchlist

    try:
        watchlist = load_watchlist(config.watchlist_path)
    except WatchlistError as e:
        print_problems(e)
        raise typer.Exit(2) from e
    console.print(
        f"ok: {config.directory}: {len(config.feeds)} feeds, "
        f"{len(config.settings.channels)} channels, watchlist {watchlist.version} "
        f"({len(watchlist.actors)} actors, {len(watchlist.topics)} topics)"
    )


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context, config_dir: ConfigDirOption = None) -> None:
    """Migrate the database to the latest schema (also done at every start)."""
    from monitor.store import make_engine

    config = load_config_or_exit(ctx, config_dir)
    try:
        engine = make_engine(config.settings.database.url)
        try:
            revision = upgrade(engine)
        finally:
            engine.dispose()
    except StorageError as e:
        fail(str(e), 2)
    console.print(f"database at schema revision {revision}")
