"""`monitor stories` (list, show) and `monitor eval-stories`: thin commands over the story store."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from monitor.cli.common import (
    ConfigDirOption,
    console,
    fail,
    load_config_or_exit,
    load_runtime,
    print_json,
    since_option,
    use_config_dir,
    utcnow,
)
from monitor.errors import ConfigError
from monitor.evaluate_stories import format_report, run, sweep
from monitor.store.stories import StoryView, get_story, list_stories
from monitor.stories import StoryRules

app = typer.Typer(
    help="Stories: the same event across feeds, with who reported it and who first.",
    invoke_without_command=True,
    no_args_is_help=False,
)

SinceOption = Annotated[
    str, typer.Option("--since", help="Stories with coverage in this period (2d, 12h, ISO date).")
]
FormatOption = Annotated[str, typer.Option("--format", "-f", help="table or json.")]


def story_json(story: StoryView) -> dict[str, Any]:
    """A story as `--format json` prints it."""
    return {
        "id": story.id,
        "title": story.title,
        "first_seen": story.first_seen_at.isoformat(),
        "last_seen": story.last_seen_at.isoformat(),
        "item_count": story.item_count,
        "sources": list(story.sources),
        "actors": list(story.actors),
        "topics": list(story.topics),
        "terms": list(story.terms),
        "items": [
            {
                "id": m.item_id,
                "link": m.link,
                "title": m.title,
                "feed": m.feed,
                "appeared_at": m.appeared_at.isoformat(),
                "first_seen_at": m.first_seen_at.isoformat(),
                "duplicate_of": m.duplicate_of,
            }
            for m in story.members
        ],
    }


def _check_format(output: str) -> None:
    if output not in ("table", "json"):
        fail(f"--format: expected table or json, got {output!r}")


@app.callback()
def stories(
    ctx: typer.Context,
    since: SinceOption = "2d",
    output: FormatOption = "table",
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many.")] = 50,
    config_dir_opt: ConfigDirOption = None,
) -> None:
    """List stories with their sources, most recently updated first: those with a match
    or more than one item (an item alone without a match has no story written)."""
    if ctx.invoked_subcommand is not None:
        return
    _check_format(output)
    now = utcnow()
    start = since_option(since, now) or now - timedelta(days=2)
    runtime = load_runtime(ctx, config_dir_opt)
    with runtime.engine.connect() as conn:
        found = list_stories(conn, start, limit)
    if output == "json":
        print_json([story_json(s) for s in found])
        return
    table = Table("id", "first seen", "last seen", "items", "title", "sources")
    for s in found:
        table.add_row(
            str(s.id),
            f"{s.first_seen_at:%Y-%m-%d %H:%M}",
            f"{s.last_seen_at:%Y-%m-%d %H:%M}",
            str(s.item_count),
            s.title,
            ", ".join(s.sources),
        )
    console.print(table)
    if not found:
        console.print(f"no stories since {start:%Y-%m-%d %H:%M} UTC")


@app.command("show")
def show(
    ctx: typer.Context,
    story_id: Annotated[int, typer.Argument(help="Story id, as listed.")],
    output: FormatOption = "table",
    config_dir_opt: ConfigDirOption = None,
) -> None:
    """One story: each item with its feed, link and when it appeared, first reporter first."""
    _check_format(output)
    runtime = load_runtime(ctx, config_dir_opt)
    with runtime.engine.connect() as conn:
        story = get_story(conn, story_id)
    if story is None:
        fail(f"no story with id {story_id}")
    if output == "json":
        print_json(story_json(story))
        return
    console.print(
        f"[bold]{story.title}[/]  (story {story.id}, {story.item_count} items)", soft_wrap=True
    )
    console.print(
        f"first seen {story.first_seen_at:%Y-%m-%d %H:%M} UTC, "
        f"last {story.last_seen_at:%Y-%m-%d %H:%M} UTC"
    )
    if story.actors or story.topics:
        console.print(
            f"actors: {', '.join(story.actors) or '-'}; topics: {', '.join(story.topics) or '-'}"
        )
    table = Table("appeared", "feed", "title", "link")
    for m in story.members:
        mark = " (copy)" if m.duplicate_of is not None else ""
        table.add_row(f"{m.appeared_at:%Y-%m-%d %H:%M}", m.feed, m.title + mark, m.link or "")
    console.print(table)


def eval_stories(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="Labelled set: items.jsonl or its directory.")],
    threshold: Annotated[
        float | None, typer.Option(help="Similarity at zero time apart [default: settings].")
    ] = None,
    slope: Annotated[
        float | None, typer.Option(help="Extra similarity per hour apart [default: settings].")
    ] = None,
    table: Annotated[
        bool, typer.Option("--sweep", help="Print precision/recall over a grid instead.")
    ] = False,
    config_dir_opt: ConfigDirOption = None,
) -> None:
    """Cluster a labelled set and print pairwise precision, recall, F1 and the mistakes."""
    use_config_dir(ctx, config_dir_opt)
    defaults = StoryRules.from_settings(load_config_or_exit(ctx).settings.stories)
    rules = StoryRules(
        defaults.window,
        defaults.threshold if threshold is None else threshold,
        defaults.slope_per_hour if slope is None else slope,
    )
    try:
        if table:
            _print_sweep(path, rules)
        else:
            console.print(format_report(run(path, rules)), markup=False, soft_wrap=True)
    except ConfigError as e:
        fail(str(e))


def _print_sweep(path: Path, rules: StoryRules) -> None:
    thresholds = (0.04, 0.06, 0.08, 0.10, 0.12, 0.15, 0.20)
    slopes = (0.0, 0.002, 0.004, 0.006)
    console.print(
        "| slope/h | " + " | ".join(f"T={t:.2f} P/R" for t in thresholds) + " |",
        markup=False,
        soft_wrap=True,
    )
    console.print("|---" * (len(thresholds) + 1) + "|", markup=False)
    results = sweep(path, rules, thresholds, slopes)
    for slope in slopes:
        cells = [f"{e.precision:.2f}/{e.recall:.2f}" for t, s, e in results if s == slope]
        console.print(f"| {slope:.3f} | " + " | ".join(cells) + " |", markup=False, soft_wrap=True)
