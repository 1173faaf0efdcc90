"""The `monitor watchlist` commands: list the watchlist, add an actor, add a topic term."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, cast

import typer
from rich.table import Table

from monitor import yamlio
from monitor.cli.common import (
    ConfigDirOption,
    config_dir,
    console,
    fail,
    print_json,
    print_problems,
    use_config_dir,
)
from monitor.errors import ConfigError
from monitor.watchlist import (
    ActorType,
    PhraseLang,
    Watchlist,
    add_actor,
    add_term,
    load_watchlist,
    parse_watchlist,
)

app = typer.Typer(help="Review and edit the watchlist (config/watchlist.yaml).")

PathOption = Annotated[
    Path | None,
    typer.Option("--watchlist", help="Watchlist file [default: <config-dir>/watchlist.yaml]."),
]
_TYPES = ("person", "org", "place", "country", "group")


def watchlist_path(ctx: typer.Context | None, option: Path | None) -> Path:
    return option or config_dir(ctx) / "watchlist.yaml"


@app.command("list")
def list_(
    ctx: typer.Context,
    fmt: Annotated[str, typer.Option("--format", "-f", help="text or json.")] = "text",
    watchlist: PathOption = None,
    config_dir_opt: ConfigDirOption = None,
) -> None:
    """Actors with aliases and status, topics with terms and thresholds."""
    use_config_dir(ctx, config_dir_opt)
    path = watchlist_path(ctx, watchlist)
    try:
        wl = load_watchlist(path)
    except ConfigError as e:
        print_problems(e)
        raise typer.Exit(2) from e
    if fmt == "json":
        print_json(watchlist_to_json(wl))
    elif fmt == "text":
        print_watchlist(wl)
    else:
        fail("--format: expected text or json")


def watchlist_to_json(wl: Watchlist) -> dict[str, Any]:
    return {
        "version": wl.version,
        "threshold": wl.threshold,
        "actors": [
            {
                "id": a.id,
                "name": a.name,
                "type": a.type,
                "status": a.status,
                "aliases": [p.text for p in a.aliases],
                "needs_context": a.needs_context,
                "exclude": list(a.exclude),
            }
            for a in wl.actors
        ],
        "topics": [
            {
                "id": t.id,
                "name": t.name,
                "status": t.status,
                "terms": [p.text for p in t.terms],
                "threshold": t.threshold if t.threshold is not None else wl.threshold,
                "needs_context": t.needs_context,
                "exclude": list(t.exclude),
            }
            for t in wl.topics
        ],
    }


def print_watchlist(wl: Watchlist) -> None:
    actors = Table("id", "type", "status", "aliases", title=f"Actors ({len(wl.actors)})")
    for a in wl.actors:
        flag = " (needs context)" if a.needs_context else ""
        actors.add_row(a.id + flag, a.type, a.status, ", ".join(p.text for p in a.aliases))
    console.print(actors)
    topics = Table("id", "threshold", "status", "terms", title=f"Topics ({len(wl.topics)})")
    for t in wl.topics:
        threshold = t.threshold if t.threshold is not None else wl.threshold
        topics.add_row(t.id, f"{threshold:g}", t.status, ", ".join(p.text for p in t.terms))
    console.print(topics)
    console.print(f"version {wl.version}")


@app.command("add-actor")
def add_actor_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Display name, also used as an alias.")],
    alias: Annotated[list[str] | None, typer.Option("--alias", help="Another spelling.")] = None,
    actor_type: Annotated[str, typer.Option("--type", help="person|org|place|country|group")] = (
        "person"
    ),
    actor_id: Annotated[str | None, typer.Option("--id", help="Id [default: from the name].")] = (
        None
    ),
    watchlist: PathOption = None,
    config_dir_opt: ConfigDirOption = None,
) -> None:
    """Add a curated actor; the file is validated before it is written (comments kept)."""
    use_config_dir(ctx, config_dir_opt)
    if actor_type not in _TYPES:
        fail(f"--type: expected one of {', '.join(_TYPES)}")
    path = watchlist_path(ctx, watchlist)
    new_id = edit_watchlist(
        path,
        lambda doc: add_actor(
            doc,
            name=name,
            aliases=alias or [],
            actor_type=cast(ActorType, actor_type),
            actor_id=actor_id,
        ),
    )
    console.print(f"added actor {new_id} to {path}")


@app.command("add-term")
def add_term_cmd(
    ctx: typer.Context,
    topic: Annotated[str, typer.Argument(help="Topic id.")],
    term: Annotated[str, typer.Argument(help="The word or phrase.")],
    lang: Annotated[str | None, typer.Option("--lang", help="en, ru or uk.")] = None,
    watchlist: PathOption = None,
    config_dir_opt: ConfigDirOption = None,
) -> None:
    """Add a term to a topic; the file is validated before it is written (comments kept)."""
    use_config_dir(ctx, config_dir_opt)
    if lang is not None and lang not in ("en", "ru", "uk"):
        fail("--lang: expected en, ru or uk")
    path = watchlist_path(ctx, watchlist)
    edit_watchlist(
        path, lambda doc: add_term(doc, topic_id=topic, term=term, lang=cast(PhraseLang, lang))
    )
    console.print(f"added term {term!r} to topic {topic} in {path}")


def edit_watchlist(path: Path, change: Any) -> Any:
    """Load round-trip, apply `change`, validate the result, then write it atomically."""
    try:
        document = yamlio.load(path)
        outcome = change(document)
        parse_watchlist(yamlio.loads(yamlio.dumps(document)), source=str(path), path=path)
    except ConfigError as e:
        print_problems(e)
        raise typer.Exit(2) from e
    yamlio.save(path, document)
    return outcome
