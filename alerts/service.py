"""Delivery orchestration: per channel, re-send what is due, then build, record and send.

    deliver(engine, settings, now=…, trigger=…)
      for each enabled channel the trigger concerns:
        due pending/failed digests ─ claim ─ render ─ send ─ mark sent | failed (backoff)
        pending matches ─ build_digest (pure) ─ record (outbox, one transaction) ─ send ─ mark

A failing channel is logged and reported, never blocks the others; nothing is dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from alerts.digest import ChannelConfig, build_digest
from alerts.model import Digest, Rendered
from alerts.render import Format, render, render_all, render_atom
from alerts.transports import Transport, transport_for
from monitor.errors import ConfigError, DeliveryError, MonitorError, StorageError
from monitor.settings import EmailChannel, FileChannel, MonitorSettings
from monitor.store import digests as rows

log = logging.getLogger(__name__)

Trigger = Literal["immediate", "schedule", "manual"]
Status = Literal["sent", "failed", "skipped", "nothing", "busy"]
DEFAULT_SUBJECT = "{title}: {count} new matches ({period})"
#: A digest being sent is not taken again by another delivery before this long.
MIN_LEASE_S = 120.0


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """What happened on one channel for one digest (or why nothing was sent)."""

    channel: str
    status: Status
    digest_id: int | None = None
    entries: int = 0
    matches: int = 0
    resend: bool = False
    error: str | None = None
    retry_at: datetime | None = None

    def __str__(self) -> str:
        what = f"digest {self.digest_id}" if self.digest_id is not None else "no digest"
        text = f"channel {self.channel}: {what} {self.status}"
        if self.resend:
            text += " (resend)"
        if self.entries:
            text += f", {self.entries} entries"
        if self.error:
            text += f": {self.error}"
        if self.retry_at is not None:
            text += f"; retry at {self.retry_at.isoformat(timespec='seconds')}"
        return text


def cron_channels(settings: MonitorSettings) -> list[tuple[str, str, str]]:
    """(name, cron expression, time zone) of each enabled scheduled channel."""
    return [
        (name, cfg.schedule, cfg.timezone)
        for name, cfg in settings.channels.items()
        if cfg.enabled and cfg.schedule != "immediate"
    ]


def channels_for(
    settings: MonitorSettings, trigger: Trigger, channel: str | None
) -> list[tuple[str, ChannelConfig]]:
    """The enabled channels a trigger concerns; an unknown or disabled named channel is an error."""
    if channel is not None:
        cfg = settings.channels.get(channel)
        if cfg is None:
            known = ", ".join(sorted(settings.channels)) or "none"
            raise ConfigError(f"channels.{channel}: no such channel (configured: {known})")
        if not cfg.enabled:
            raise ConfigError(f"channels.{channel}: the channel is disabled (enabled: false)")
        chosen = [(channel, cfg)]
    else:
        chosen = [(n, c) for n, c in settings.channels.items() if c.enabled]
    if trigger == "immediate":
        return [(n, c) for n, c in chosen if c.schedule == "immediate"]
    if trigger == "schedule":
        return [(n, c) for n, c in chosen if c.schedule != "immediate"]
    return chosen


def message_host(cfg: ChannelConfig) -> str:
    """The Message-ID's right-hand side: the sender's domain for email, else localhost."""
    if isinstance(cfg, EmailChannel):
        domain = cfg.sender.rpartition("@")[2].strip(" >")
        return domain or "localhost"
    return "localhost"


def lease_for(settings: MonitorSettings) -> timedelta:
    return timedelta(seconds=max(settings.digest.first_retry_delay, MIN_LEASE_S))


def _templates(settings: MonitorSettings, templates: Path | None) -> Path | None:
    if templates is not None:
        return templates
    return Path(settings.digest.templates) if settings.digest.templates else None


def render_for(
    engine: Engine,
    settings: MonitorSettings,
    name: str,
    cfg: ChannelConfig,
    digest: Digest,
    *,
    now: datetime,
    templates: Path | None = None,
) -> Rendered:
    """Every format the channel's transport needs; the Atom feed read back from the database."""
    tpl = _templates(settings, templates)
    atom = None
    if isinstance(cfg, FileChannel) and "atom" in cfg.formats:
        with engine.connect() as conn:
            earlier = rows.recent_digests(conn, name, entries=cfg.atom_entries, include=digest.id)
        by_id = {d.id: d for d in earlier}
        by_id[digest.id] = digest
        atom = render_atom(
            name,
            digest.title,
            list(by_id.values()),
            limit=cfg.atom_entries,
            updated=now,
            templates=tpl,
        )
    subject = cfg.subject if isinstance(cfg, EmailChannel) else DEFAULT_SUBJECT
    return render_all(digest, subject_template=subject, tz=cfg.timezone, templates=tpl, atom=atom)


def _send(
    engine: Engine,
    settings: MonitorSettings,
    name: str,
    cfg: ChannelConfig,
    digest: Digest,
    transport: Transport,
    *,
    now: datetime,
    resend: bool,
    templates: Path | None,
) -> DeliveryReport:
    """Render and send a recorded digest, then mark it sent or failed."""
    assert digest.id is not None
    report = DeliveryReport(
        name, "sent", digest.id, digest.header.entry_count, len(digest.match_ids), resend
    )
    try:
        rendered = render_for(engine, settings, name, cfg, digest, now=now, templates=templates)
        transport.send(digest, rendered)
    except DeliveryError as e:
        return _failed(engine, settings, report, e.args[0], now, permanent=e.permanent)
    except ConfigError as e:
        return _failed(engine, settings, report, str(e), now, permanent=False)
    except Exception as e:  # unexpected: logged loudly with its traceback, retried later
        log.exception("channel %s: digest %s: unexpected error while sending", name, digest.id)
        return _failed(engine, settings, report, f"{type(e).__name__}: {e}", now, permanent=False)
    with engine.begin() as conn:
        rows.mark_sent(conn, digest.id, now)
    log.info("%s", report)
    return report


def _failed(
    engine: Engine,
    settings: MonitorSettings,
    report: DeliveryReport,
    error: str,
    now: datetime,
    *,
    permanent: bool,
) -> DeliveryReport:
    assert report.digest_id is not None
    with engine.begin() as conn:
        retry_at = rows.mark_failed(
            conn, report.digest_id, error, now, settings.digest, permanent=permanent
        )
    failed = DeliveryReport(
        report.channel,
        "failed",
        report.digest_id,
        report.entries,
        report.matches,
        report.resend,
        error,
        retry_at,
    )
    log.warning("%s", failed)
    return failed


def _resend_due(
    engine: Engine,
    settings: MonitorSettings,
    name: str,
    cfg: ChannelConfig,
    transport: Transport,
    *,
    now: datetime,
    templates: Path | None,
) -> list[DeliveryReport]:
    out = []
    with engine.connect() as conn:
        due = rows.due_digests(conn, name, now)
    for record in due:
        with engine.begin() as conn:
            if not rows.claim(conn, record.id, now, lease_for(settings), force=False):
                continue
        digest = record.digest()
        out.append(
            _send(
                engine,
                settings,
                name,
                cfg,
                digest,
                transport,
                now=now,
                resend=True,
                templates=templates,
            )
        )
    return out


def _record_new(
    engine: Engine, settings: MonitorSettings, name: str, cfg: ChannelConfig, now: datetime
) -> tuple[Digest | None, DeliveryReport | None]:
    """Build the channel's next digest from undelivered matches and record it (the outbox)."""
    try:
        with engine.begin() as conn:
            pending = rows.pending_matches(conn, name)
            previous = rows.previous_digest_at(conn, name)
            failing = rows.failing_feeds(conn)
            update_on = settings.stories.update_on
            digest = build_digest(name, cfg, pending, failing, previous, now, update_on=update_on)
            if digest is not None:
                return rows.record_digest(
                    conn, digest, host=message_host(cfg), now=now, lease=lease_for(settings)
                ), None
            if not pending:
                return None, DeliveryReport(name, "nothing")
            quiet = cfg.model_copy(update={"send_empty": True})
            settle = build_digest(name, quiet, pending, failing, previous, now, update_on=update_on)
            assert settle is not None
            skipped = rows.record_skipped(conn, settle, host=message_host(cfg))
            return None, DeliveryReport(name, "skipped", skipped, 0, len(settle.match_ids))
    except IntegrityError as e:
        log.info("channel %s: another delivery recorded these matches first: %s", name, e.orig)
        return None, DeliveryReport(name, "busy", error="another delivery is in progress")
    except SQLAlchemyError as e:
        raise StorageError(f"channel {name}: cannot record the digest: {e}") from e


def deliver_channel(
    engine: Engine,
    settings: MonitorSettings,
    name: str,
    cfg: ChannelConfig,
    *,
    now: datetime,
    env: Mapping[str, str],
    base_dir: Path | None = None,
    templates: Path | None = None,
) -> list[DeliveryReport]:
    """Due re-sends first, then a new digest from undelivered matches."""
    transport = transport_for(name, cfg, env, base_dir=base_dir)
    out = _resend_due(engine, settings, name, cfg, transport, now=now, templates=templates)
    digest, report = _record_new(engine, settings, name, cfg, now)
    if digest is not None:
        out.append(
            _send(
                engine,
                settings,
                name,
                cfg,
                digest,
                transport,
                now=now,
                resend=False,
                templates=templates,
            )
        )
    elif report is not None and not out:
        out.append(report)
    return out


def deliver(
    engine: Engine,
    settings: MonitorSettings,
    *,
    now: datetime,
    trigger: Trigger,
    channel: str | None = None,
    env: Mapping[str, str],
    base_dir: Path | None = None,
    templates: Path | None = None,
) -> list[DeliveryReport]:
    """Deliver on every channel the trigger concerns; one channel's failure spares the others."""
    reports: list[DeliveryReport] = []
    for name, cfg in channels_for(settings, trigger, channel):
        try:
            reports += deliver_channel(
                engine,
                settings,
                name,
                cfg,
                now=now,
                env=env,
                base_dir=base_dir,
                templates=templates,
            )
        except MonitorError as e:
            log.error("channel %s: delivery failed: %s", name, e)
            reports.append(DeliveryReport(name, "failed", error=str(e)))
        except SQLAlchemyError as e:
            log.error("channel %s: database error during delivery: %s", name, e)
            reports.append(DeliveryReport(name, "failed", error=f"database error: {e}"))
    return reports


def retry_due(
    engine: Engine,
    settings: MonitorSettings,
    *,
    now: datetime,
    env: Mapping[str, str],
    base_dir: Path | None = None,
    templates: Path | None = None,
) -> list[DeliveryReport]:
    """Re-send the digests whose retry time has come, on every enabled channel, whatever its
    schedule: a failed daily digest is retried within minutes, not the next morning."""
    reports: list[DeliveryReport] = []
    for name, cfg in channels_for(settings, "manual", None):
        try:
            transport = transport_for(name, cfg, env, base_dir=base_dir)
            reports += _resend_due(
                engine, settings, name, cfg, transport, now=now, templates=templates
            )
        except MonitorError as e:
            log.error("channel %s: retry failed: %s", name, e)
            reports.append(DeliveryReport(name, "failed", error=str(e)))
    return reports


def resend(
    engine: Engine,
    settings: MonitorSettings,
    digest_id: int,
    *,
    now: datetime,
    env: Mapping[str, str],
    base_dir: Path | None = None,
    templates: Path | None = None,
) -> DeliveryReport:
    """Deliver a recorded digest again as recorded: same content, same Message-ID."""
    with engine.connect() as conn:
        record = rows.get_digest(conn, digest_id)
    if record is None:
        raise ConfigError(f"digest {digest_id}: no such digest")
    if record.status == rows.SKIPPED:
        raise ConfigError(
            f"digest {digest_id}: nothing to send (it only settled passed-over matches)"
        )
    cfg = settings.channels.get(record.channel)
    if cfg is None:
        raise ConfigError(
            f"digest {digest_id}: its channel {record.channel!r} is no longer configured"
        )
    digest = record.digest()
    transport = transport_for(record.channel, cfg, env, base_dir=base_dir)
    with engine.begin() as conn:
        rows.claim(conn, digest_id, now, lease_for(settings), force=True)
    return _send(
        engine,
        settings,
        record.channel,
        cfg,
        digest,
        transport,
        now=now,
        resend=True,
        templates=templates,
    )


def preview(
    engine: Engine,
    settings: MonitorSettings,
    *,
    now: datetime,
    channel: str | None = None,
    fmt: Format = "md",
    templates: Path | None = None,
) -> str:
    """The digest the channel would get now, rendered; nothing is recorded or marked."""
    name, cfg = _preview_channel(settings, channel)
    with engine.connect() as conn:
        pending = rows.pending_matches(conn, name)
        previous = rows.previous_digest_at(conn, name)
        failing = rows.failing_feeds(conn)
    shown = cfg.model_copy(update={"send_empty": True})
    digest = build_digest(
        name, shown, pending, failing, previous, now, update_on=settings.stories.update_on
    )
    assert digest is not None
    return render(digest, fmt, tz=cfg.timezone, templates=_templates(settings, templates))


def _preview_channel(settings: MonitorSettings, channel: str | None) -> tuple[str, ChannelConfig]:
    if channel is not None:
        if channel not in settings.channels:
            known = ", ".join(sorted(settings.channels)) or "none"
            raise ConfigError(f"channels.{channel}: no such channel (configured: {known})")
        return channel, settings.channels[channel]
    enabled = [(n, c) for n, c in settings.channels.items() if c.enabled]
    if not enabled:
        raise ConfigError("channels: no enabled channel to preview")
    return enabled[0]
