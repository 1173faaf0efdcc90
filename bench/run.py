"""Runs every bench scenario against ours and lemon24/reader and prints one Markdown table.

    python bench/run.py [--runs 3] [--quick] [--only cold,steady,scale,matching,digest]
                        [--profile]

Each measurement is a fresh subprocess (bench/scenarios.py), so peak RSS is that run's own;
the feed server is another subprocess (bench/server.py), its CPU time reported apart. Values
are medians over the runs; the notes under the table give each run's wall time. The table is
also written to bench/results/latest.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
sys.path.insert(0, str(BENCH))

from scenarios import CONCURRENCY  # noqa: E402
from server import HOSTS, ServerProcess, start_server_process  # noqa: E402

SCENARIOS = ("cold", "steady", "scale", "matching", "digest")


@dataclass(frozen=True)
class Sizes:
    feeds: int
    scale_feeds: int
    scale_items: float
    match_items: int
    digest_matches: int


FULL = Sizes(feeds=500, scale_feeds=5000, scale_items=0.1, match_items=3000, digest_matches=10_000)
QUICK = Sizes(feeds=100, scale_feeds=1000, scale_items=0.1, match_items=600, digest_matches=2000)


@dataclass
class Sample:
    """One run of one side: this process's numbers plus the server's CPU during it."""

    wall_s: float
    cpu_s: float
    items: int
    peak_mb: float
    server_cpu_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Row:
    scenario: str
    ours: list[Sample] = field(default_factory=list)
    reader: list[Sample] = field(default_factory=list)
    note: str = ""


# --- running scenario processes ------------------------------------------------------------


def worker(args: Sequence[str]) -> dict[str, Any]:
    """Run bench/scenarios.py in a fresh interpreter; its last stdout line is the JSON result."""
    command = [sys.executable, str(BENCH / "scenarios.py"), *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not done.stdout.strip():
        raise RuntimeError(f"{' '.join(args[:1])} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def server_cpu(server: ServerProcess) -> float:
    stats = server.stats()
    return stats["user_s"] + stats["sys_s"]


def sample(server: ServerProcess | None, args: Sequence[str]) -> Sample:
    before = server_cpu(server) if server else 0.0
    result = worker(args)
    after = server_cpu(server) if server else 0.0
    return Sample(
        result["wall_s"],
        result["cpu_s"],
        result["items"],
        result["peak_mb"],
        after - before,
        result["extra"],
    )


def ours_args(
    server: ServerProcess, feeds: int, work: Path, *flags: str, **extra: Path
) -> list[str]:
    args = ["ours", "--base", server.base, "--feeds", str(feeds), "--work", str(work)]
    args += ["--db", str(work / "monitor.db"), *flags]
    for key, value in extra.items():
        args += [f"--{key}", str(value)]
    return args


def reader_args(server: ServerProcess, feeds: int, work: Path, **extra: Path) -> list[str]:
    args = ["reader", "--base", server.base, "--feeds", str(feeds), "--db", str(work / "reader.db")]
    for key, value in extra.items():
        args += [f"--{key}", str(value)]
    return args


def fresh(tmp: Path, name: str) -> Path:
    path = tmp / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- scenarios ------------------------------------------------------------------------------


@dataclass
class Primed:
    ours: Path
    reader: Path


def cold(
    server: ServerProcess,
    feeds: int,
    runs: int,
    tmp: Path,
    label: str,
    *,
    clustering: bool,
    pairs: int = 0,
) -> tuple[Row, Row, Primed]:
    """Every feed new: fetch, parse, normalise, dedupe, match, store, cluster stories; and the
    same cycle with story clustering off (ours only), so what clustering adds is measured.
    The first run's databases become the starting point of the steady scenario.

    Our run with clustering sits between the other two of its round, so it shares the
    machine's state of the moment with both it is divided by; the order turns round every
    other round (off, ours, reader; then reader, ours, off), so that neither comparison
    always has the same side first.

    Then `pairs` more pairs of ours with and without clustering, without reader (on, off;
    then off, on): what clustering adds is a difference of a few tenths of a second between
    runs whose own noise is as large, so it is taken from more pairs than the rounds give."""
    row, no_stories = Row(label), Row(f"{label}, story clustering off")
    server.set_state(0)
    sides = ["off", "on", "reader"] if clustering else ["on", "reader"]
    for n in range(runs):
        for side in sides if n % 2 == 0 else reversed(sides):
            _cold_run(server, feeds, tmp, label, n, side, row, no_stories)
    if not clustering:
        return row, no_stories, _primed(tmp, label)
    # The extra pairs stay out of the table's rows, whose medians are the rounds' (so that
    # rows 1 and 1b compare runs taken alike); the note counts every pair.
    more, more_off = Row(f"{label}, pair"), Row(f"{label}, pair off")
    for n in range(runs, runs + pairs):
        for side in ("on", "off") if n % 2 == 0 else ("off", "on"):
            _cold_run(server, feeds, tmp, label, n, side, more, more_off)
    on, off = [*row.ours, *more.ours], [*no_stories.ours, *more_off.ours]
    no_stories.note = clustering_note(on, off, runs)
    if pairs:
        with_, without = (" / ".join(f"{s.wall_s:.2f}" for s in r.ours) for r in (more, more_off))
        no_stories.note += f"; wall s of the extra pairs: {with_} with, {without} without"
    return row, no_stories, _primed(tmp, label)


def _cold_run(
    server: ServerProcess,
    feeds: int,
    tmp: Path,
    label: str,
    n: int,
    side: str,
    row: Row,
    off: Row,
) -> None:
    """Round `n`'s cold run of one side: "on" (ours, into `row`), "off" (ours without
    clustering, into `off`) or "reader" (into `row`)."""
    if side == "reader":
        work = fresh(tmp, f"{label}-reader-{n}")
        runs, args, name = row.reader, reader_args(server, feeds, work), "reader"
    elif side == "on":
        work = fresh(tmp, f"{label}-ours-{n}")
        runs, args, name = row.ours, ours_args(server, feeds, work), "ours"
    else:
        work = fresh(tmp, f"{label}-ours-no-stories-{n}")
        runs, args = off.ours, ours_args(server, feeds, work, "--no-stories")
        name = "ours without stories"
    runs.append(sample(server, args))
    log(f"{label} {name} run {n + 1}: {runs[-1].wall_s:.2f} s")


def clustering_note(on: Sequence[Sample], off: Sequence[Sample], rounds: int | None = None) -> str:
    """What clustering adds: from the medians of the runs with and without it, and pair by
    pair (the two runs of a pair ran one right after the other), with the median of those.
    The first `rounds` pairs (all if None) are the cold rounds', beside reader's runs."""
    added = med(on, lambda s: s.wall_s) / med(off, lambda s: s.wall_s) - 1
    note = f"story clustering adds {added:.0%} to the cold cycle's wall time"
    if len(on) == 1:
        return note
    pairs = [a.wall_s / b.wall_s - 1 for a, b in zip(on, off, strict=True)]
    listed = " / ".join(f"{p:.0%}" for p in pairs)
    median = statistics.median(pairs)
    if rounds is None or rounds == len(pairs):
        return f"{note} (round by round: {listed}; their median {median:.0%})"
    in_rounds = med(on[:rounds], lambda s: s.wall_s) / med(off[:rounds], lambda s: s.wall_s) - 1
    return (
        f"{note}, medians of {len(pairs)} runs each way ({rounds} in the cold rounds, "
        f"{len(pairs) - rounds} in pairs without reader; pair by pair: {listed}; "
        f"their median {median:.0%}; the rounds' alone, as in the table, {in_rounds:.0%})"
    )


def _primed(tmp: Path, label: str) -> Primed:
    return Primed(tmp / f"{label}-ours-0" / "monitor.db", tmp / f"{label}-reader-0" / "reader.db")


def steady(
    server: ServerProcess, feeds: int, runs: int, tmp: Path, primed: Primed, label: str
) -> Row:
    """From the cold state: 90 % of feeds answer 304, 10 % have 3 new items each."""
    changed = server.set_state(1)
    row = Row(label, note=f"{changed} of {feeds} feeds changed (3 new items each)")
    for n in range(runs):
        work = fresh(tmp, f"{label}-ours-{n}")
        row.ours.append(sample(server, ours_args(server, feeds, work, primed=primed.ours)))
        log(f"{label} ours run {n + 1}: {row.ours[-1].wall_s:.2f} s")
        work_r = fresh(tmp, f"{label}-reader-{n}")
        row.reader.append(sample(server, reader_args(server, feeds, work_r, primed=primed.reader)))
        log(f"{label} reader run {n + 1}: {row.reader[-1].wall_s:.2f} s")
    server.set_state(0)
    return row


def matching(sizes: Sizes, runs: int) -> list[Row]:
    rows = []
    # 20,000: the shipped watchlist plus names that never occur (the cost of phrases alone).
    for phrases in (150, 1000, 5000, 20_000):
        row = Row(f"4. matching, {phrases} phrases")
        for _ in range(runs):
            args = ["matching", "--phrases", str(phrases), "--items", str(sizes.match_items)]
            row.ours.append(sample(None, args))
        extra = row.ours[0].extra
        explained = med(row.ours, lambda s: float(s.extra["explained_items_per_s"]))
        row.note = (
            f"{extra['phrases']} phrases compiled; {extra['matched_share']:.0%} matched; "
            f"items/s through `Matcher.record` (the pipeline's path); explained "
            f"(`match_text`): {explained:,.0f} items/s"
        )
        log(f"matching {phrases}: {extra['items_per_s']:.0f} items/s")
        rows.append(row)
    return rows


def digest(sizes: Sizes, runs: int) -> Row:
    row = Row(f"5. digest of {sizes.digest_matches:,} matches")
    for _ in range(runs):
        row.ours.append(sample(None, ["digest", "--matches", str(sizes.digest_matches)]))
    row.note = f"{row.ours[0].extra['entries']} entries; build + text/HTML/Markdown/JSON"
    log(f"digest: {row.ours[-1].wall_s:.2f} s")
    return row


# --- the table ------------------------------------------------------------------------------


def med(samples: Sequence[Sample], key: Callable[[Sample], float]) -> float:
    return statistics.median(key(s) for s in samples)


def rate(samples: Sequence[Sample]) -> float:
    if samples and "items_per_s" in samples[0].extra:
        return med(samples, lambda s: float(s.extra["items_per_s"]))
    return med(samples, lambda s: s.items / s.wall_s if s.wall_s else 0.0)


def cells(samples: Sequence[Sample], *, with_rate: bool = True) -> list[str]:
    if not samples:
        return ["–"] * (4 if with_rate else 3)
    out = [f"{med(samples, lambda s: s.wall_s):.2f}", f"{med(samples, lambda s: s.cpu_s):.2f}"]
    if with_rate:
        out.append(f"{rate(samples):,.0f}")
    out.append(f"{med(samples, lambda s: s.peak_mb):.0f}")
    return out


def ratio(row: Row) -> str:
    if not row.ours or not row.reader:
        return "–"
    ours = med(row.ours, lambda s: s.wall_s)
    theirs = med(row.reader, lambda s: s.wall_s)
    return f"{ours / theirs:.2f}" if theirs else "–"


def server_cell(row: Row) -> str:
    samples = row.ours + row.reader
    if not row.ours or not row.reader or all(s.server_cpu_s == 0 for s in samples):
        return "–"
    ours = med(row.ours, lambda s: s.server_cpu_s)
    theirs = med(row.reader, lambda s: s.server_cpu_s)
    return f"{ours:.2f} / {theirs:.2f}"


def table(rows: Sequence[Row]) -> str:
    head = (
        "| scenario | ours wall s | ours CPU s | ours items/s | ours peak MB "
        "| reader wall s | reader CPU s | reader items/s | reader peak MB "
        "| ours/reader wall | server CPU s (ours / reader) |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    lines = [head]
    for row in rows:
        lines.append(
            "| "
            + " | ".join(
                [row.scenario, *cells(row.ours), *cells(row.reader), ratio(row), server_cell(row)]
            )
            + " |"
        )
    return "\n".join(lines)


def notes(rows: Sequence[Row]) -> str:
    out = []
    for row in rows:
        bits = [row.note] if row.note else []
        if len(row.ours) > 1:
            bits.append(f"wall s by run: {_walls(row)}")
        if row.ours and "line" in row.ours[0].extra:
            bits.append(f"ours: {row.ours[0].extra['line']}")
        if row.reader and row.reader[0].extra.get("failed"):
            bits.append(f"reader: {row.reader[0].extra['failed']} feeds failed")
        if bits:
            out.append(f"- {row.scenario}: " + "; ".join(bits))
    return "\n".join(out)


def _walls(row: Row) -> str:
    """Each run's wall time, ours then reader's: how far apart the runs behind a median were;
    and with several runs of both, the ratio run by run (each of ours ran right next to the
    reader run it is divided by, so the pair shared the machine's speed of the moment)."""
    ours = " / ".join(f"{s.wall_s:.2f}" for s in row.ours)
    reader = " / ".join(f"{s.wall_s:.2f}" for s in row.reader)
    text = f"ours {ours}" + (f", reader {reader}" if reader else "")
    if len(row.ours) > 1 and len(row.ours) == len(row.reader):
        pairs = zip(row.ours, row.reader, strict=True)
        text += "; ours/reader by run " + " / ".join(f"{a.wall_s / b.wall_s:.2f}" for a, b in pairs)
    return text


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def header(runs: int, sizes: Sizes, cold_runs: int, pairs: int = 0) -> str:
    import reader

    load = os.getloadavg()
    return (
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {cpu_model()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()} ({platform.system()}); "
        f"reader {reader.__version__}; load average at start {load[0]:.1f}. "
        f"Median of {runs} run(s){_cold_runs_note(runs, cold_runs, pairs)}. "
        f"Both sides: SQLite, {CONCURRENCY} concurrent fetches "
        f"(ours: http.concurrency = {CONCURRENCY}, http.per_host = 2 as shipped; "
        f"reader: update_feeds(workers={CONCURRENCY}, scheduled=False)); feeds spread over "
        f"{HOSTS} loopback hosts. "
        f"Feeds: {sizes.feeds} × 20–100 items (cold, steady); {sizes.scale_feeds} × "
        f"{round(20 * sizes.scale_items)}–{round(100 * sizes.scale_items)} items (scale). "
        "ours/reader < 1 means ours is faster."
    )


def _cold_runs_note(runs: int, cold_runs: int, pairs: int) -> str:
    parts = [f"{cold_runs} of the cold scenario"] if cold_runs != runs else []
    if pairs:
        parts.append(f"and {pairs} more pairs with and without clustering, for its note")
    return f" ({', '.join(parts)})" if parts else ""


# --- main -----------------------------------------------------------------------------------


#: Cold rounds in a full run at least: what clustering adds is the noisiest figure of the
#: bench (round by round −2 % to 56 % in one run of three rounds on 2026-12-07).
COLD_RUNS = 5
#: Pairs of cold runs with and without clustering (no reader) added to the rounds' in a full
#: run, for the figure of what clustering adds (`cold`).
CLUSTERING_PAIRS = 6


def run(args: argparse.Namespace) -> str:
    sizes = QUICK if args.quick else FULL
    runs = args.runs if args.runs is not None else (1 if args.quick else 3)
    cold_runs = runs if args.quick or args.runs is not None else max(runs, COLD_RUNS)
    pairs = args.pairs if args.pairs is not None else (0 if args.quick else CLUSTERING_PAIRS)
    only = set(args.only.split(",")) if args.only else set(SCENARIOS)
    rows: list[Row] = []
    top = header(runs, sizes, cold_runs, pairs if "cold" in only else 0)
    tmp = Path(tempfile.mkdtemp(prefix="monitor-bench-"))
    try:
        if only & {"cold", "steady"}:
            rows += feed_scenarios(
                sizes.feeds, (cold_runs, runs, pairs), tmp, only, args.profile, numbered=True
            )
        if "scale" in only:
            rows += scale_scenario(sizes, runs, tmp)
        if "matching" in only:
            rows += matching(sizes, runs)
        if "digest" in only:
            rows.append(digest(sizes, runs))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return f"{top}\n\n{table(rows)}\n\n{notes(rows)}\n"


def feed_scenarios(
    feeds: int,
    runs: tuple[int, int, int],
    tmp: Path,
    only: set[str],
    profile: bool,
    *,
    numbered: bool,
) -> list[Row]:
    """The cold scenario (`runs[0]` rounds, and `runs[2]` more pairs with and without
    clustering) and the steady one (`runs[1]` runs) on one feed server."""
    cold_runs, steady_runs, pairs = runs
    log(f"starting the feed server ({feeds} feeds)")
    server = start_server_process(feeds, base_time=bench_time())
    try:
        measure = "cold" in only
        row, no_stories, primed = cold(
            server, feeds, cold_runs, tmp, "1. cold", clustering=measure, pairs=pairs
        )
        row.scenario = f"1. cold, {feeds} feeds"
        no_stories.scenario = f"1b. cold, {feeds} feeds, story clustering off"
        rows = [row, no_stories] if measure else []
        if "steady" in only:
            srow = steady(server, feeds, steady_runs, tmp, primed, "2. steady")
            srow.scenario = f"2. steady, {feeds} feeds"
            rows.append(srow)
        if profile:
            profile_cold(server, feeds, tmp)
        return rows
    finally:
        server.close()


def bench_time() -> datetime:
    """The hour before the bench runs: the newest generated items are from then, so they are
    fresh for the pipeline's time windows (72 h for stories) whatever day it is."""
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)


def scale_scenario(sizes: Sizes, runs: int, tmp: Path) -> list[Row]:
    feeds = sizes.scale_feeds
    log(f"starting the feed server ({feeds} feeds; rendering takes a while)")
    server = start_server_process(feeds, items_scale=sizes.scale_items, base_time=bench_time())
    try:
        log("priming both sides (one cold run each, reported as scale priming)")
        prime, _, primed = cold(server, feeds, 1, tmp, "scale-prime", clustering=False)
        prime.scenario = f"3a. scale priming (cold), {feeds} feeds"
        row = steady(server, feeds, runs, tmp, primed, "3. scale")
        row.scenario = f"3. scale steady, {feeds} feeds"
        return [row, prime]
    finally:
        server.close()


def profile_cold(server: ServerProcess, feeds: int, tmp: Path) -> None:
    """Sample the cold scenario with py-spy (every thread and worker process), or with
    pyinstrument (main thread only) when py-spy is missing."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    server.set_state(0)
    work = fresh(tmp, "profile")
    target = RESULTS / "profile-cold.txt"
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        worker(ours_args(server, feeds, work, profile=target))
    else:
        raw = RESULTS / "profile-cold.raw"
        command = [spy, "record", "--format", "raw", "--rate", "100", "--subprocesses"]
        command += ["-o", str(raw), "--", sys.executable, str(BENCH / "scenarios.py")]
        command += ours_args(server, feeds, work)
        subprocess.run(command, capture_output=True, check=True)
        target.write_text(summarise_profile(raw), encoding="utf-8")
    log(f"profile of the cold scenario written to {target}")


def _frame_name(frame: str) -> str:
    name, _, where = frame.partition(" (")
    path = where.split(":", 1)[0]
    return f"{name} ({'/'.join(path.split('/')[-2:])})" if where else frame


def summarise_profile(raw: Path, top: int = 40) -> str:
    """py-spy raw stacks → the functions with the largest inclusive and self shares of CPU."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(encoding="utf-8").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        names = [_frame_name(f) for f in stack.split(";")[1:]]  # first frame: the process
        total += int(count)
        for name in set(names):
            inclusive[name] += int(count)
        if names:
            own[names[-1]] += int(count)
    lines = [f"CPU samples: {total} (all threads and processes, 100 Hz)", "", "inclusive:"]
    lines += [f"{n / total:6.1%}  {name}" for name, n in inclusive.most_common(top)]
    lines += ["", "self:"]
    lines += [f"{n / total:6.1%}  {name}" for name, n in own.most_common(top // 2)]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs", type=int, default=None, help=f"runs per measurement (3; cold {COLD_RUNS})"
    )
    parser.add_argument(
        "--pairs",
        type=int,
        default=None,
        help=f"cold pairs with and without clustering beyond the rounds ({CLUSTERING_PAIRS})",
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes, 1 run")
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(SCENARIOS)}")
    parser.add_argument("--profile", action="store_true", help="profile the cold scenario")
    args = parser.parse_args(argv)
    report = run(args)
    print(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.md").write_text(report, encoding="utf-8")


if __name__ == "__main__":
    main()
