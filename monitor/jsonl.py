"""Labelled data sets as JSON lines: rows with their `file:line`, every error naming both."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from monitor.errors import ConfigError


def read_rows(path: Path, required: Sequence[str]) -> list[tuple[str, dict[str, Any]]]:
    """(`file:line`, row) for each non-blank line of a JSONL file, or of `items.jsonl` in a
    directory; each row is an object whose `required` keys hold text."""
    if path.is_dir():
        path = path / "items.jsonl"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read: {e}") from e
    rows = [_row(f"{path}:{n}", line, required) for n, line in enumerate(lines, 1) if line.strip()]
    if not rows:
        raise ConfigError(f"{path}: no items")
    return rows


def _row(where: str, line: str, required: Sequence[str]) -> tuple[str, dict[str, Any]]:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{where}: invalid JSON: {e.msg}") from e
    if not isinstance(row, dict):
        raise ConfigError(f"{where}: expected a JSON object")
    missing = [key for key in required if not isinstance(row.get(key), str)]
    if missing:
        raise ConfigError(f"{where}: missing or non-text key(s): {', '.join(missing)}")
    return where, row
