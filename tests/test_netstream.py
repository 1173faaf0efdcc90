"""The fetcher's connections (`monitor.netstream`) against real loopback servers: TLS, read
timeouts, lost connections, kept-alive connections the server closed, and the buffer's bound."""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import anyio
import httpcore
import pytest
import trustme

import monitor.fetch
from monitor.errors import FetchError
from monitor.fetch import Fetcher
from monitor.netstream import HIGH_WATER, LOW_WATER, NativeStream, _Buffering, open_native
from monitor.settings import HttpSettings
from tests.feedserver import FeedServer, tcp_server

pytestmark = pytest.mark.anyio

RSS = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>Talks watch</title>
<item><guid>a1</guid><title>Envoys meet again in Geneva</title></item></channel></rss>"""
LOOPBACK_OK = HttpSettings(allow_private_networks=("127.0.0.0/8",))
QUICK_TIMEOUT = HttpSettings(allow_private_networks=("127.0.0.0/8",), timeout=0.3)


# --- TLS ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_server(authority: trustme.CA) -> Iterator[FeedServer]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    with FeedServer(tls=context) as server:
        yield server


@pytest.fixture
def trusting(authority: trustme.CA, monkeypatch: pytest.MonkeyPatch) -> None:
    """Connections trust the test authority (as they would a public one)."""
    real = monitor.fetch.tls_context

    def context() -> ssl.SSLContext:
        made = real()
        authority.configure_trust(made)
        return made

    monkeypatch.setattr(monitor.fetch, "tls_context", context)


@pytest.mark.usefixtures("trusting")
async def test_a_feed_over_tls_is_fetched_and_its_connection_kept(tls_server: FeedServer) -> None:
    url = tls_server.add("/feed.xml", RSS, etag='"v1"')
    assert url.startswith("https://")
    async with Fetcher(LOOPBACK_OK) as fetcher:
        first = await fetcher.fetch(url)
        second = await fetcher.fetch(url, etag=first.etag)
    assert (first.status, first.body) == (200, RSS)
    assert second.not_modified
    assert tls_server.connections == 1


@pytest.mark.usefixtures("trusting")
async def test_closing_a_tls_connection_releases_its_socket_at_once(tls_server: FeedServer) -> None:
    """Without waiting for the server's close-notify alert, which a loop shutting down at the
    end of a cycle would not wait for (the socket would stay open until collected)."""
    stream = await open_native("127.0.0.1", tls_server.port)
    tls = await stream.start_tls(monitor.fetch.tls_context(), "127.0.0.1", timeout=5)
    sock = tls.get_extra_info("socket")
    assert tls.get_extra_info("ssl_object") is not None and sock.fileno() >= 0
    await tls.aclose()
    assert sock.fileno() == -1


async def test_a_certificate_from_an_unknown_authority_is_refused(tls_server: FeedServer) -> None:
    url = tls_server.add("/feed.xml", RSS)
    with pytest.raises(FetchError) as caught:
        async with Fetcher(LOOPBACK_OK) as fetcher:
            await fetcher.fetch(url)
    assert caught.value.reason.startswith("TLS certificate not accepted")


# --- raw servers --------------------------------------------------------------------------


def _head(length: int) -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n"
        + f"Content-Length: {length}\r\n\r\n".encode()
    )


@pytest.fixture
def raw_server() -> Iterator[Callable[[Callable[[socket.socket], None]], str]]:
    """Start bare TCP servers (`tcp_server`) for the test; each call returns a feed URL."""
    with ExitStack() as servers:
        yield lambda answer: servers.enter_context(tcp_server(answer))


def _read_request(conn: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return
        data += chunk


async def _fetch_error(url: str, settings: HttpSettings = LOOPBACK_OK) -> FetchError:
    with pytest.raises(FetchError) as caught:
        async with Fetcher(settings) as fetcher:
            await fetcher.fetch(url)
    return caught.value


@pytest.mark.parametrize("sent", [b"", _head(len(RSS)) + RSS[:20]], ids=["nothing", "part"])
async def test_a_server_that_stops_sending_times_out(raw_server: Any, sent: bytes) -> None:
    """Silence after the request, or in the middle of the body."""
    released = threading.Event()

    def stalling(conn: socket.socket) -> None:
        _read_request(conn)
        conn.sendall(sent)
        released.wait(5)

    url = raw_server(stalling)
    try:
        error = await _fetch_error(url, QUICK_TIMEOUT)
    finally:
        released.set()
    assert error.reason == "timed out waiting for the server"


async def test_a_connection_reset_mid_body_is_a_lost_connection(raw_server: Any) -> None:
    def resetting(conn: socket.socket) -> None:
        _read_request(conn)
        conn.sendall(_head(100_000) + b"<rss>")
        # SO_LINGER with a zero timeout: close() sends a reset, not an orderly end.
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    error = await _fetch_error(raw_server(resetting))
    assert error.reason.startswith("connection lost")


async def test_a_body_cut_short_by_an_orderly_close_is_a_protocol_error(raw_server: Any) -> None:
    def cutting(conn: socket.socket) -> None:
        _read_request(conn)
        conn.sendall(_head(100_000) + b"<rss>")

    error = await _fetch_error(raw_server(cutting))
    assert error.reason.startswith("the server broke the HTTP protocol")


async def test_a_kept_connection_the_server_closed_is_not_reused(raw_server: Any) -> None:
    """The server answers one request per connection and then hangs up, without saying so:
    the next fetch notices the hang-up on the idle connection and opens another."""
    connections: list[int] = []

    def once(conn: socket.socket) -> None:
        connections.append(1)
        _read_request(conn)
        conn.sendall(_head(len(RSS)) + RSS)

    url = raw_server(once)
    async with Fetcher(LOOPBACK_OK) as fetcher:
        assert (await fetcher.fetch(url)).body == RSS
        await anyio.sleep(0.1)  # the hang-up reaches the event loop
        assert (await fetcher.fetch(url)).body == RSS
    assert len(connections) == 2


async def test_a_body_many_times_the_buffer_arrives_whole(feed_server: FeedServer) -> None:
    body = RSS.replace(b"</channel>", b"<!-- " + b"x" * (8 * HIGH_WATER) + b" --></channel>")
    url = feed_server.add("/big.xml", body)
    async with Fetcher(LOOPBACK_OK) as fetcher:
        assert (await fetcher.fetch(url)).body == body


# --- the stream itself --------------------------------------------------------------------


async def test_an_idle_connection_is_readable_once_the_server_hangs_up() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        stream = await open_native("127.0.0.1", listener.getsockname()[1])
        conn, _ = listener.accept()
        try:
            assert stream.get_extra_info("is_readable") is False
            assert stream.get_extra_info("server_addr") == listener.getsockname()
            assert stream.get_extra_info("socket").getpeername() == listener.getsockname()
            assert stream.get_extra_info("ssl_object") is None
            conn.close()
            with anyio.fail_after(5):
                while not stream.get_extra_info("is_readable"):
                    await anyio.sleep(0.01)
            assert await stream.read(100) == b""
        finally:
            conn.close()
            await stream.aclose()


async def test_reads_take_what_arrived_up_to_the_size_asked() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        stream = await open_native("127.0.0.1", listener.getsockname()[1])
        conn, _ = listener.accept()
        with conn:
            await stream.write(b"GET / HTTP/1.1\r\n\r\n")
            assert conn.recv(100) == b"GET / HTTP/1.1\r\n\r\n"
            conn.sendall(b"0123456789")
            assert await stream.read(4) == b"0123"
            assert await stream.read(100) == b"456789"
            with pytest.raises(httpcore.ReadTimeout):
                await stream.read(100, timeout=0.05)
        await stream.aclose()
        with pytest.raises(httpcore.WriteError):
            await stream.write(b"more")


async def test_requests_go_out_at_once_and_socket_options_are_applied() -> None:
    keepalive = (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        stream = await open_native(
            "127.0.0.1", listener.getsockname()[1], socket_options=[keepalive]
        )
        conn, _ = listener.accept()
        with conn:
            sock = stream.get_extra_info("socket")
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0, "no Nagle delay"
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0
        await stream.aclose()


async def test_a_refused_connection_is_a_connect_error() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
    with pytest.raises(httpcore.ConnectError):
        await open_native("127.0.0.1", port)


class _RecordingTransport(asyncio.Transport):
    """Records flow-control calls (the one narrow fake here: when the event loop pauses
    reading depends on how fast the reader keeps up, which a real server cannot force)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def pause_reading(self) -> None:
        self.calls.append("pause")

    def resume_reading(self) -> None:
        self.calls.append("resume")


def test_the_buffer_stops_reading_above_its_bound_and_resumes_below() -> None:
    protocol = _Buffering()
    transport = _RecordingTransport()
    protocol.connection_made(transport)
    chunk = b"x" * (HIGH_WATER // 4)
    for _ in range(4):
        protocol.data_received(chunk)
    assert transport.calls == []  # at the bound, not above it
    protocol.data_received(b"y")
    assert transport.calls == ["pause"]
    taken = 0
    while protocol.buffered >= LOW_WATER:
        taken += len(protocol.take(len(chunk)))
        assert transport.calls == ["pause"] or protocol.buffered < LOW_WATER
    assert transport.calls == ["pause", "resume"]
    assert taken + protocol.buffered == HIGH_WATER + 1


def test_a_stream_answers_only_what_httpcore_asks() -> None:
    stream = NativeStream(_RecordingTransport(), _Buffering())
    assert stream.get_extra_info("is_readable") is False
    assert stream.get_extra_info("anything else") is None
