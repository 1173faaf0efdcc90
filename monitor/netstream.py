"""The fetcher's connections on asyncio itself: a buffering protocol under httpcore's stream API.

httpcore's own backend goes through anyio, whose socket stream stops the event loop from
reading the socket between two reads (an epoll registration and removal per read), opens a
cancel scope per read and write, and answers "is this idle connection readable?" with a
`poll` call. Each of those system calls lets go of the GIL, and in a cycle where the storage
thread and the worker results hold it, getting it back kept the event loop waiting
(docs/decisions.md, "Connections on asyncio's own transports").

Here the event loop reads a connection whenever bytes arrive, into a buffer (paused only
when it holds more than `HIGH_WATER` bytes); a read takes from the buffer and waits, under a
timer, only when it is empty; an idle connection is readable when its buffer holds bytes or
the server has hung up, which the protocol already knows. asyncio only: the monitor runs on
asyncio's event loop.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Iterable
from typing import Any

import httpcore

#: Buffered bytes above which the event loop stops reading a connection until a read takes
#: them (bounds memory per connection; a body is read in chunks of httpcore's 64 KiB).
HIGH_WATER = 256 * 1024
#: Buffered bytes below which reading resumes.
LOW_WATER = 64 * 1024


class _Buffering(asyncio.Protocol):
    """What one connection received and whether it ended, for `NativeStream`."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        #: The server hung up (or the connection was lost): no more bytes will come.
        self.ended = False
        #: Why the connection was lost, if not by an orderly close.
        self.error: BaseException | None = None
        self._reading_paused = False
        self._writing_paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None

    # --- asyncio's side -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.buffered += len(data)
        if self.buffered > HIGH_WATER and not self._reading_paused and self.transport:
            self.transport.pause_reading()
            self._reading_paused = True
        _wake(self._waiter)

    def eof_received(self) -> bool:
        self.ended = True
        _wake(self._waiter)
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = True
        self.error = exc
        _wake(self._waiter)
        _wake(self._drained)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        _wake(self._drained)

    # --- the stream's side ----------------------------------------------------------------

    def take(self, max_bytes: int) -> bytes:
        """Up to `max_bytes` of the buffered bytes (at least one byte is buffered)."""
        chunk = self.chunks.popleft()
        if len(chunk) > max_bytes:
            chunk, rest = chunk[:max_bytes], chunk[max_bytes:]
            self.chunks.appendleft(rest)
        self.buffered -= len(chunk)
        if self._reading_paused and self.buffered < LOW_WATER and self.transport:
            self._reading_paused = False
            self.transport.resume_reading()
        return chunk

    async def arrival(self, timeout: float | None) -> None:
        """Wait until bytes arrive or the connection ends; TimeoutError after `timeout`."""
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await _within(self._waiter, timeout)
        finally:
            self._waiter = None

    async def drained(self, timeout: float | None) -> None:
        """Wait until the transport takes writes again (or the connection ends)."""
        while self._writing_paused and not self.ended:
            self._drained = asyncio.get_running_loop().create_future()
            try:
                await _within(self._drained, timeout)
            finally:
                self._drained = None


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


async def _within(waiter: asyncio.Future[None], timeout: float | None) -> None:
    """Await `waiter`, failing it with TimeoutError after `timeout` seconds: one timer, no
    task cancellation (a caller's own cancellation still goes through)."""
    if timeout is None:
        await waiter
        return
    timer = asyncio.get_running_loop().call_later(timeout, _expire, waiter)
    try:
        await waiter
    finally:
        timer.cancel()


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class NativeStream(httpcore.AsyncNetworkStream):
    """httpcore's network stream over an asyncio transport and a `_Buffering` protocol."""

    def __init__(self, transport: asyncio.Transport, protocol: _Buffering) -> None:
        self._transport = transport
        self._protocol = protocol

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        protocol = self._protocol
        if not protocol.chunks and not protocol.ended:
            try:
                await protocol.arrival(timeout)
            except TimeoutError as e:
                raise httpcore.ReadTimeout("timed out reading from the server") from e
        if protocol.chunks:
            return protocol.take(max_bytes)
        if protocol.error is not None:
            raise httpcore.ReadError(str(protocol.error) or "connection lost") from protocol.error
        return b""

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        protocol = self._protocol
        if protocol.ended or self._transport.is_closing():
            raise httpcore.WriteError(_lost(protocol.error))
        self._transport.write(buffer)
        try:
            await protocol.drained(timeout)
        except TimeoutError as e:
            raise httpcore.WriteTimeout("timed out writing to the server") from e
        if protocol.error is not None:
            raise httpcore.WriteError(_lost(protocol.error)) from protocol.error

    async def aclose(self) -> None:
        """Drop the connection, its socket closed by the event loop's next turn, given here.

        httpcore closes a connection when it is done with it (nothing left to send) or after
        an error. `close()` would, on TLS, first exchange close-notify alerts with the
        server, which a cycle's loop, shutting down, may not wait for: the socket would stay
        open until garbage collection. As anyio's streams did, the connection is dropped."""
        self._transport.abort()
        await asyncio.sleep(0)

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            transport = await loop.start_tls(
                self._transport,
                self._protocol,
                ssl_context,
                server_hostname=server_hostname,
                ssl_handshake_timeout=timeout,
            )
        except TimeoutError as e:
            await self.aclose()
            raise httpcore.ConnectTimeout("timed out in the TLS handshake") from e
        except OSError as e:  # ssl.SSLError included
            await self.aclose()
            raise httpcore.ConnectError(str(e)) from e
        if transport is None:  # the connection was lost during the handshake
            raise httpcore.ConnectError(_lost(self._protocol.error))
        assert isinstance(transport, asyncio.Transport)
        self._protocol.transport = transport
        return NativeStream(transport, self._protocol)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":  # an idle connection: the server sent bytes or hung up
            return bool(self._protocol.chunks) or self._protocol.ended
        if info == "ssl_object":
            return self._transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return self._transport.get_extra_info("sockname")
        if info == "server_addr":
            return self._transport.get_extra_info("peername")
        if info == "socket":
            return self._transport.get_extra_info("socket")
        return None


def _lost(error: BaseException | None) -> str:
    return str(error) if error else "connection closed"


async def open_native(
    ip: str,
    port: int,
    local_address: str | None = None,
    socket_options: Iterable[Any] | None = None,
) -> NativeStream:
    """A connection to an IP address (no lookup) as a `NativeStream`; OSError becomes
    httpcore.ConnectError. Timeouts are the caller's (the backend's connect deadline)."""
    loop = asyncio.get_running_loop()
    try:
        transport, protocol = await loop.create_connection(
            _Buffering, ip, port, local_addr=(local_address, 0) if local_address else None
        )
    except OSError as e:
        raise httpcore.ConnectError(str(e)) from e
    assert isinstance(transport, asyncio.Transport)
    sock = transport.get_extra_info("socket")  # asyncio has set TCP_NODELAY on it
    for option in socket_options or ():
        sock.setsockopt(*option)
    return NativeStream(transport, protocol)
