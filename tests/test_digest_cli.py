"""`monitor digest` commands end to end on a SQLite file: preview, send, list, resend."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import pytest
import typer
from typer.testing import CliRunner

from monitor.cli.digest import app as digest_app
from monitor.store import make_engine, upgrade
from tests.digest_helpers import add_feed, matched_item

root = typer.Typer()


@root.callback()
def _root(
    ctx: typer.Context, config_dir: Annotated[Path | None, typer.Option("--config-dir")] = None
) -> None:
    ctx.obj = {"config_dir": config_dir}


root.add_typer(digest_app, name="digest")


def setup(tmp_path: Path) -> Path:
    config = tmp_path / "config"
    config.mkdir()
    (config / "monitor.yaml").write_text(
        f"database:\n  url: sqlite:///{tmp_path / 'monitor.db'}\n"
        "channels:\n"
        "  files:\n    kind: file\n    schedule: immediate\n"
        f"    directory: {tmp_path / 'digests'}\n",
        encoding="utf-8",
    )
    engine = make_engine(f"sqlite:///{tmp_path / 'monitor.db'}")
    upgrade(engine)
    matched_item(
        engine, add_feed(engine, "Wire"), "Talks <resume> in Istanbul", url="https://w.example/1"
    )
    engine.dispose()
    return config


@pytest.mark.slow
def test_preview_send_list_resend(tmp_path: Path) -> None:
    config = setup(tmp_path)
    runner = CliRunner()
    args = ["--config-dir", str(config), "digest"]

    shown = runner.invoke(root, [*args, "preview", "--format", "md"])
    assert shown.exit_code == 0, shown.output
    assert "Talks \\<resume\\> in Istanbul" in shown.output
    listed = runner.invoke(root, [*args, "list", "--format", "json"])
    assert json.loads(listed.stdout) == []  # a preview records nothing

    sent = runner.invoke(root, [*args, "send"])
    assert sent.exit_code == 0, sent.output
    assert "channel files: digest 1 sent" in sent.output
    records = json.loads(runner.invoke(root, [*args, "list", "--format", "json"]).stdout)
    assert [(r["id"], r["status"], r["attempts"]) for r in records] == [(1, "sent", 1)]
    assert runner.invoke(root, [*args, "list"]).exit_code == 0

    again = runner.invoke(root, [*args, "resend", "1"])
    assert again.exit_code == 0 and "(resend)" in again.output
    files = sorted(p.name for p in (tmp_path / "digests" / "files").rglob("*") if p.is_file())
    assert files == ["digest-1.html", "digest-1.json", "digest-1.md", "feed.atom"]

    missing = runner.invoke(root, [*args, "resend", "99"])
    assert missing.exit_code == 2 and "no such digest" in missing.output
    bad = runner.invoke(root, [*args, "send", "--channel", "nope"])
    assert bad.exit_code == 2 and "no such channel" in bad.output
