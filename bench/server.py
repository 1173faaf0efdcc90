"""Loopback HTTP/1.1 server for the bench feeds: keep-alive, ETag/Last-Modified, 304 answers.

Run it as a subprocess (it then never shares the measured process's GIL)::

    python bench/server.py --feeds 500 [--seed 1] [--items-scale 1.0]

It prints `READY <port>` once every body is rendered. Feed `i` is at `/f/<i>`; control paths:
`/_state?gen=G&every=E&k=K` moves every E-th feed G×K items forward (0 resets), `/_stats`
returns its own CPU time and request counts as JSON. `python bench/server.py --selftest`
measures how many requests per second it answers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

import feedgen

#: Feeds that change in the steady state are those with index % CHANGE_EVERY == CHANGE_PHASE.
CHANGE_PHASE = 7


@dataclass
class Response:
    """A pre-built answer: status line + headers, and the body."""

    etag: str
    last_modified: str
    full: bytes
    not_modified: bytes


@dataclass
class FeedStore:
    """Generated feeds and their pre-rendered answers."""

    feeds: list[feedgen.GenFeed]
    answers: dict[int, Response] = field(default_factory=dict)
    requests: int = 0
    not_modified: int = 0

    def render(self, index: int) -> None:
        self.answers[index] = build_response(self.feeds[index])

    def set_state(self, gen: int, every: int, k: int) -> int:
        """Every `every`-th feed advanced by gen×k items from its initial state."""
        changed = 0
        for i, feed in enumerate(self.feeds):
            if i % every != CHANGE_PHASE % every:
                continue
            wanted = gen * k
            if feed.offset != wanted:
                self.feeds[i] = feedgen.new_items(feed, wanted - feed.offset)
                self.render(i)
                changed += 1
        return changed


def build_response(feed: feedgen.GenFeed) -> Response:
    body = feedgen.render(feed)
    common = (
        f"ETag: {feed.etag}\r\nLast-Modified: {feed.last_modified}\r\nCache-Control: no-cache\r\n"
    )
    full = (
        f"HTTP/1.1 200 OK\r\nContent-Type: {feedgen.content_type(feed)}\r\n"
        f"Content-Length: {len(body)}\r\n{common}\r\n"
    ).encode("ascii") + body
    not_modified = f"HTTP/1.1 304 Not Modified\r\n{common}Content-Length: 0\r\n\r\n".encode("ascii")
    return Response(feed.etag, feed.last_modified, full, not_modified)


def _simple(status: str, body: bytes, content_type: str = "application/json") -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


NOT_FOUND = _simple("404 Not Found", b"not found\n", "text/plain")
BAD_REQUEST = _simple("400 Bad Request", b"bad request\n", "text/plain")


def _headers(block: bytes) -> dict[bytes, bytes]:
    out: dict[bytes, bytes] = {}
    for line in block.split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        if sep:
            out[name.strip().lower()] = value.strip()
    return out


class FeedProtocol(asyncio.Protocol):
    """One client connection; requests are answered in order, the connection kept open."""

    def __init__(self, store: FeedStore) -> None:
        self.store = store
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            block, self.buffer = self.buffer[:end], self.buffer[end + 4 :]
            answer, close = self.answer(block)
            assert self.transport is not None
            self.transport.write(answer)
            if close:
                self.transport.close()
                return

    def answer(self, block: bytes) -> tuple[bytes, bool]:
        request_line = block.split(b"\r\n", 1)[0].split(b" ")
        if len(request_line) != 3:
            return BAD_REQUEST, True
        headers = _headers(block)
        close = headers.get(b"connection", b"").lower() == b"close"
        target = request_line[1].decode("ascii", "replace")
        if target.startswith("/f/"):
            return self.feed(target[3:], headers), close
        return self.control(target), close

    def feed(self, name: str, headers: dict[bytes, bytes]) -> bytes:
        store = self.store
        try:
            answer = store.answers[int(name)]
        except (ValueError, KeyError):
            return NOT_FOUND
        store.requests += 1
        inm = headers.get(b"if-none-match")
        ims = headers.get(b"if-modified-since")
        fresh = (
            inm.decode("latin-1") == answer.etag
            if inm is not None
            else ims is not None and ims.decode("latin-1") == answer.last_modified
        )
        if fresh:
            store.not_modified += 1
            return answer.not_modified
        return answer.full

    def control(self, target: str) -> bytes:
        parts = urlsplit(target)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if parts.path == "/_stats":
            usage = resource.getrusage(resource.RUSAGE_SELF)
            stats = {
                "user_s": usage.ru_utime,
                "sys_s": usage.ru_stime,
                "requests": self.store.requests,
                "not_modified": self.store.not_modified,
                "maxrss_mb": usage.ru_maxrss / 1024,
            }
            return _simple("200 OK", json.dumps(stats).encode())
        if parts.path == "/_state":
            changed = self.store.set_state(
                int(query.get("gen", "0")), int(query.get("every", "10")), int(query.get("k", "3"))
            )
            return _simple("200 OK", json.dumps({"changed": changed}).encode())
        return NOT_FOUND


def build_store(
    n_feeds: int, seed: int, items_scale: float, base_time: datetime = feedgen.BASE_TIME
) -> FeedStore:
    store = FeedStore(feedgen.make_feeds(n_feeds, seed, items_scale, base_time))
    for i in range(n_feeds):
        store.render(i)
    return store


#: The feeds are spread over this many loopback addresses (127.0.0.1 to 127.0.0.10, one
#: port), as real feeds come from many hosts: clients then run with their shipped per-host
#: limits instead of one pool of 20 connections to a single host.
HOSTS = 10


def feed_url(port: int, index: int) -> str:
    """Feed `index`, on loopback address 127.0.0.(1 + index % HOSTS)."""
    return f"http://127.0.0.{1 + index % HOSTS}:{port}/f/{index}"


async def serve(store: FeedStore, port: int, ready: threading.Event | None = None) -> None:
    loop = asyncio.get_running_loop()
    servers = [
        await loop.create_server(
            lambda: FeedProtocol(store), "127.0.0.1", port, backlog=1024, reuse_address=True
        )
    ]
    bound = servers[0].sockets[0].getsockname()[1]
    for host in range(2, HOSTS + 1):
        servers.append(
            await loop.create_server(
                lambda: FeedProtocol(store), f"127.0.0.{host}", bound, backlog=1024
            )
        )
    print(f"READY {bound}", flush=True)
    if ready is not None:
        ready.set()
    await asyncio.gather(*(server.serve_forever() for server in servers))


# --- running it -------------------------------------------------------------------------


@dataclass
class ServerProcess:
    """A bench server in a subprocess; `url(i)` is feed i, `stats()` its own counters."""

    process: subprocess.Popen[str]
    port: int

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, index: int) -> str:
        return feed_url(self.port, index)

    def get(self, path: str) -> dict[str, float]:
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        try:
            conn.request("GET", path)
            data: dict[str, float] = json.loads(conn.getresponse().read())
            return data
        finally:
            conn.close()

    def stats(self) -> dict[str, float]:
        return self.get("/_stats")

    def set_state(self, gen: int, every: int = 10, k: int = 3) -> int:
        return int(self.get(f"/_state?gen={gen}&every={every}&k={k}")["changed"])

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_server_process(
    n_feeds: int,
    seed: int = 1,
    items_scale: float = 1.0,
    base_time: datetime = feedgen.BASE_TIME,
) -> ServerProcess:
    """Start the server in a subprocess and wait until it has rendered every feed."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--feeds",
        str(n_feeds),
        "--seed",
        str(seed),
        "--items-scale",
        str(items_scale),
        "--base-time",
        base_time.isoformat(),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("READY "):
        process.kill()
        raise RuntimeError(f"bench server did not start: {line!r}")
    return ServerProcess(process, int(line.split()[1]))


def start_server_thread(store: FeedStore) -> int:
    """Serve `store` from a daemon thread of this process (shares the GIL); returns the port."""
    ready = threading.Event()
    holder: dict[str, int] = {}

    def run() -> None:
        async def main() -> None:
            loop = asyncio.get_running_loop()
            server = await loop.create_server(lambda: FeedProtocol(store), "127.0.0.1", 0)
            holder["port"] = server.sockets[0].getsockname()[1]
            ready.set()
            await server.serve_forever()

        asyncio.run(main())

    threading.Thread(target=run, daemon=True, name="bench-server").start()
    ready.wait(30)
    return holder["port"]


# --- self-test: requests per second ------------------------------------------------------


def _recv_answer(sock: socket.socket, pending: bytes) -> bytes:
    """Read one response (headers + Content-Length body); return bytes left over."""
    while (end := pending.find(b"\r\n\r\n")) < 0:
        pending += sock.recv(65536)
    head, rest = pending[:end], pending[end + 4 :]
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    while len(rest) < length:
        rest += sock.recv(max(65536, length - len(rest)))
    return rest[length:]


def _client(port: int, paths: Sequence[str], etags: dict[str, str]) -> None:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    pending = b""
    with sock:
        for path in paths:
            extra = f"If-None-Match: {etags[path]}\r\n" if path in etags else ""
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\n{extra}\r\n".encode())
            pending = _recv_answer(sock, pending)


def _load(port: int, n_feeds: int, total: int, clients: int, etags: dict[str, str]) -> None:
    per_client = total // clients
    threads = [
        threading.Thread(
            target=_client,
            args=(port, [f"/f/{(c * per_client + j) % n_feeds}" for j in range(per_client)], etags),
        )
        for c in range(clients)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def selftest(n_feeds: int = 500, total: int = 4000) -> dict[str, float]:
    """Requests per second (200 and 304 answers; 1 and 8 keep-alive connections) from a client
    in another process, with the server's CPU share of the wall time."""
    server = start_server_process(n_feeds)
    try:
        results: dict[str, float] = {}
        etags = {f"/f/{f.index}": f.etag for f in feedgen.make_feeds(n_feeds)}
        for label, conditional in (("200", {}), ("304", etags)):
            for clients in (1, 8):
                before = server.stats()
                started = time.perf_counter()
                _load(server.port, n_feeds, total, clients, conditional)
                wall = time.perf_counter() - started
                after = server.stats()
                cpu = after["user_s"] + after["sys_s"] - before["user_s"] - before["sys_s"]
                key = f"{label}_x{clients}"
                results[f"req_per_s_{key}"] = round(total / wall)
                results[f"server_cpu_share_{key}"] = round(cpu / wall, 2)
        return results
    finally:
        server.close()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--items-scale", type=float, default=1.0)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--base-time",
        type=datetime.fromisoformat,
        default=feedgen.BASE_TIME,
        help="publication date of each feed's newest item (ISO 8601 with offset)",
    )
    parser.add_argument("--selftest", action="store_true")
    args = parser.parse_args(argv)
    if args.selftest:
        print(json.dumps(selftest(args.feeds), indent=2))
        return
    store = build_store(args.feeds, args.seed, args.items_scale, args.base_time)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(store, args.port))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
