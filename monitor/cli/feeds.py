"""`monitor feeds …`: list, add, remove, import/export OPML, status (edits config/feeds.yaml)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from monitor import yamlio
from monitor.cli.common import (
    ConfigDirOption,
    FormatOption,
    config_dir,
    console,
    fail,
    load_config_or_exit,
    load_runtime,
    print_json,
    utcnow,
)
from monitor.errors import ConfigError
from monitor.opml import OpmlFeed, read_opml, write_opml
from monitor.settings import load_config
from monitor.store import feeds as feed_rows

app = typer.Typer(help="Manage the feeds in config/feeds.yaml.", no_args_is_help=True)


def _feeds_document(directory: Path) -> tuple[Path, Any]:
    path = directory / "feeds.yaml"
    document = yamlio.load(path) if path.exists() else None
    if document is None:
        document = CommentedMap()
    if "feeds" not in document or document["feeds"] is None:
        document["feeds"] = CommentedSeq()
    return path, document


def _save_checked(ctx: typer.Context, directory: Path, path: Path, document: Any) -> None:
    """Write feeds.yaml only if the result validates, then sync the database."""
    original = path.read_bytes() if path.exists() else None
    yamlio.save(path, document)
    try:
        config = load_config(directory)
    except ConfigError as e:
        if original is None:
            path.unlink()
        else:
            yamlio.write_atomic(path, original)
        fail("; ".join(e.problems), 2)
    runtime = load_runtime(ctx, directory)
    report = runtime.storage.sync_feeds(config.feeds, utcnow())
    console.print(
        f"feeds.yaml saved: {len(config.feeds)} feeds ({report.added} added, "
        f"{report.updated} updated, {report.disabled} disabled in the database)"
    )


@app.command("list")
def list_feeds(
    ctx: typer.Context, output: FormatOption = "table", config_dir_opt: ConfigDirOption = None
) -> None:
    """The configured feeds."""
    config = load_config_or_exit(ctx, config_dir_opt)
    if output == "json":
        print_json(
            [
                {
                    "url": f.url,
                    "name": f.name,
                    "interval_s": f.interval_s,
                    "enabled": f.enabled,
                    "tags": list(f.tags),
                    "lang": f.lang,
                }
                for f in config.feeds
            ]
        )
        return
    table = Table("name", "url", "every", "lang", "tags", "on")
    for f in config.feeds:
        every = f"{(f.interval_s or 0) // 60}m"
        table.add_row(
            f.name or "", f.url, every, f.lang or "", ",".join(f.tags), "yes" if f.enabled else "no"
        )
    console.print(table)


@app.command("add")
def add_feed(
    ctx: typer.Context,
    url: str,
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    interval: Annotated[str | None, typer.Option(help="e.g. 10m, 1h.")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Repeatable.")] = None,
    lang: Annotated[str | None, typer.Option(help="en, ru, uk or other.")] = None,
    config_dir_opt: ConfigDirOption = None,
) -> None:
    """Add a feed to feeds.yaml (comments kept)."""
    directory = config_dir(ctx, config_dir_opt)
    path, document = _feeds_document(directory)
    if any(str(f.get("url")) == url for f in document["feeds"]):
        fail(f"{url} is already in {path}")
    entry = CommentedMap(url=url)
    for key, value in (("name", name), ("interval", interval), ("lang", lang)):
        if value:
            entry[key] = value
    if tag:
        entry["tags"] = tag
    document["feeds"].append(entry)
    _save_checked(ctx, directory, path, document)


@app.command("remove")
def remove_feed(ctx: typer.Context, url: str, config_dir_opt: ConfigDirOption = None) -> None:
    """Remove a feed from feeds.yaml (its stored items stay; it is no longer polled)."""
    directory = config_dir(ctx, config_dir_opt)
    path, document = _feeds_document(directory)
    kept = [f for f in document["feeds"] if str(f.get("url")) != url and f.get("name") != url]
    if len(kept) == len(document["feeds"]):
        fail(f"{url} is not in {path}")
    for index in reversed(range(len(document["feeds"]))):
        if document["feeds"][index] not in kept:
            del document["feeds"][index]
    _save_checked(ctx, directory, path, document)


@app.command("import-opml")
def import_opml(
    ctx: typer.Context,
    file: Path,
    replace: Annotated[bool, typer.Option(help="Make the OPML list the whole set.")] = False,
    config_dir_opt: ConfigDirOption = None,
) -> None:
    """Add the feeds of an OPML file (xmlUrl attributes) to feeds.yaml."""
    try:
        found = read_opml(file.read_bytes(), source=str(file))
    except OSError as e:
        fail(f"{file}: {e.strerror}")
    except ConfigError as e:
        fail(str(e), 2)
    directory = config_dir(ctx, config_dir_opt)
    path, document = _feeds_document(directory)
    if replace:
        document["feeds"] = CommentedSeq()
    existing = {str(f.get("url")) for f in document["feeds"]}
    added = 0
    for feed in found:
        if feed.url in existing:
            continue
        entry = CommentedMap(url=feed.url)
        if feed.name:
            entry["name"] = feed.name
        if feed.tags:
            entry["tags"] = list(feed.tags)
        document["feeds"].append(entry)
        added += 1
    console.print(f"{file}: {len(found)} feeds, {added} new")
    _save_checked(ctx, directory, path, document)


@app.command("export-opml")
def export_opml(ctx: typer.Context, config_dir_opt: ConfigDirOption = None) -> None:
    """Print the configured feeds as OPML 2.0."""
    config = load_config_or_exit(ctx, config_dir_opt)
    feeds = [OpmlFeed(f.url, f.name, f.tags) for f in config.feeds]
    typer.echo(write_opml(feeds, "News monitor feeds"), nl=False)


@app.command("status")
def feeds_status(
    ctx: typer.Context, output: FormatOption = "table", config_dir_opt: ConfigDirOption = None
) -> None:
    """Per feed: last success, error count, last error, next fetch, items stored."""
    runtime = load_runtime(ctx, config_dir_opt, migrate=False)
    with runtime.engine.connect() as conn:
        statuses = feed_rows.feed_statuses(conn)
    if output == "json":
        print_json([{k: getattr(s, k) for k in s.__slots__} for s in statuses])
        return
    table = Table("feed", "items", "last success", "errors", "next fetch", "last error")
    for s in statuses:
        if not s.enabled:
            continue
        style = "red" if s.error_count else None
        table.add_row(
            s.name or s.title or s.url,
            str(s.item_count),
            _when(s.last_success_at),
            str(s.error_count),
            _when(s.next_fetch_at),
            (s.last_error or "")[:60],
            style=style,
        )
    console.print(table)


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "never"
