"""The polling commands tune the collector and malloc (monitor/collector.py)."""

from __future__ import annotations

import gc
import platform
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from monitor.cli import app
from monitor.collector import (
    MMAP_THRESHOLD,
    POLLING_THRESHOLDS,
    collection_paused,
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


@pytest.fixture
def collector_enabled() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


@pytest.mark.usefixtures("collector_enabled")
def test_a_pause_turns_the_collector_off_and_back_on_even_when_it_raises() -> None:
    with collection_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collection_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_a_pause_leaves_a_collector_that_was_off_off() -> None:
    was = gc.isenabled()
    gc.disable()
    try:
        with collection_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        if was:
            gc.enable()


@pytest.mark.usefixtures("collector_enabled")
def test_overlapping_pauses_turn_it_back_on_only_when_the_last_ends() -> None:
    first, second = collection_paused(), collection_paused()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert not gc.isenabled()
    second.__exit__(None, None, None)
    assert gc.isenabled()


@pytest.mark.usefixtures("collector_enabled")
def test_story_assignment_runs_with_the_collector_paused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import monitor.store as store_module
    from monitor.settings import StoriesSettings
    from monitor.store import Storage, make_engine, upgrade

    seen: list[bool] = []

    def assign_pending(*args: object) -> int:
        seen.append(gc.isenabled())
        return 0

    monkeypatch.setattr(store_module, "assign_pending", assign_pending)
    engine = make_engine(f"sqlite:///{tmp_path / 'monitor.db'}")
    upgrade(engine)
    try:
        Storage(engine, StoriesSettings()).assign_pending_stories(datetime.now(UTC))
    finally:
        engine.dispose()
    assert seen == [False]
    assert gc.isenabled()
