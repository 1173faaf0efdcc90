"""The polling commands collect cyclic garbage less often (monitor/collector.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from monitor.cli import app
from monitor.collector import POLLING_THRESHOLDS, tune_for_polling


@pytest.fixture(autouse=True)
def restored_thresholds() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)


def test_tune_for_polling_sets_the_thresholds() -> None:
    gc.set_threshold(700, 10, 10)
    tune_for_polling()
    assert gc.get_threshold() == POLLING_THRESHOLDS


def test_poll_command_tunes_the_collector(tmp_path: Path) -> None:
    gc.set_threshold(700, 10, 10)
    config = tmp_path / "config"
    config.mkdir()
    (config / "settings.yaml").write_text(
        f"database:\n  url: sqlite:///{tmp_path / 'm.db'}\n", encoding="utf-8"
    )
    CliRunner().invoke(app, ["poll", "--config-dir", str(config)])
    assert gc.get_threshold() == POLLING_THRESHOLDS
