"""The `monitor` command line: a thin layer over the service, storage and alerts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from monitor.cli import core, feeds
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
        typer.Option("--config-dir", envvar="MONITOR_CONFIG_DIR",
                     help="Configuration directory [default: ./config]."),
    ] = None,
) -> None:
    ctx.obj = {"config_dir": config_dir}


app.command()(core.poll)
app.command()(core.run)
app.command()(core.status)
app.command()(core.health)
app.add_typer(core.config_app, name="config")
app.add_typer(core.db_app, name="db")
app.add_typer(feeds.app, name="feeds")


def main() -> None:
    """Console entry point; a MonitorError becomes a one-line message and an exit code."""
    from monitor.cli.common import handle_monitor_error

    try:
        app()
    except MonitorError as e:
        handle_monitor_error(e)
