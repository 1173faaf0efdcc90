"""The `monitor` command line: a thin layer over the service, storage and alerts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from monitor.cli import core, digest, doctor, feeds, match, matches, seed, stories, watchlist
from monitor.errors import MonitorError

app = typer.Typer(
    name="monitor",
    help="Watch news feeds for a story's actors and topics, and deliver digest alerts.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def root(
    ctx: typer.Context,
    config_dir: Annotated[
        Path | None,
        typer.Option(
            "--config-dir",
            envvar="MONITOR_CONFIG_DIR",
            help="Configuration directory (default: ./config).",
        ),
    ] = None,
) -> None:
    ctx.obj = {"config_dir": config_dir}


app.command()(core.poll)
app.command()(core.run)
app.command()(core.status)
app.command()(core.health)
app.command()(matches.matches)
app.command()(matches.rematch)
app.command()(doctor.doctor)
app.command()(match.match)
app.command("eval")(match.eval_)
app.command("eval-stories")(stories.eval_stories)
app.add_typer(core.config_app, name="config")
app.add_typer(core.db_app, name="db")
app.add_typer(feeds.app, name="feeds")
app.add_typer(watchlist.app, name="watchlist")
watchlist.app.command("seed")(seed.seed)
app.add_typer(digest.app, name="digest")
app.add_typer(stories.app, name="stories")


def main() -> None:
    """Console entry point; a MonitorError becomes a one-line message and an exit code."""
    from monitor.cli.common import handle_monitor_error

    try:
        app()
    except MonitorError as e:
        handle_monitor_error(e)
