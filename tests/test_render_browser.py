"""The HTML digest opened in a real headless Chromium: it renders its title and entries."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from alerts.render import render
from tests.test_render_golden import golden_digest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(__file__).parent / "artifacts"
DOC_SHOT = ROOT / "docs" / "digest-screenshot.png"


def _chromium() -> str:
    found = shutil.which("chromium")
    if found:
        return found
    allowed = os.environ.get("CI") or os.environ.get("MONITOR_INSTALL_BROWSER") == "1"
    if hasattr(os, "geteuid") and os.geteuid() == 0 and allowed:
        subprocess.run(
            ["apt-get", "install", "-y", "chromium"], check=False, capture_output=True, timeout=600
        )
        found = shutil.which("chromium")
        if found:
            return found
    pytest.skip("chromium not installed (set MONITOR_INSTALL_BROWSER=1 as root to install it)")


def _run(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


@pytest.mark.browser
@pytest.mark.slow
def test_html_digest_renders_in_headless_chromium(tmp_path: Path) -> None:
    chromium = _chromium()
    digest = golden_digest()
    page = tmp_path / "digest.html"
    page.write_text(render(digest, "html"), encoding="utf-8")

    dom = _run(chromium, tmp_path / "profile-dom", "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "<title>Negotiations monitor" in dom.stdout
    assert dom.stdout.count('class="entry"') == len(digest.entries)
    assert "Стороны договорились о встрече в Эр-Рияде" in dom.stdout
    assert "<mark" in dom.stdout

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "digest.png"
    result = _run(
        chromium,
        tmp_path / "profile-shot",
        f"--screenshot={shot}",
        "--window-size=1000,1400",
        page.as_uri(),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 10_000  # a blank page compresses to far less
    if os.environ.get("UPDATE_GOLDEN") == "1" or not DOC_SHOT.exists():
        DOC_SHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, DOC_SHOT)
