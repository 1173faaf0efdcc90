"""The polling commands tune the collector and malloc (monitor/collector.py)."""

from __future__ import annotations

import gc
import platform
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from monitor.cli import app
from monitor.collector import POLLING_THRESHOLDS, fix_mmap_threshold, tune_for_polling


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


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="mallopt's mmap threshold is a glibc setting",
)
def test_the_mmap_threshold_is_pinned_on_glibc() -> None:
    assert fix_mmap_threshold() is True


def test_the_mmap_threshold_is_left_alone_off_linux(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    assert fix_mmap_threshold() is False
