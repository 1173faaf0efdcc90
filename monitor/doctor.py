"""`monitor doctor`: checks that a set-up can work, each a record with a one-line fix.

    config        monitor.yaml and feeds.yaml load            (fix: the keys named)
    watchlist     watchlist.yaml loads                        (fix: the entries named)
    database      reachable, ours, at the latest revision     (fix: monitor db upgrade)
    spaCy model   matching.spacy_model is installed           (fix: pip install ...)
    corpus        matching.corpus holds seed documents
    compiled      the optional C parts were built             (fix: a C compiler, reinstall)
    channel ...   SMTP handshake / digest directory writable / Apprise URLs set, per enabled channel
    feeds         none failing                                (fix: monitor feeds status)

Nothing is changed: the SMTP check says EHLO and QUIT, the directory check creates and
deletes one temporary file, and a missing SQLite file is reported, not created.
"""

from __future__ import annotations

import importlib.util
import smtplib
import ssl
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from alerts.transports.files import channel_root
from monitor import match, shingles
from monitor.errors import ConfigError, StorageError
from monitor.settings import (
    AppriseChannel,
    Config,
    DatabaseSettings,
    EmailChannel,
    FileChannel,
    load_config,
    read_secret,
)
from monitor.store.engine import make_engine, normalise_url
from monitor.store.feeds import FeedStatus, feed_statuses
from monitor.store.migrate import check_ours, current_revision, head_revision
from monitor.watchlist import load_watchlist

#: Seconds a PostgreSQL connection attempt may take before the database check gives up.
PG_CONNECT_TIMEOUT_S = 10
#: Failing feeds named in the detail of the feeds check; the rest are counted.
FAILING_FEEDS_SHOWN = 5


@dataclass(frozen=True, slots=True)
class Check:
    """One diagnosis: what was checked, whether it passed, what was seen, how to fix it."""

    name: str
    ok: bool
    #: What was found (may span lines, e.g. one per failing feed).
    detail: str
    #: One line saying how to put a failed check right; empty when it passed.
    fix: str = ""


def passed(name: str, detail: str) -> Check:
    return Check(name, True, detail)


def failed(name: str, detail: str, fix: str) -> Check:
    return Check(name, False, detail, fix)


def run_checks(directory: Path, env: Mapping[str, str], now: datetime) -> list[Check]:
    """Every check for the config in `directory`; those needing settings stop at a bad config."""
    config_check, config = check_config(directory, env)
    if config is None:
        return [config_check]
    settings = config.settings
    checks = [config_check, check_watchlist(config)]
    database_check, engine = check_database(settings.database)
    checks += [
        database_check,
        check_spacy_model(settings.matching.spacy_model),
        check_corpus(Path(settings.matching.corpus)),
    ]
    checks.append(check_compiled_parts(settings.stories.enabled))
    checks += [
        check_channel(name, channel, env)
        for name, channel in settings.channels.items()
        if channel.enabled
    ]
    if engine is not None:
        try:
            checks.append(check_feeds(engine, now))
        finally:
            engine.dispose()
    return checks


# --- configuration -----------------------------------------------------------------------


def check_config(directory: Path, env: Mapping[str, str]) -> tuple[Check, Config | None]:
    """monitor.yaml and feeds.yaml, with the environment's overrides applied."""
    if not directory.is_dir():
        fix = "pass --config-dir or set MONITOR_CONFIG_DIR to the configuration folder"
        return failed("config", f"{directory}: no such directory", fix), None
    try:
        config = load_config(directory, env)
    except ConfigError as e:
        return failed("config", "\n".join(e.problems), "correct the keys named above"), None
    settings = config.settings
    feeds = sum(1 for f in config.feeds if f.enabled)
    channels = sum(1 for c in settings.channels.values() if c.enabled)
    detail = (
        f"{directory}: {feeds} of {len(config.feeds)} feeds enabled, {channels} of "
        f"{len(settings.channels)} channels enabled"
    )
    if feeds == 0:
        return failed("config", detail, "monitor feeds add URL  (or enable feeds)"), config
    return passed("config", detail), config


def check_watchlist(config: Config) -> Check:
    path = config.watchlist_path
    try:
        watchlist = load_watchlist(path)
    except ConfigError as e:  # WatchlistError is reported the same way
        return failed("watchlist", "\n".join(e.problems), f"correct the entries named in {path}")
    return passed(
        "watchlist",
        f"{path}: version {watchlist.version}, {len(watchlist.actors)} actors, "
        f"{len(watchlist.topics)} topics",
    )


# --- database ----------------------------------------------------------------------------


def check_database(settings: DatabaseSettings) -> tuple[Check, Engine | None]:
    """Reachable, a monitor database, at the latest schema; the Engine when usable."""
    try:
        url = make_url(normalise_url(settings.url))
    except ArgumentError:
        return failed("database", f"invalid URL {settings.url!r}", "correct database.url"), None
    shown = url.render_as_string(hide_password=True)
    if _missing_sqlite_file(url):
        return failed(
            "database",
            f"{shown}: the file does not exist yet",
            "monitor db upgrade  (creates and migrates it)",
        ), None
    try:
        engine = make_engine(_with_connect_timeout(url), busy_timeout_s=settings.busy_timeout)
    except StorageError as e:
        return failed("database", str(e), "correct database.url or MONITOR_DATABASE_URL"), None
    check = _schema_check(engine, shown)
    if not check.ok:
        engine.dispose()
        return check, None
    return check, engine


def _missing_sqlite_file(url: URL) -> bool:
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return False
    return not database.startswith("file:") and not Path(database).exists()


def _with_connect_timeout(url: URL) -> str:
    if url.get_backend_name() == "postgresql" and "connect_timeout" not in url.query:
        url = url.update_query_dict({"connect_timeout": str(PG_CONNECT_TIMEOUT_S)})
    return url.render_as_string(hide_password=False)


def _schema_check(engine: Engine, shown: str) -> Check:
    head = head_revision()
    try:
        with engine.connect() as connection:
            ours = check_ours(connection)
            revision = current_revision(connection) if ours else None
    except StorageError as e:
        return failed(
            "database",
            f"{shown}: {e}",
            "point database.url (or MONITOR_DATABASE_URL) at an empty or a monitor database",
        )
    except SQLAlchemyError as e:
        reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
        return failed(
            "database",
            f"{shown}: cannot connect: {reason}",
            "start the database server, or correct database.url or MONITOR_DATABASE_URL",
        )
    if revision is None:
        return failed("database", f"{shown}: empty, no schema yet", "monitor db upgrade")
    if revision != head:
        return _revision_mismatch(shown, revision, head)
    return passed("database", f"{shown}: schema revision {revision} (latest)")


def _revision_mismatch(shown: str, revision: str, head: str) -> Check:
    from monitor.store.migrate import _known_revisions

    if revision not in _known_revisions():
        return failed(
            "database",
            f"{shown}: schema revision {revision}, newer than this program knows",
            "upgrade the program to the version that wrote this database",
        )
    return failed(
        "database", f"{shown}: schema revision {revision}, latest is {head}", "monitor db upgrade"
    )


# --- spaCy model and corpus --------------------------------------------------------------


def check_spacy_model(name: str) -> Check:
    """The pipeline named by matching.spacy_model is an installed package or a model folder."""
    title = "spaCy model"
    if ("/" in name or name.startswith(".")) and (Path(name) / "config.cfg").is_file():
        return passed(title, f"{name}: a model folder")
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        return failed(
            title,
            f"{name}: not installed (seeding falls back to a blank pipeline without entities)",
            f"pip install {name.replace('_', '-')}  (or set matching.spacy_model)",
        )
    return passed(title, f"{name}: installed")


#: Each compiled part: what it does, and the CPU its Python path costs instead.
_COMPILED_PARTS = {
    "story hashing": (
        "monitor._shinglehash",
        "about 6 times the CPU per item to take story shingles",
    ),
    "matching passes": (
        "monitor._wordscan",
        "about 2.5 times the CPU per item to match, and 1.7 times to normalise",
    ),
}


def check_compiled_parts(stories: bool) -> Check:
    """The optional compiled modules, built at install where a C compiler was at hand: story
    hashing (`monitor._shinglehash`, when stories are on) and the word passes of matching, the
    seed similarity, language detection and content hashes (`monitor._wordscan`). Without them
    the Python paths give the same results, more slowly."""
    title = "compiled parts"
    built = {"story hashing": shingles.compiled(), "matching passes": match.compiled()}
    wanted = [part for part in _COMPILED_PARTS if stories or part != "story hashing"]
    missing = [part for part in wanted if not built[part]]
    if not missing:
        names = ", ".join(f"{part} ({_COMPILED_PARTS[part][0]})" for part in wanted)
        return passed(title, f"compiled: {names}")
    costs = "; ".join(f"{part}: {_COMPILED_PARTS[part][1]}" for part in missing)
    return failed(
        title,
        f"the Python path for {', '.join(missing)}: the same results, {costs}",
        "install a C compiler and the Python headers (gcc, python3-dev), then reinstall",
    )


def check_corpus(directory: Path) -> Check:
    """The seed documents (*.txt) that `monitor seed` reads."""
    if not directory.is_dir():
        return failed(
            "corpus",
            f"{directory}: no such directory",
            f"put the seed documents (.txt) in {directory} or set matching.corpus",
        )
    count = sum(1 for p in directory.glob("*.txt") if p.is_file())
    if count == 0:
        return failed(
            "corpus", f"{directory}: no .txt documents", f"put the seed documents in {directory}"
        )
    return passed("corpus", f"{directory}: {count} documents")


# --- channels ----------------------------------------------------------------------------


def check_channel(
    name: str, channel: FileChannel | EmailChannel | AppriseChannel, env: Mapping[str, str]
) -> Check:
    if isinstance(channel, EmailChannel):
        return check_smtp(name, channel, env)
    if isinstance(channel, FileChannel):
        return check_digest_directory(name, channel)
    return check_apprise(name, channel, env)


def check_smtp(name: str, channel: EmailChannel, env: Mapping[str, str]) -> Check:
    """Connect, EHLO (and STARTTLS when configured), QUIT: no message is sent."""
    title = f"channel {name} (email)"
    where = f"{channel.host}:{channel.port}"
    try:
        password = read_secret(env, channel.password_env, channel.password_file)
    except ConfigError as e:
        return failed(title, str(e), "make the password file readable or fix its path")
    if channel.username and not password:
        variable = channel.password_env or "MONITOR_SMTP_PASSWORD"
        return failed(
            title,
            f"username {channel.username} but no password",
            f"set {variable} (or {variable}_FILE) in the environment",
        )
    try:
        extensions = _smtp_handshake(channel)
    except smtplib.SMTPNotSupportedError:
        return failed(
            title,
            f"{where} does not offer STARTTLS",
            f"set channels.{name}.security to none or ssl",
        )
    except (OSError, smtplib.SMTPException) as e:
        return failed(
            title,
            f"{where}: {type(e).__name__}: {e}",
            f"start the mail server at {where} or correct channels.{name}.host/port/security",
        )
    if channel.username and "auth" not in extensions:
        return failed(
            title,
            f"{where} offers no login (AUTH) for username {channel.username}",
            f"remove channels.{name}.username or use starttls/ssl",
        )
    return passed(title, f"{where}: SMTP server answered (security: {channel.security})")


def _smtp_handshake(channel: EmailChannel) -> set[str]:
    """The extensions the server announces after EHLO (and STARTTLS); QUIT closes politely."""
    smtp: smtplib.SMTP
    if channel.security == "ssl":
        context = ssl.create_default_context()
        smtp = smtplib.SMTP_SSL(
            channel.host, channel.port, timeout=channel.timeout, context=context
        )
    else:
        smtp = smtplib.SMTP(channel.host, channel.port, timeout=channel.timeout)
    with smtp:
        code, message = smtp.ehlo()
        if code != 250:
            raise smtplib.SMTPResponseException(code, message)
        if channel.security == "starttls":
            smtp.starttls(context=ssl.create_default_context())
            smtp.ehlo()
        return set(smtp.esmtp_features)


def check_digest_directory(name: str, channel: FileChannel) -> Check:
    """The digest folder (or the nearest existing folder above it) takes a new file."""
    title = f"channel {name} (files)"
    root = channel_root(name, channel)
    existing = _nearest_existing(root)
    if not existing.is_dir():
        return failed(
            title, f"{existing} is not a directory", f"remove it or set channels.{name}.directory"
        )
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".monitor-doctor-"):
            pass
    except OSError as e:
        return failed(
            title,
            f"{existing}: cannot write: {e.strerror or e}",
            f"make {existing} writable for this user, or set channels.{name}.directory",
        )
    later = "" if existing == root else " (created at the first digest)"
    return passed(title, f"{root}: writable{later}")


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def check_apprise(name: str, channel: AppriseChannel, env: Mapping[str, str]) -> Check:
    title = f"channel {name} (apprise)"
    if importlib.util.find_spec("apprise") is None:
        return failed(title, "the apprise package is not installed", "pip install apprise")
    if not env.get(channel.urls_env, "").strip():
        return failed(title, f"{channel.urls_env} is not set", f"set {channel.urls_env}")
    return passed(title, f"URLs from {channel.urls_env}")


# --- feeds -------------------------------------------------------------------------------


def check_feeds(engine: Engine, now: datetime) -> Check:
    """Enabled feeds whose last polls failed, with how long they have been failing."""
    try:
        with engine.connect() as connection:
            statuses = feed_statuses(connection)
    except SQLAlchemyError as e:
        reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
        return failed("feeds", f"cannot read the feeds: {reason}", "monitor db upgrade")
    enabled = [s for s in statuses if s.enabled]
    failing = [s for s in enabled if s.error_count > 0]
    if not enabled:
        return passed("feeds", "no feed polled yet")
    if not failing:
        return passed("feeds", f"{len(enabled)} enabled, none failing")
    failing.sort(key=lambda s: (s.first_error_at or now, s.id))
    lines = [describe_failing(s, now) for s in failing[:FAILING_FEEDS_SHOWN]]
    if len(failing) > FAILING_FEEDS_SHOWN:
        lines.append(f"and {len(failing) - FAILING_FEEDS_SHOWN} more")
    head = f"{len(failing)} of {len(enabled)} enabled feeds failing:"
    return failed("feeds", "\n".join([head, *lines]), "monitor feeds status  (then fix or disable)")


def describe_failing(status: FeedStatus, now: datetime) -> str:
    since = ""
    if status.first_error_at is not None:
        since = f" for {format_age((now - status.first_error_at).total_seconds())}"
    errors = "1 error" if status.error_count == 1 else f"{status.error_count} errors"
    reason = f": {status.last_error}" if status.last_error else ""
    return f"{status.name or status.url}: failing{since} ({errors}){reason}"


def format_age(seconds: float) -> str:
    """`45 s`, `12 min`, `5 h`, `3 d`: the largest unit that fits, rounded down."""
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit}"
    return f"{int(seconds)} s"
