"""Helpers shared by the commands: config and database loading, consoles, failure exits."""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.logging import RichHandler
from sqlalchemy import Engine

from monitor.errors import ConfigError, MonitorError, StorageError
from monitor.settings import Config, LoggingSettings, config_dir_from, load_config, parse_duration
from monitor.store import Storage, make_engine, require_current, upgrade

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

ConfigDirOption = Annotated[
    Path | None,
    typer.Option(
        "--config-dir",
        envvar="MONITOR_CONFIG_DIR",
        help="Directory with monitor.yaml, feeds.yaml and watchlist.yaml (default: ./config).",
        show_default=False,
    ),
]
FormatOption = Annotated[str, typer.Option("--format", "-f", help="table or json.")]


@dataclass(frozen=True)
class Runtime:
    """What most commands need: the validated config and a ready database."""

    config: Config
    engine: Engine
    storage: Storage


def fail(message: str, code: int = 1) -> NoReturn:
    """Print `message` on stderr and exit with `code` (config/database problems: 2)."""
    err_console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    raise typer.Exit(code)


def use_config_dir(ctx: typer.Context, option: Path | None) -> None:
    """A command's own --config-dir wins over one given before the command name."""
    if option is not None:
        root = ctx.find_root()
        root.obj = {**(root.obj or {}), "config_dir": option}


def config_dir(ctx: typer.Context | None, option: Path | None = None) -> Path:
    root = (ctx.find_root().obj or {}).get("config_dir") if ctx is not None else None
    return option or root or config_dir_from(None, os.environ)


def load_config_or_exit(ctx: typer.Context | None, option: Path | None = None) -> Config:
    try:
        return load_config(config_dir(ctx, option))
    except ConfigError as e:
        print_problems(e)
        raise typer.Exit(2) from e


def print_problems(error: ConfigError) -> None:
    """A config error on stderr: its summary, then each problem on its own line."""
    err_console.print("[bold red]error:[/] ", end="")
    err_console.print(str(error).splitlines()[0], markup=False, soft_wrap=True)
    if len(error.problems) > 1:
        for problem in error.problems:
            err_console.print(f"  {problem}", soft_wrap=True, markup=False)


def load_runtime(
    ctx: typer.Context | None, option: Path | None = None, *, migrate: bool = True
) -> Runtime:
    """Config plus a migrated (or checked) database; exits 2 with the reason when unusable."""
    config = load_config_or_exit(ctx, option)
    setup_logging(config.settings.logging)
    try:
        engine = make_engine(
            config.settings.database.url, busy_timeout_s=config.settings.database.busy_timeout
        )
        if migrate:
            upgrade(engine)
        else:
            require_current(engine)
    except StorageError as e:
        fail(f"database {config.settings.database.url}: {e}", 2)
    if ctx is not None:  # the pool's connections close with the command, not at exit or GC
        ctx.call_on_close(engine.dispose)
    return Runtime(config, engine, Storage(engine, config.settings.stories))


_HANDLER_NAME = "monitor"


def setup_logging(settings: LoggingSettings) -> None:
    """Log to stderr (Rich or JSON lines) or a file, once per process."""
    root = logging.getLogger()
    if any(h.get_name() == _HANDLER_NAME for h in root.handlers):
        return
    handler: logging.Handler
    if settings.file:
        Path(settings.file).parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(settings.file, encoding="utf-8")
    elif settings.format == "text":
        handler = RichHandler(console=err_console, show_path=False, rich_tracebacks=False)
    else:
        handler = logging.StreamHandler(sys.stderr)
    if settings.format == "json":
        handler.setFormatter(JsonFormatter())
    elif settings.file:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.set_name(_HANDLER_NAME)
    root.addHandler(handler)
    root.setLevel(settings.level)
    # alembic says "Context impl SQLiteImpl." at INFO each time a command checks the schema
    for noisy in ("httpx", "httpcore", "apscheduler.executors.default", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(
            {
                "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
                "level": record.levelname,
                "logger": record.name,
                "message": record.getMessage(),
            },
            ensure_ascii=False,
        )


def utcnow() -> datetime:
    return datetime.now(UTC)


def since_option(value: str | None, now: datetime) -> datetime | None:
    """`--since 2d` → the datetime two days before `now`; also accepts an ISO date."""
    if not value:
        return None
    try:
        return now - timedelta(seconds=parse_duration(value))
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail(f"--since: expected a duration like 2d or 12h, or an ISO date, got {value!r}")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


def handle_monitor_error(error: MonitorError) -> NoReturn:
    code = 2 if isinstance(error, ConfigError | StorageError) else 1
    fail(str(error), code)
