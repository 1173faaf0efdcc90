"""Benchmark: how long the fetcher takes for N fetches of a 60-item feed from loopback.

    .venv/bin/python -m bench.bench_fetch [--feeds 500] [--concurrency 20] [--hosts 10]

Feeds are spread over `--hosts` loopback addresses (127.0.0.1, 127.0.0.2, ...) served by the
threaded test server (tests/feedserver.py) in a child process, so the per-host limit (2) and
the global limit both apply and the server never competes for this process's GIL. The CPU
time printed is the fetching process's alone.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import resource
import time
from multiprocessing.connection import Connection

from monitor.fetch import Fetcher
from monitor.settings import HttpSettings
from tests.feedserver import FeedServer


def sixty_item_feed() -> bytes:
    items = "".join(
        f"<item><guid>urn:item:{i}</guid><title>Talks round {i}: envoys weigh a ceasefire</title>"
        f"<link>https://news.example.org/talks/{i}</link>"
        f"<description>{'Delegations met again to discuss the terms. ' * 8}</description>"
        f"<pubDate>Wed, 05 Mar 2025 10:{i % 60:02d}:00 GMT</pubDate></item>"
        for i in range(60)
    )
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Bench</title>'
        f"{items}</channel></rss>"
    ).encode()


async def run(urls: list[str], settings: HttpSettings) -> tuple[float, float, int]:
    wall, cpu = time.perf_counter(), time.process_time()
    async with Fetcher(settings) as fetcher:
        results = await asyncio.gather(*(fetcher.fetch(u) for u in urls))
    size = sum(len(r.body or b"") for r in results)
    return time.perf_counter() - wall, time.process_time() - cpu, size


def serve(hosts: list[str], feeds: int, encoding: str | None, pipe: Connection) -> None:
    """Child process: serve `feeds` copies of the feed until told to stop."""
    body = sixty_item_feed()
    with FeedServer(hosts=hosts) as server:
        for i in range(feeds):
            server.add(f"/feed{i}.xml", body, encoding=encoding)
        pipe.send(server.port)
        pipe.recv()
        pipe.send(sum(server.hits(f"/feed{i}.xml") for i in range(feeds)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--feeds", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--per-host", type=int, default=2)
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--encoding", choices=["identity", "gzip", "br"], default="identity")
    args = parser.parse_args()
    hosts = [f"127.0.0.{i + 1}" for i in range(args.hosts)]
    settings = HttpSettings(
        allow_private_networks=("127.0.0.0/8",),
        concurrency=args.concurrency,
        per_host=args.per_host,
    )
    encoding = None if args.encoding == "identity" else args.encoding
    ours, theirs = multiprocessing.Pipe()
    child = multiprocessing.Process(
        target=serve, args=(hosts, args.feeds, encoding, theirs), daemon=True
    )
    child.start()
    port = ours.recv()
    urls = [f"http://{hosts[i % len(hosts)]}:{port}/feed{i}.xml" for i in range(args.feeds)]
    wall, cpu, size = asyncio.run(run(urls, settings))
    ours.send("stop")
    hits = ours.recv()
    child.join(timeout=10)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{args.feeds} fetches of a {len(sixty_item_feed())}-byte 60-item feed ({args.encoding}), "
        f"concurrency {args.concurrency}, per-host {args.per_host}, {args.hosts} hosts: "
        f"{wall:.2f} s wall ({args.feeds / wall:.0f}/s), fetcher CPU {cpu:.2f} s "
        f"({cpu / args.feeds * 1000:.1f} ms/fetch), {size / 1e6:.1f} MB decoded, "
        f"server saw {hits} requests, peak RSS {rss_mb:.0f} MB"
    )


if __name__ == "__main__":
    main()
