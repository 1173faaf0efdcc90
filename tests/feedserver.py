"""A small real HTTP/1.1 server on loopback that tests register feed routes on.

Usage (the `feed_server` fixture gives a started server on 127.0.0.1, ephemeral port)::

    def test_poll(feed_server: FeedServer) -> None:
        feed_server.add("/feed.xml", body=rss_bytes, etag='"v1"')
        url = feed_server.url("/feed.xml")
        ...
        assert feed_server.hits("/feed.xml") == 1
        assert feed_server.requests("/feed.xml")[0]["user-agent"].startswith("storywatch")

`add(path, ...)` options (all keyword, all optional):

- ``body``: bytes sent as is (before ``encoding``); ``status``: the status code (200);
  ``headers``: extra response headers (a ``Date`` given here replaces the automatic one);
  ``content_type``: defaults to ``application/rss+xml; charset=utf-8``.
- ``etag`` / ``last_modified``: sent, and honoured with 304 on If-None-Match /
  If-Modified-Since.
- ``encoding``: ``"gzip"``, ``"deflate"`` or ``"br"``: the body is compressed once at ``add``.
- ``redirect``: a Location (absolute, or a path on the same server); status 302 unless given.
- ``retry_after``: the Retry-After header value (seconds or an HTTP date).
- ``delay``: seconds to wait before answering (to observe concurrency).
- ``drip``: seconds between single body bytes (a slow server).
- ``stream``: a zero-argument callable returning an iterable of byte chunks, sent with
  chunked transfer encoding (for bodies too large to hold, e.g. compression bombs);
  headers such as Content-Encoding go in ``headers``.

Routes match on the path without the query string. Unknown paths answer 404.
Statistics: ``hits(path)``, ``requests(path)`` (request headers, lower-cased names),
``max_concurrent`` (most requests handled at once since start or ``reset_stats()``).
``FeedServer(hosts=("127.0.0.1", "127.0.0.2"))`` listens on several loopback addresses with
the same port, so tests can tell hosts apart; ``url(path, host=...)`` picks one.
``resolving({"news.example.com": "127.0.0.1"})``, monkeypatched over ``anyio.getaddrinfo``,
gives tests host names on loopback.
"""

from __future__ import annotations

import gzip
import socket
import ssl
import sys
import threading
import time
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import anyio
import brotli  # type: ignore[import-untyped]
import pytest

DEFAULT_CONTENT_TYPE = "application/rss+xml; charset=utf-8"
_REASONS = {200: "OK", 301: "Moved Permanently", 302: "Found", 304: "Not Modified"}


@dataclass(frozen=True)
class Route:
    """How the server answers one path."""

    body: bytes = b""
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None
    delay: float = 0.0
    drip: float | None = None
    stream: Callable[[], Iterable[bytes]] | None = None


def _compress(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.compress(body, mtime=0)
    if encoding == "deflate":
        return zlib.compress(body)
    if encoding == "br":
        return bytes(brotli.compress(body))
    raise ValueError(f"unknown encoding {encoding!r}")


def _not_modified(route: Route, request_headers: Mapping[str, str]) -> bool:
    if route.etag is not None and (inm := request_headers.get("if-none-match")):
        return route.etag in [tag.strip() for tag in inm.split(",")] or inm.strip() == "*"
    if route.last_modified is not None and (ims := request_headers.get("if-modified-since")):
        try:
            return parsedate_to_datetime(ims) >= parsedate_to_datetime(route.last_modified)
        except (TypeError, ValueError):
            return False
    return False


class FeedServer:
    """Threaded HTTP/1.1 keep-alive server on loopback; see the module docstring."""

    def __init__(
        self, hosts: Iterable[str] = ("127.0.0.1",), tls: ssl.SSLContext | None = None
    ) -> None:
        self.hosts = tuple(hosts)
        #: Server-side TLS settings: the server speaks HTTPS when given.
        self.tls = tls
        self.port = 0
        self._routes: dict[str, Route] = {}
        self._hits: defaultdict[str, int] = defaultdict(int)
        self._requests: defaultdict[str, list[dict[str, str]]] = defaultdict(list)
        self._lock = threading.Lock()
        self._in_flight = 0
        self.max_concurrent = 0
        #: TCP connections accepted so far.
        self.connections = 0
        self.stopping = threading.Event()
        self._servers: list[ThreadingHTTPServer] = []
        self._threads: list[threading.Thread] = []

    # --- routes and statistics -----------------------------------------------------------

    def add(
        self,
        path: str,
        body: bytes = b"",
        *,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
        content_type: str = DEFAULT_CONTENT_TYPE,
        etag: str | None = None,
        last_modified: str | None = None,
        encoding: str | None = None,
        redirect: str | None = None,
        retry_after: str | int | None = None,
        delay: float = 0.0,
        drip: float | None = None,
        stream: Callable[[], Iterable[bytes]] | None = None,
    ) -> str:
        """Register (or replace) the answer for `path`; returns its URL."""
        all_headers = {"Content-Type": content_type, **(headers or {})}
        if encoding is not None:
            body = _compress(body, encoding)
            all_headers["Content-Encoding"] = encoding
        if redirect is not None:
            all_headers["Location"] = redirect
        if retry_after is not None:
            all_headers["Retry-After"] = str(retry_after)
        default_status = 302 if redirect is not None else 200
        route = Route(
            body=body,
            status=status or default_status,
            headers=all_headers,
            etag=etag,
            last_modified=last_modified,
            delay=delay,
            drip=drip,
            stream=stream,
        )
        with self._lock:
            self._routes[path] = route
        return self.url(path)

    def url(self, path: str, host: str | None = None) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{host or self.hosts[0]}:{self.port}{path}"

    def hits(self, path: str) -> int:
        with self._lock:
            return self._hits[path]

    def requests(self, path: str) -> list[dict[str, str]]:
        """Headers of each request received for `path` (names lower-cased), oldest first."""
        with self._lock:
            return list(self._requests[path])

    def reset_stats(self) -> None:
        with self._lock:
            self._hits.clear()
            self._requests.clear()
            self.max_concurrent = self._in_flight

    def route_for(self, path: str, request_headers: dict[str, str]) -> Route | None:
        """Record the request and return its route (None: unknown path)."""
        with self._lock:
            self._hits[path] += 1
            self._requests[path].append(request_headers)
            self._in_flight += 1
            self.max_concurrent = max(self.max_concurrent, self._in_flight)
            return self._routes.get(path)

    def done(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def connected(self) -> None:
        with self._lock:
            self.connections += 1

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> FeedServer:
        for host in self.hosts:
            server = _Server((host, self.port), _Handler)
            server.feed_server = self
            if self.tls is not None:  # each connection's handshake runs in its own thread
                server.socket = self.tls.wrap_socket(
                    server.socket, server_side=True, do_handshake_on_connect=False
                )
            self.port = server.server_address[1]
            self._servers.append(server)
            thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self.stopping.set()
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> FeedServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 2048
    feed_server: FeedServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (refused the certificate, reset the connection) is not an
        error of the server's: tests read the client's side."""
        if isinstance(sys.exc_info()[1], ssl.SSLError | ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    disable_nagle_algorithm = True
    #: Whether the request being answered still counts in `FeedServer.max_concurrent`.
    _counted = False

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()  # in this connection's thread, not the accepting one
        super().setup()
        self.server.feed_server.connected()

    def log_message(self, format: str, *args: object) -> None:
        """Stay quiet; tests read statistics instead."""

    def do_GET(self) -> None:
        owner = self.server.feed_server
        path = urlsplit(self.path).path
        request_headers = {k.lower(): v for k, v in self.headers.items()}
        route = owner.route_for(path, request_headers)
        self._counted = True
        try:
            self._answer(owner, route, request_headers)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            self._answered()

    def _answered(self) -> None:
        """The request stops counting as in flight (once). A whole answer is counted out just
        before its bytes go: a client that has them may send its next request at once, and
        under load that request was counted before this thread got to count this one out, so
        `max_concurrent` read one above the client's limit."""
        if self._counted:
            self._counted = False
            self.server.feed_server.done()

    def _answer(
        self, owner: FeedServer, route: Route | None, request_headers: Mapping[str, str]
    ) -> None:
        if route is None:
            self._send(404, {"Content-Type": "text/plain"}, b"no such route\n")
            return
        if route.delay:
            time.sleep(route.delay)
        headers = dict(route.headers)
        if route.etag is not None:
            headers["ETag"] = route.etag
        if route.last_modified is not None:
            headers["Last-Modified"] = route.last_modified
        if _not_modified(route, request_headers):
            self._send(304, {k: v for k, v in headers.items() if k != "Content-Type"}, b"")
        elif route.stream is not None:
            self._send_chunked(route.status, headers, route.stream())
        elif route.drip is not None:
            self._send_drip(owner, route.status, headers, route.body, route.drip)
        else:
            self._send(route.status, headers, route.body)

    def _head(self, status: int, headers: Mapping[str, str]) -> bytes:
        reason = _REASONS.get(status) or self.responses.get(status, ("",))[0]
        lines = [f"HTTP/1.1 {status} {reason}"]
        if not any(k.lower() == "date" for k in headers):
            lines.append(f"Date: {formatdate(usegmt=True)}")
        lines += [f"{k}: {v}" for k, v in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _send(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        with_length = {**headers, "Content-Length": str(len(body))} if status != 304 else headers
        answer = self._head(status, with_length) + body
        self._answered()
        self.wfile.write(answer)

    def _send_chunked(
        self, status: int, headers: Mapping[str, str], chunks: Iterable[bytes]
    ) -> None:
        self.wfile.write(self._head(status, {**headers, "Transfer-Encoding": "chunked"}))
        for chunk in chunks:
            if chunk:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        self.wfile.write(b"0\r\n\r\n")

    def _send_drip(
        self, owner: FeedServer, status: int, headers: Mapping[str, str], body: bytes, every: float
    ) -> None:
        self.wfile.write(self._head(status, {**headers, "Content-Length": str(len(body))}))
        for i in range(len(body)):
            if owner.stopping.wait(every):
                self.close_connection = True
                return
            self.wfile.write(body[i : i + 1])
            self.wfile.flush()


def resolving(mapping: Mapping[str, str]) -> Callable[..., Any]:
    """A stand-in for `anyio.getaddrinfo` that resolves the names in `mapping` to the given
    IPv4 addresses (for tests that need host names on loopback) and others as usual."""
    real = anyio.getaddrinfo

    async def fake(host: str, port: int, **kwargs: Any) -> Any:
        if host in mapping:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (mapping[host], port))]
        return await real(host, port, **kwargs)

    return fake


@contextmanager
def tcp_server(answer: Callable[[socket.socket], None]) -> Iterator[str]:
    """A bare TCP server on loopback (for answers no HTTP server gives: silence, garbage, a
    reset) that runs `answer(connection)` for each connection in turn and closes it after;
    yields a feed URL on it."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    stop = threading.Event()

    def serve() -> None:
        with listener:
            while not stop.is_set():
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                conn.settimeout(5)
                with conn:
                    answer(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/feed.xml"
    finally:
        stop.set()
        thread.join(timeout=5)


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    """A started FeedServer on 127.0.0.1 (ephemeral port), stopped after the test."""
    with FeedServer() as server:
        yield server
