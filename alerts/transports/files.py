"""File transport: each digest as md/html/json under fixed names, plus the channel's Atom feed.

    <directory>/<channel>/<YYYY-MM-DD>/digest-<id>.<ext>     (date in the channel's time zone)
    <directory>/<channel>/feed.atom

When `directory` already ends with the channel's name it is used as is (`digests/daily` for
channel `daily` gives `digests/daily/...`). Every file is written atomically (temp, fsync,
rename), so a resend overwrites the same names and readers never see half a file.
"""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

from alerts.model import Digest, Rendered
from monitor.errors import DeliveryError
from monitor.settings import FileChannel
from monitor.yamlio import write_atomic


def channel_root(name: str, cfg: FileChannel, base_dir: Path | None = None) -> Path:
    directory = Path(cfg.directory)
    if base_dir is not None and not directory.is_absolute():
        directory = base_dir / directory
    return directory if directory.name == name else directory / _safe(name)


def _safe(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in name).strip(".")
    return cleaned or "channel"


def digest_paths(
    name: str, cfg: FileChannel, digest: Digest, base_dir: Path | None = None
) -> dict[str, Path]:
    """Where each of the channel's per-digest formats goes (atom excluded)."""
    if digest.id is None:
        raise ValueError("only a recorded digest (with an id) can be written to files")
    day = digest.created_at.astimezone(ZoneInfo(cfg.timezone)).strftime("%Y-%m-%d")
    folder = channel_root(name, cfg, base_dir) / day
    return {fmt: folder / f"digest-{digest.id}.{fmt}" for fmt in cfg.formats if fmt != "atom"}


class FileTransport:
    """Writes the formats the channel asks for; the Atom file is rewritten from `rendered.atom`."""

    def __init__(self, name: str, cfg: FileChannel, *, base_dir: Path | None = None) -> None:
        self.name = name
        self.cfg = cfg
        self.base_dir = base_dir

    def send(self, digest: Digest, rendered: Rendered) -> None:
        contents = {"md": rendered.markdown, "html": rendered.html, "json": rendered.json}
        try:
            for fmt, path in digest_paths(self.name, self.cfg, digest, self.base_dir).items():
                write_atomic(path, contents[fmt].encode("utf-8"))
            if "atom" in self.cfg.formats and rendered.atom is not None:
                feed = channel_root(self.name, self.cfg, self.base_dir) / "feed.atom"
                write_atomic(feed, rendered.atom.encode("utf-8"))
        except OSError as e:
            raise DeliveryError(self.name, f"cannot write digest files: {e}") from e
