"""The `monitor match` and `monitor eval` commands: the matcher on one item or a labelled set."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, cast

import anyio
import typer
from rich.table import Table
from rich.text import Text

from monitor.cli.common import (
    ConfigDirOption,
    console,
    fail,
    load_config_or_exit,
    print_json,
    print_problems,
    use_config_dir,
)
from monitor.errors import ConfigError, MonitorError
from monitor.evaluate import Outcome, Report, evaluate, load_eval_items, report_to_json
from monitor.match import Matcher, evidence_to_json
from monitor.settings import Config
from monitor.similarity import load_seed_index
from monitor.types import Lang, MatchResult
from monitor.watchlist import load_watchlist

_LANGS = ("en", "ru", "uk", "other")

WatchlistOption = Annotated[
    Path | None,
    typer.Option("--watchlist", help="Watchlist file [default: <config-dir>/watchlist.yaml]."),
]
CorpusOption = Annotated[
    Path | None, typer.Option("--corpus", help="Seed documents [default: matching.corpus].")
]
FormatOpt = Annotated[str, typer.Option("--format", "-f", help="text or json.")]


def build_matcher(config: Config | None, watchlist: Path | None, corpus: Path | None) -> Matcher:
    """Compile the matcher from explicit paths, else from the configuration's paths."""
    wl_path = watchlist or (config.watchlist_path if config else Path("config/watchlist.yaml"))
    corpus_dir = corpus or Path(config.settings.matching.corpus if config else "corpus")
    seeds = load_seed_index(corpus_dir) if corpus_dir.is_dir() else None
    return Matcher.compile(load_watchlist(wl_path), seeds)


def _matcher_or_exit(ctx: typer.Context, watchlist: Path | None, corpus: Path | None) -> Matcher:
    config = None if watchlist and corpus else load_config_or_exit(ctx)
    try:
        return build_matcher(config, watchlist, corpus)
    except ConfigError as e:
        print_problems(e)
        raise typer.Exit(2) from e


def match(
    ctx: typer.Context,
    text: Annotated[str | None, typer.Argument(help="Item text (the summary).")] = None,
    title: Annotated[str, typer.Option("--title", help="Item title.")] = "",
    file: Annotated[
        Path | None, typer.Option("--file", help="JSON item: title, summary, content, lang.")
    ] = None,
    url: Annotated[
        str | None, typer.Option("--url", help="Fetch a feed or page and match it.")
    ] = None,
    lang: Annotated[str | None, typer.Option("--lang", help="en, ru, uk (informational).")] = None,
    fmt: FormatOpt = "text",
    watchlist: WatchlistOption = None,
    corpus: CorpusOption = None,
    config_dir_opt: ConfigDirOption = None,
) -> None:
    """Match one item against the watchlist and show the verdict with its evidence."""
    use_config_dir(ctx, config_dir_opt)
    if fmt not in ("text", "json"):
        fail("--format: expected text or json")
    fields = {"title": title, "summary": text or "", "content": ""}
    if file is not None:
        fields = _fields_from_file(file)
    if url is not None:
        fields = _fields_from_url(ctx, url)
    if not any(fields.values()):
        fail("nothing to match: give TEXT, --title, --file or --url")
    matcher = _matcher_or_exit(ctx, watchlist, corpus)
    item_lang = cast(Lang, lang) if lang in _LANGS else None
    result = matcher.match_text(fields["title"], fields["summary"], fields["content"], item_lang)
    if fmt == "json":
        print_json(evidence_to_json(result))
    else:
        print_result(result)


def _fields_from_file(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        fail(f"{path}: cannot read a JSON item: {e}")
    if not isinstance(data, dict):
        fail(f"{path}: expected a JSON object with title, summary, content")
    return {k: str(data.get(k) or "") for k in ("title", "summary", "content")}


def _fields_from_url(ctx: typer.Context, url: str) -> dict[str, str]:
    """The first item of a feed at `url`, or the page's text when it is not a feed."""
    from monitor.fetch import Fetcher
    from monitor.normalize import html_to_text, normalize_entries
    from monitor.parse import parse_feed

    config = load_config_or_exit(ctx)

    async def get() -> bytes:
        async with Fetcher(config.settings.http) as fetcher:
            result = await fetcher.fetch(url)
        return result.body or b""

    try:
        body = anyio.run(get)
    except MonitorError as e:
        fail(f"{url}: {e}")
    try:
        feed = parse_feed(body, url=url)
        items = normalize_entries(feed, now=datetime.now(UTC), max_items=1).items
    except MonitorError:
        page = html_to_text(body.decode("utf-8", errors="replace"))
        return {"title": "", "summary": "", "content": page}
    if not items:
        fail(f"{url}: the feed has no items")
    first = items[0]
    return {"title": first.title, "summary": first.summary, "content": first.content}


def print_result(result: MatchResult) -> None:
    """The verdict, scores with parts, hits, snippet, nearest seed and notes, for a person."""
    verdict = "[bold green]MATCH[/]" if result.matched else "[bold]no match[/]"
    topics = ", ".join(result.topics) or "-"
    console.print(f"{verdict}  score {result.score:.2f}  topics: {topics}")
    if result.topic_scores:
        table = Table("topic", "score", "threshold", "parts", "notes", title="Topic scores")
        for s in result.topic_scores:
            parts = " ".join(f"{k}={v:g}" for k, v in s.parts.items() if v)
            mark = "[green]✓[/]" if s.passed else "✗"
            table.add_row(
                f"{mark} {s.topic}", f"{s.score:.2f}", f"{s.threshold:g}", parts, "; ".join(s.notes)
            )
        console.print(table)
    if result.hits:
        table = Table("kind", "target", "phrase", "field", "offsets", "text", title="Hits")
        for h in result.hits:
            table.add_row(h.kind, h.target, h.phrase, h.field, f"{h.start}-{h.end}", h.text)
        console.print(table)
    console.print(Text("snippet: ", style="bold") + Text(result.snippet))
    seed = result.nearest_seed or "-"
    console.print(f"nearest seed: {seed} (cosine {result.seed_similarity:.3f})")
    console.print(f"watchlist version: {result.watchlist_version}")
    for note in result.notes:
        console.print(Text(f"note: {note}"))


def eval_(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="JSONL file, or a directory with items.jsonl.")],
    fmt: FormatOpt = "text",
    watchlist: WatchlistOption = None,
    corpus: CorpusOption = None,
    config_dir_opt: ConfigDirOption = None,
) -> None:
    """Evaluate the matcher on a labelled set: precision, recall, F1, misses and false alarms."""
    use_config_dir(ctx, config_dir_opt)
    if fmt not in ("text", "json"):
        fail("--format: expected text or json")
    matcher = _matcher_or_exit(ctx, watchlist, corpus)
    try:
        items = load_eval_items(path)
    except ConfigError as e:
        fail(str(e), 2)
    report = evaluate(matcher, items)
    if fmt == "json":
        print_json(report_to_json(report))
    else:
        print_report(report)


def print_report(report: Report) -> None:
    table = Table("slice", "n", "precision", "recall", "F1", "false alarms", title="Evaluation")
    rows: list[tuple[str, Any]] = [("overall", report.overall)]
    rows += [(f"lang {k}", v) for k, v in report.by_lang.items()]
    rows += [(f"label {k}", v) for k, v in report.by_label.items()]
    for name, s in rows:
        table.add_row(
            name,
            str(s.n),
            f"{s.precision:.3f}",
            f"{s.recall:.3f}",
            f"{s.f1:.3f}",
            f"{s.fp} ({s.false_alarm_rate:.1%})",
        )
    console.print(table)
    console.print(f"watchlist version: {report.watchlist_version}")
    for title, outcomes in (("Misses", report.misses), ("False alarms", report.false_alarms)):
        console.print(f"\n[bold]{title}: {len(outcomes)}[/]")
        for o in outcomes:
            _print_outcome(o)


def _print_outcome(o: Outcome) -> None:
    r = o.result
    console.print(Text(f"{o.item.id} [{o.item.lang}, {o.item.label}] {o.item.title}"))
    hits = ", ".join(f"{h.target}:{h.text}@{h.field}" for h in r.hits) or "-"
    scores = ", ".join(f"{s.topic}={s.score:.2f}/{s.threshold:g}" for s in r.topic_scores) or "-"
    console.print(Text(f"    hits: {hits}\n    scores: {scores}"))
    for note in (*r.notes, *(n for s in r.topic_scores for n in s.notes)):
        console.print(Text(f"    note: {note}"))
