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
from monitor.collector import (
    MMAP_THRESHOLD,
    POLLING_THRESHOLDS,
    fix_mmap_threshold,
    release_free_memory,
    tune_for_polling,
)


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
    assert release_free_memory() is False


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="malloc_trim is a glibc function",
)
def test_free_heap_pages_go_back_after_a_cycle() -> None:
    """Blocks under the pinned threshold come from the heap; freed, they stay mapped until
    trimmed."""
    fix_mmap_threshold()
    blocks = [bytearray(MMAP_THRESHOLD // 2) for _ in range(64)]  # 128 MiB from the heap
    for block in blocks:
        block[::4096] = b"x" * len(block[::4096])  # touch every page
    above = bytearray(64 * 1024)  # a live block above them: the heap's top cannot shrink
    held = _rss_kib()
    blocks.clear()
    assert _rss_kib() > held - 16 * 1024  # freed, but still mapped
    assert release_free_memory() is True
    assert _rss_kib() < held - 64 * 1024  # most of it is back
    del above


def _rss_kib() -> int:
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")))
