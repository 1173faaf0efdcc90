"""`monitor digest …`: preview, send, list and re-send digests (thin layer over alerts.service)."""

from __future__ import annotations

import os
import tempfile
import webbrowser
from pathlib import Path
from typing import Annotated, Any, cast

import typer
from rich.table import Table

from alerts.render import Format
from alerts.service import DeliveryReport, deliver, preview, resend
from monitor.cli.common import (
    ConfigDirOption,
    console,
    fail,
    load_runtime,
    print_json,
    use_config_dir,
    utcnow,
)
from monitor.errors import MonitorError
from monitor.settings import Config
from monitor.store import digests as rows

app = typer.Typer(help="Preview, send, list and re-send digests.", no_args_is_help=True)

ChannelOption = Annotated[
    str | None, typer.Option("--channel", "-c", help="Channel name (default: all enabled).")
]
FORMATS = ("md", "html", "text", "json")


def _templates(config: Config) -> Path | None:
    """Override templates, relative to the config directory when not absolute."""
    configured = config.settings.digest.templates
    if not configured:
        return None
    path = Path(configured)
    return path if path.is_absolute() else config.directory / path


@app.command("preview")
def preview_command(
    ctx: typer.Context,
    channel: Annotated[
        str | None, typer.Option("--channel", "-c", help="Channel (default: first enabled).")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="md, html, text or json.")] = "md",
    open_: Annotated[
        bool, typer.Option("--open", help="Write the HTML to a temp file and open a browser.")
    ] = False,
    config_dir_opt: ConfigDirOption = None,
) -> None:
    """Render the digest a channel would get now; nothing is recorded or marked."""
    use_config_dir(ctx, config_dir_opt)
    if fmt not in FORMATS:
        fail(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    rt = load_runtime(ctx)
    try:
        kind = cast(Format, "html" if open_ else fmt)
        text = preview(
            rt.engine,
            rt.config.settings,
            now=utcnow(),
            channel=channel,
            fmt=kind,
            templates=_templates(rt.config),
        )
    except MonitorError as e:
        fail(str(e), 2)
    if open_:
        fd, name = tempfile.mkstemp(prefix="digest-preview-", suffix=".html")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        console.print(f"preview written to {name}")
        webbrowser.open(Path(name).as_uri())
        return
    console.out(text, end="", highlight=False)


def _print_reports(reports: list[DeliveryReport]) -> None:
    if not reports:
        console.print("no enabled channel")
    for report in reports:
        style = {"sent": "green", "failed": "red"}.get(report.status, "")
        console.print(
            f"[{style}]{report}[/]" if style else str(report), markup=bool(style), soft_wrap=True
        )
    if any(r.status == "failed" for r in reports):
        raise typer.Exit(1)


@app.command("send")
def send_command(
    ctx: typer.Context,
    channel: ChannelOption = None,
    config_dir_opt: ConfigDirOption = None,
) -> None:
    """Deliver now: due re-sends first, then a new digest of undelivered matches."""
    use_config_dir(ctx, config_dir_opt)
    rt = load_runtime(ctx)
    try:
        reports = deliver(
            rt.engine,
            rt.config.settings,
            now=utcnow(),
            trigger="manual",
            channel=channel,
            env=os.environ,
            templates=_templates(rt.config),
        )
    except MonitorError as e:
        fail(str(e), 2)
    _print_reports(reports)


def _row(record: rows.DigestRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "channel": record.channel,
        "status": record.status,
        "created_at": record.created_at.isoformat(),
        "entries": record.entry_count,
        "attempts": record.attempts,
        "next_attempt_at": record.next_attempt_at.isoformat() if record.next_attempt_at else None,
        "sent_at": record.sent_at.isoformat() if record.sent_at else None,
        "message_id": record.message_id,
        "last_error": record.last_error,
    }


@app.command("list")
def list_command(
    ctx: typer.Context,
    channel: ChannelOption = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="Digests shown.")] = 30,
    all_: Annotated[bool, typer.Option("--all", help="Include skipped digests.")] = False,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table or json.")] = "table",
    config_dir_opt: ConfigDirOption = None,
) -> None:
    """Digest history, newest first: status, attempts and last error."""
    use_config_dir(ctx, config_dir_opt)
    rt = load_runtime(ctx)
    with rt.engine.connect() as conn:
        records = rows.list_digests(conn, channel=channel, limit=limit, skipped=all_)
    if fmt == "json":
        print_json([_row(r) for r in records])
        return
    if fmt != "table":
        fail(f"--format: expected table or json, got {fmt!r}")
    table = Table(
        "id",
        "channel",
        "status",
        "created",
        "entries",
        "attempts",
        "next try",
        "last error",
        title="Digests",
    )
    colours = {"sent": "green", "failed": "red", "pending": "yellow"}
    for r in records:
        table.add_row(
            str(r.id),
            r.channel,
            f"[{colours.get(r.status, 'dim')}]{r.status}[/]",
            f"{r.created_at:%Y-%m-%d %H:%M}",
            str(r.entry_count),
            str(r.attempts),
            f"{r.next_attempt_at:%Y-%m-%d %H:%M}" if r.next_attempt_at else "",
            _escape(r.last_error or ""),
        )
    console.print(table)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


@app.command("resend")
def resend_command(
    ctx: typer.Context,
    digest_id: Annotated[int, typer.Argument(help="Digest id (see `digest list`).")],
    config_dir_opt: ConfigDirOption = None,
) -> None:
    """Re-deliver a digest as recorded: same content, same Message-ID."""
    use_config_dir(ctx, config_dir_opt)
    rt = load_runtime(ctx)
    try:
        report = resend(
            rt.engine,
            rt.config.settings,
            digest_id,
            now=utcnow(),
            env=os.environ,
            templates=_templates(rt.config),
        )
    except MonitorError as e:
        fail(str(e), 2)
    _print_reports([report])
