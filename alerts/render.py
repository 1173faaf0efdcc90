"""Render a digest as Markdown, HTML, plain text, JSON and Atom from Jinja2 templates.

Feed text is treated as plain text everywhere: HTML and Atom templates autoescape it,
Markdown escapes its punctuation, links were limited to http(s) when the digest was built.
A directory of override templates (settings.digest.templates) is searched first.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote
from zoneinfo import ZoneInfo

from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    PackageLoader,
    StrictUndefined,
    TemplateError,
    select_autoescape,
)
from markupsafe import Markup, escape

from alerts.model import Digest, DigestEntry, Rendered
from alerts.text import header_safe, safe_link, split_hits
from monitor.errors import ConfigError

Format = Literal["md", "html", "text", "json"]
FORMATS: tuple[Format, ...] = ("md", "html", "text", "json")
TEMPLATE_NAMES: dict[Format, str] = {
    "md": "digest.md",
    "html": "digest.html",
    "text": "digest.txt",
    "json": "",
}
ATOM_ID_AUTHORITY = "tag:storywatch.monitor,2024"

_BLANK_RUNS = re.compile(r"\n{3,}")
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+!|~])")


def md_escape(text: str) -> str:
    """Markdown-escaped plain text: no emphasis, link, HTML tag or heading can form."""
    return _MD_SPECIAL.sub(r"\\\1", text)


def md_url(url: str) -> str:
    """A link target safe inside Markdown's (...) syntax."""
    return quote(url, safe=":/?#@!$&'*+,;=%-._~")


def md_snippet(snippet: str) -> str:
    return "".join(f"**{md_escape(t)}**" if hit else md_escape(t) for t, hit in split_hits(snippet))


def html_snippet(snippet: str) -> Markup:
    style = "background:#fff3a3;color:#000;padding:0 2px;"
    return Markup("").join(
        Markup('<mark style="{}">{}</mark>').format(style, t) if hit else escape(t)
        for t, hit in split_hits(snippet)
    )


def text_snippet(snippet: str) -> str:
    return "".join(f"[{t}]" if hit else t for t, hit in split_hits(snippet))


def age(since: datetime | None, now: datetime) -> str:
    """How long since `since`, roughly: "2 d 3 h", "5 h 10 min", "12 min"."""
    if since is None:
        return "an unknown time"
    minutes = max(0, int((now - since).total_seconds() // 60))
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    return f"{hours} h {mins} min" if hours else f"{mins} min"


def _zone(tz: str | tzinfo) -> tzinfo:
    return ZoneInfo(tz) if isinstance(tz, str) else tz


def _environment(templates: Path | None, tz: tzinfo) -> Environment:
    loaders: list[Any] = []
    if templates is not None:
        loaders.append(FileSystemLoader(str(templates)))
    loaders.append(PackageLoader("alerts", "templates"))
    env = Environment(
        loader=ChoiceLoader(loaders),
        autoescape=select_autoescape(["html", "xml", "atom"], default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )

    def when(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M %Z") -> str:
        return value.astimezone(tz).strftime(fmt) if value is not None else ""

    env.filters.update(
        age=age,
        md=md_escape,
        md_url=md_url,
        md_snippet=md_snippet,
        html_snippet=html_snippet,
        text_snippet=text_snippet,
        when=when,
        iso=lambda v: v.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        safe_link=safe_link,
    )
    return env


def period_label(digest: Digest, tz: tzinfo) -> str:
    end = digest.period_end.astimezone(tz)
    if digest.period_start is None:
        return f"until {end:%Y-%m-%d %H:%M %Z}"
    start = digest.period_start.astimezone(tz)
    if start.date() == end.date():
        return f"{start:%Y-%m-%d %H:%M}–{end:%H:%M %Z}"
    return f"{start:%Y-%m-%d %H:%M}–{end:%Y-%m-%d %H:%M %Z}"


def subject_line(digest: Digest, template: str, tz: str | tzinfo = "UTC") -> str:
    """The mail subject from the channel's template: one line, whatever the feed text holds."""
    values = _SafeFormat(
        title=digest.title,
        count=digest.header.entry_count,
        matches=digest.header.match_count,
        period=period_label(digest, _zone(tz)),
        channel=digest.channel,
        id=digest.id if digest.id is not None else "preview",
    )
    return header_safe(template.format_map(values))


class _SafeFormat(dict[str, object]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _context(digest: Digest, tz: tzinfo) -> dict[str, Any]:
    return {
        "digest": digest,
        "period": period_label(digest, tz),
        "sections": digest.sections,
        "header": digest.header,
        "more": digest.more,
        "failing": digest.failing_feeds,
        "now": digest.created_at,
    }


def render(
    digest: Digest,
    fmt: Format,
    *,
    tz: str | tzinfo = "UTC",
    templates: Path | None = None,
) -> str:
    """One format of the digest; a broken override template raises ConfigError naming it."""
    if fmt == "json":
        return render_json(digest)
    zone = _zone(tz)
    name = TEMPLATE_NAMES[fmt]
    try:
        template = _environment(templates, zone).get_template(name)
        out = template.render(_context(digest, zone))
    except TemplateError as e:
        where = f"{templates}/{name}" if templates else name
        raise ConfigError(f"digest template {where}: {e}") from e
    return out if fmt == "html" else _BLANK_RUNS.sub("\n\n", out)


def render_json(digest: Digest) -> str:
    return json.dumps(digest.to_json(), ensure_ascii=False, indent=2) + "\n"


def render_all(
    digest: Digest,
    *,
    subject_template: str = "{title}: {count} new matches ({period})",
    tz: str | tzinfo = "UTC",
    templates: Path | None = None,
    atom: str | None = None,
) -> Rendered:
    return Rendered(
        subject=subject_line(digest, subject_template, tz),
        text=render(digest, "text", tz=tz, templates=templates),
        html=render(digest, "html", tz=tz, templates=templates),
        markdown=render(digest, "md", tz=tz, templates=templates),
        json=render_json(digest),
        atom=atom,
    )


def atom_entries(digests: Sequence[Digest], limit: int) -> list[tuple[Digest, DigestEntry]]:
    """The latest `limit` entries across digests (newest digest first), each match once."""
    out: list[tuple[Digest, DigestEntry]] = []
    seen: set[int] = set()
    for digest in sorted(digests, key=lambda d: (d.created_at, d.id or 0), reverse=True):
        for entry in digest.entries:
            if entry.match_id not in seen and len(out) < limit:
                seen.add(entry.match_id)
                out.append((digest, entry))
    return out


def render_atom(
    channel: str,
    title: str,
    digests: Sequence[Digest],
    *,
    limit: int,
    updated: datetime,
    templates: Path | None = None,
) -> str:
    """Atom 1.0 document of the channel's latest entries, with ids stable across rewrites."""
    entries = atom_entries(digests, limit)
    feed_updated = max((d.created_at for d, _ in entries), default=updated)
    try:
        template = _environment(templates, UTC).get_template("feed.atom")
        return template.render(
            feed_id=f"{ATOM_ID_AUTHORITY}:{quote(channel, safe='')}",
            channel=channel,
            title=title,
            updated=feed_updated,
            entries=entries,
            entry_id=lambda e: f"{ATOM_ID_AUTHORITY}:{quote(channel, safe='')}/match/{e.match_id}",
        )
    except TemplateError as e:
        raise ConfigError(f"digest template feed.atom: {e}") from e
