"""The feed fetcher, the monitor's only network I/O: polite, bounded, conditional GETs.

One `Fetcher` owns one set of connection pools (an httpx transport) for a whole poll cycle,
and sends its requests to it directly: redirects, cookies and headers are handled here, so
`httpx.AsyncClient`'s layers for them are not paid on every request. Every fetch:

    check URL → wait for a host slot and a global slot → connect through the SSRF guard
    → GET (conditional) → follow redirects by hand (each hop checked again)
    → stream and decode the body under a size cap → FetchResult, or a FetchError subclass

The header arithmetic (Retry-After, max-age, Expires) is pure and takes `now`.
"""

from __future__ import annotations

import base64
import contextlib
import socket
import ssl
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from types import TracebackType
from typing import Any, Protocol, TypeVar

import anyio
import brotli  # type: ignore[import-untyped]
import httpcore
import httpx

from monitor.errors import BlockedAddressError, DeadlineError, FetchError, TooLargeError
from monitor.netguard import IPNetwork, is_blocked, parse_networks, refusal
from monitor.netstream import open_native
from monitor.settings import HttpSettings
from monitor.types import Admission, FetchResult

ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, "
    "application/rdf+xml;q=0.9, application/xml;q=0.9, text/xml;q=0.9, "
    "application/json;q=0.8, */*;q=0.5"
)
ACCEPT_ENCODING = "gzip, deflate, br"
#: Longest wait a Retry-After may ask for (longer asks are capped to this).
MAX_RETRY_AFTER_S = 86400
#: Largest piece of decoded body produced at once (bounds memory on compression bombs).
DECODE_CHUNK = 64 * 1024
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
PERMANENT_REDIRECTS = frozenset({301, 308})
#: Seconds an idle keep-alive connection is kept for the next request to its host.
KEEPALIVE_S = 30.0

_E = TypeVar("_E", bound=BaseException)


# --- pure header arithmetic ------------------------------------------------------------


def parse_http_date(value: str | None) -> datetime | None:
    """An HTTP date as an aware UTC datetime, or None when absent or unreadable."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def parse_retry_after(
    value: str | None, now: datetime, cap_s: int = MAX_RETRY_AFTER_S
) -> int | None:
    """Seconds to wait from a Retry-After value (delay seconds or an HTTP date), capped."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return min(int(text), cap_s)
    when = parse_http_date(text)
    if when is None:
        return None
    return max(0, min(int((when - now).total_seconds()), cap_s))


def _cache_directives(cache_control: str) -> dict[str, str]:
    directives: dict[str, str] = {}
    for part in cache_control.split(","):
        name, _, arg = part.strip().partition("=")
        if name:
            directives[name.strip().lower()] = arg.strip().strip('"')
    return directives


def parse_max_age(headers: Mapping[str, str], now: datetime) -> int | None:
    """Freshness lifetime in seconds from Cache-Control max-age/s-maxage, else Expires.

    `headers` has lower-cased names. Expires counts from the response's Date when it has
    one (so clock skew does not matter), else from `now`.
    """
    directives = _cache_directives(headers.get("cache-control", ""))
    for name in ("max-age", "s-maxage"):
        if directives.get(name, "").isdigit():
            return int(directives[name])
    expires = parse_http_date(headers.get("expires"))
    if expires is None:
        return None
    origin = parse_http_date(headers.get("date")) or now
    return max(0, int((expires - origin).total_seconds()))


def retry_after_for(headers: Mapping[str, str], now: datetime) -> int | None:
    """Retry-After in seconds, measured against the response's own Date when present."""
    return parse_retry_after(
        headers.get("retry-after"), parse_http_date(headers.get("date")) or now
    )


def basic_authorization(username: str, password: str) -> str:
    """The Authorization header value of HTTP Basic authentication (RFC 7617, UTF-8)."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


# --- bounded content decoding ----------------------------------------------------------


class _Decoder(Protocol):
    def decode(self, data: bytes) -> Iterator[bytes]: ...
    def flush(self) -> Iterator[bytes]: ...


class _ZlibDecoder:
    """gzip or deflate, giving out at most DECODE_CHUNK bytes per step."""

    def __init__(self, wbits: int, *, raw_fallback: bool = False) -> None:
        self._inflater = zlib.decompressobj(wbits)
        self._raw_fallback = raw_fallback
        self._started = False

    def decode(self, data: bytes) -> Iterator[bytes]:
        while True:
            try:
                out = self._inflater.decompress(data, DECODE_CHUNK)
            except zlib.error:
                if not self._raw_fallback or self._started:
                    raise
                # Some servers send raw deflate without the zlib wrapper.
                self._raw_fallback = False
                self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
                continue
            self._started = True
            if out:
                yield out
            data = self._inflater.unconsumed_tail
            if not data and len(out) < DECODE_CHUNK:
                return

    def flush(self) -> Iterator[bytes]:
        if tail := self._inflater.flush():
            yield tail


class _BrotliDecoder:
    """brotli, giving out at most about DECODE_CHUNK bytes per step."""

    def __init__(self) -> None:
        self._decompressor = brotli.Decompressor()

    def decode(self, data: bytes) -> Iterator[bytes]:
        out = self._decompressor.process(data, output_buffer_limit=DECODE_CHUNK)
        if out:
            yield bytes(out)
        # A full output buffer may hide more output even when the input is all taken.
        while not self._decompressor.is_finished() and (
            len(out) >= DECODE_CHUNK or not self._decompressor.can_accept_more_data()
        ):
            out = self._decompressor.process(b"", output_buffer_limit=DECODE_CHUNK)
            if out:
                yield bytes(out)

    def flush(self) -> Iterator[bytes]:
        return iter(())


def _decoder_for(coding: str) -> _Decoder | None:
    if coding in ("gzip", "x-gzip"):
        return _ZlibDecoder(zlib.MAX_WBITS | 16)
    if coding == "deflate":
        return _ZlibDecoder(zlib.MAX_WBITS, raw_fallback=True)
    if coding == "br":
        return _BrotliDecoder()
    return None


def _through(decoder: _Decoder, chunks: Iterable[bytes]) -> Iterator[bytes]:
    for chunk in chunks:
        yield from decoder.decode(chunk)


def _decode_chain(decoders: Sequence[_Decoder], chunks: Iterable[bytes]) -> Iterable[bytes]:
    for decoder in decoders:
        chunks = _through(decoder, chunks)
    return chunks


def _flush_chain(decoders: Sequence[_Decoder]) -> Iterator[bytes]:
    for i, decoder in enumerate(decoders):
        yield from _decode_chain(decoders[i + 1 :], decoder.flush())


# --- the connect-time SSRF guard -------------------------------------------------------


def _unbracket(host: str) -> str:
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves hosts itself, refuses forbidden addresses, connects only to checked IPs, over
    asyncio's own transports (`monitor.netstream`).

    The TLS layer still gets the URL's host name (httpcore passes the origin host to
    start_tls), so certificates are verified against the name, not the IP.
    """

    def __init__(self, allowed: Sequence[IPNetwork]) -> None:
        self._allowed = tuple(allowed)

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            with anyio.fail_after(timeout):
                addresses = await self._checked_addresses(_unbracket(host), port)
                return await self._connect_any(addresses, port, local_address, socket_options)
        except TimeoutError as e:
            raise httpcore.ConnectTimeout(f"connecting to {host} timed out") from e

    async def _checked_addresses(self, host: str, port: int) -> list[str]:
        try:
            infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as e:
            raise httpcore.ConnectError(f"cannot resolve host {host}: {e.strerror or e}") from e
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        for ip in addresses:
            self._refuse_if_blocked(ip, host)
        return addresses

    def _refuse_if_blocked(self, ip: str, host: str) -> None:
        kind = is_blocked(ip.partition("%")[0], self._allowed)
        if kind is not None:
            named = ip if host == ip else f"{host} ({ip})"
            raise BlockedAddressError(host, refusal(named, kind))

    async def _connect_any(
        self,
        addresses: Sequence[str],
        port: int,
        local_address: str | None,
        socket_options: Iterable[Any] | None,
    ) -> httpcore.AsyncNetworkStream:
        failure: httpcore.ConnectError | None = None
        for ip in addresses:
            try:
                stream = await open_native(ip, port, local_address, socket_options)
            except httpcore.ConnectError as e:
                failure = e
                continue
            await self._check_peer(stream, ip)
            return stream
        raise httpcore.ConnectError(_connect_failure(addresses, port, failure)) from failure

    async def _check_peer(self, stream: httpcore.AsyncNetworkStream, ip: str) -> None:
        peer = stream.get_extra_info("server_addr")
        peer_ip = str(peer[0]) if isinstance(peer, tuple) and peer else ip
        try:
            self._refuse_if_blocked(peer_ip, peer_ip)
        except BlockedAddressError:
            await stream.aclose()
            raise

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not used for feeds")

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


def _connect_failure(
    addresses: Sequence[str], port: int, failure: httpcore.ConnectError | None
) -> str:
    if failure is None:
        why = "no address found"
    elif _first_cause(failure, ConnectionRefusedError) is not None:
        why = "connection refused"
    elif isinstance(os_error := _first_cause(failure, OSError), OSError) and os_error.strerror:
        why = os_error.strerror
    else:
        why = str(failure)
    return f"cannot connect to {', '.join(addresses)} port {port}: {why}"


# --- errors ----------------------------------------------------------------------------


def _causes(error: BaseException) -> Iterator[BaseException]:
    """`error`, then what it was raised from or during, exception groups included."""
    pending, seen = [error], set()
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)


def _first_cause(error: BaseException, kind: type[_E]) -> _E | None:
    return next((e for e in _causes(error) if isinstance(e, kind)), None)


def transport_reason(error: httpx.TransportError) -> str:
    """A short human reason for a network-level failure."""
    if tls := _first_cause(error, ssl.SSLError):
        if isinstance(tls, ssl.SSLCertVerificationError):
            return f"TLS certificate not accepted: {tls.verify_message or tls.reason}"
        return f"TLS error: {tls.reason or tls}"
    if isinstance(error, httpx.ConnectTimeout):
        return "timed out while connecting"
    if isinstance(error, httpx.TimeoutException):
        return "timed out waiting for the server"
    if isinstance(error, httpx.ConnectError):
        return str(error) or "cannot connect"
    if isinstance(error, httpx.RemoteProtocolError):
        return f"the server broke the HTTP protocol: {error}"
    if isinstance(error, httpx.ReadError | httpx.WriteError):
        return f"connection lost: {error or type(error).__name__}"
    if isinstance(error, httpx.UnsupportedProtocol):
        return f"unsupported URL: {error}"
    return f"{type(error).__name__}: {error}"


def status_reason(status: int, phrase: str, retry_after_s: int | None) -> str:
    """What an error status means for the feed."""
    phrase = phrase or _standard_phrase(status)
    text = f"HTTP {status} {phrase}".rstrip()
    if status == 410:
        text += ": the feed is gone for good"
    if retry_after_s is not None:
        text += f"; retry after {retry_after_s} s"
    return text


def _standard_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


# --- redirects -------------------------------------------------------------------------


@dataclass
class _Redirects:
    """The redirect chain of one fetch; decides where the next hop goes."""

    feed_url: str
    limit: int
    visited: list[str] = field(default_factory=list)
    permanent_url: str | None = None
    all_permanent: bool = True

    def follow(self, current: httpx.URL, status: int, location: str | None) -> httpx.URL:
        if not location:
            raise FetchError(
                self.feed_url, f"HTTP {status} redirect without a Location", status=status
            )
        try:
            joined = current.join(location.strip())
        except httpx.InvalidURL as e:
            raise FetchError(self.feed_url, f"redirect to an invalid URL {location!r}") from e
        target = str(joined)
        check_url(self.feed_url, joined, what="redirect to")
        if target in self.visited:
            loop = " → ".join([*self.visited[self.visited.index(target) :], target])
            raise FetchError(self.feed_url, f"redirect loop: {loop}", status=status)
        if len(self.visited) > self.limit:
            raise FetchError(
                self.feed_url, f"too many redirects (more than {self.limit})", status=status
            )
        self.all_permanent = self.all_permanent and status in PERMANENT_REDIRECTS
        if self.all_permanent:
            self.permanent_url = target
        return joined


def check_url(feed_url: str, url: str | httpx.URL, *, what: str = "URL") -> httpx.URL:
    """The URL parsed, refused unless it is an absolute http(s) URL with a host."""
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
    except httpx.InvalidURL as e:
        raise FetchError(feed_url, f"invalid {what} {url!r}: {e}") from e
    if parsed.scheme not in ("http", "https"):
        raise FetchError(feed_url, f"{what} {str(url)!r}: only http and https are fetched")
    if not parsed.host:
        raise FetchError(feed_url, f"{what} {str(url)!r} has no host")
    return parsed


# --- cookies ---------------------------------------------------------------------------


def cookie_site(host: str) -> str:
    """Which of a cycle's cookies a request to `host` may get, as a key: the host's last two
    labels, or the whole host for an IP address or a one-label name.

    Exact, not a guess: a cookie's domain has at least two labels (the jar refuses a bare
    top-level domain, `.local` apart, so names under .local share one key), and it ends both
    the host that set it and every host it is sent to, so all of them share their last two
    labels. Under a suffix such as co.uk the key only groups more sites; the jar still
    matches each cookie's domain and path itself."""
    host = host.lower().rstrip(".")
    if ":" in host or host.rpartition(".")[2].isdigit():
        return host
    if host.endswith(".local"):
        return "local"
    return ".".join(host.split(".")[-2:])


class CookieJars:
    """The cookies answers set during one cycle, one jar per `cookie_site`.

    A request is matched against its own site's cookies only. One jar for all would be
    scanned domain by domain for every request: with 500 sites' cookies in it, 1.7 ms per
    request, three times a whole fetch's CPU."""

    def __init__(self) -> None:
        self._jars: dict[str, httpx.Cookies] = {}

    def keep(self, response: httpx.Response) -> None:
        """Take the cookies `response` sets (its `request` must be set)."""
        site = cookie_site(response.request.url.host)
        self._jars.setdefault(site, httpx.Cookies()).extract_cookies(response)

    def add_to(self, request: httpx.Request) -> None:
        """Give `request` the Cookie header its site's cookies call for, if any."""
        jar = self._jars.get(cookie_site(request.url.host))
        if jar:
            jar.set_cookie_header(request)


# --- the fetcher -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Answer:
    """One hop's response: status, lower-cased headers, and the body when it was read."""

    status: int
    phrase: str
    headers: Mapping[str, str]
    body: bytes | None


#: Largest body read and dropped from an answer that is not a feed (a redirect, an error
#: page), so that its connection serves the next request; a larger one closes it instead.
DRAIN_BYTES = 64 * 1024


async def _drain(response: httpx.Response, headers: Mapping[str, str]) -> None:
    """Read the rest of a small non-2xx answer, so the connection is kept alive.

    httpcore keeps a connection only once the answer before has been read to its end; a
    response closed unread, even a 304 without a body, closes its connection. Left unread,
    every 304 of a steady cycle opened a new connection (451 connects for 500 polls of one
    host in the bench; a TLS handshake each on https). A failure while draining only costs
    the connection: the answer itself is already complete."""
    declared = headers.get("content-length", "")
    if response.status_code in (204, 304) or (declared.isdigit() and int(declared) <= DRAIN_BYTES):
        with contextlib.suppress(httpx.TransportError):
            async for _ in response.aiter_raw():
                pass


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _guarded_transport(
    settings: HttpSettings, allowed: Sequence[IPNetwork], ssl_context: ssl.SSLContext
) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose connections are opened through the SSRF guard."""
    limits = httpx.Limits(
        max_connections=settings.per_host,
        max_keepalive_connections=settings.per_host,
        keepalive_expiry=KEEPALIVE_S,
    )
    transport = httpx.AsyncHTTPTransport(
        verify=ssl_context, limits=limits, trust_env=False, retries=0
    )
    # The transport's pool is rebuilt around the guarded backend: httpx has no public hook
    # for a network backend, and the guard must sit where the socket is opened.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=ssl_context,
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        http1=True,
        http2=False,
        retries=0,
        network_backend=GuardedBackend(allowed),
    )
    return transport


class PerOriginTransport(httpx.AsyncBaseTransport):
    """One small connection pool per origin, the least recently used idle ones closed.

    httpcore's pool scans every connection for every queued request; one shared pool of
    `concurrency` connections made that scan a third of a fetch's CPU time. Pools of
    `per_host` connections keep it short, and closing idle pools bounds open sockets.
    """

    def __init__(self, make: Callable[[], httpx.AsyncHTTPTransport], max_idle_pools: int) -> None:
        self._make = make
        self._max_idle_pools = max_idle_pools
        self._pools: dict[tuple[str, str, int | None], httpx.AsyncHTTPTransport] = {}

    @property
    def origins(self) -> list[tuple[str, str, int | None]]:
        """Origins with a pool kept open, least recently used first."""
        return list(self._pools)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        key = (request.url.scheme, request.url.host, request.url.port)
        transport = self._pools.pop(key, None) or self._make()
        self._pools[key] = transport  # re-inserted last: dict order is recency order
        if len(self._pools) > self._max_idle_pools:
            await self._close_idle()
        return await transport.handle_async_request(request)

    async def _close_idle(self) -> None:
        excess = len(self._pools) - self._max_idle_pools
        for key, transport in list(self._pools.items())[:-1]:
            if excess <= 0:
                return
            if all(c.is_idle() for c in transport._pool.connections):
                del self._pools[key]
                await transport.aclose()
                excess -= 1

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for transport in pools:
            await transport.aclose()


def tls_context() -> ssl.SSLContext:
    """The TLS settings of every connection: certificates checked against the system's (or
    certifi's) authorities, as httpx sets them up, without reading the environment."""
    return httpx.create_ssl_context(trust_env=False)


def _build_transport(settings: HttpSettings, allowed: Sequence[IPNetwork]) -> PerOriginTransport:
    ssl_context = tls_context()
    return PerOriginTransport(
        lambda: _guarded_transport(settings, allowed, ssl_context),
        max_idle_pools=2 * settings.concurrency,
    )


class Fetcher:
    """Fetches feeds concurrently under global and per-host limits; use `async with`."""

    def __init__(self, settings: HttpSettings, *, clock: Callable[[], datetime] = _utc_now) -> None:
        self._settings = settings
        self._clock = clock
        self._allowed = parse_networks(settings.allow_private_networks)
        self._timeouts = httpx.Timeout(settings.timeout).as_dict()
        self._cookies = CookieJars()
        self._transport: PerOriginTransport | None = None
        self._global_slots: anyio.Semaphore | None = None
        self._host_slots: dict[str, anyio.Semaphore] = {}

    async def __aenter__(self) -> Fetcher:
        self._transport = _build_transport(self._settings, self._allowed)
        self._global_slots = anyio.Semaphore(self._settings.concurrency)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            await transport.aclose()

    async def fetch(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        admission: Admission | None = None,
    ) -> FetchResult:
        """Conditional GET of one feed, redirects followed; raises FetchError subclasses.

        `admission`, if given, is entered once each request has its host slot (before the
        global one) and left before waiting for another host's slot: a caller bounding how
        many feeds it holds at once counts a feed from its first request on, but a feed
        queued behind a host never holds a place (which could starve other hosts, or
        deadlock with feeds redirected to that host)."""
        started = time.monotonic()
        target = check_url(url, url)
        headers = self._request_headers(etag, last_modified)
        redirects = _Redirects(url, self._settings.max_redirects)
        budget = float(self._settings.deadline)
        current = url
        while True:
            redirects.visited.append(current)
            hop_started = time.monotonic()
            answer = await self._hop(url, target, headers, budget, admission)
            budget -= time.monotonic() - hop_started
            if answer.status not in REDIRECT_STATUSES:
                break
            target = redirects.follow(target, answer.status, answer.headers.get("location"))
            current = str(target)
        return self._result(url, current, answer, etag, last_modified, redirects, started)

    def _request_headers(self, etag: str | None, last_modified: str | None) -> dict[str, str]:
        headers = {
            "User-Agent": self._settings.user_agent,
            "Accept": ACCEPT,
            "Accept-Encoding": ACCEPT_ENCODING,
        }
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        return headers

    def _host_slot(self, url: httpx.URL) -> anyio.Semaphore:
        host = url.host.lower()
        slot = self._host_slots.get(host)
        if slot is None:
            slot = self._host_slots[host] = anyio.Semaphore(self._settings.per_host)
        return slot

    async def _hop(
        self,
        feed_url: str,
        url: httpx.URL,
        headers: Mapping[str, str],
        budget: float,
        admission: Admission | None = None,
    ) -> _Answer:
        """One request under a host slot, then a global slot, within the remaining deadline."""
        if self._transport is None or self._global_slots is None:
            raise RuntimeError("use the Fetcher inside 'async with'")
        transport, global_slots = self._transport, self._global_slots
        if admission is not None:
            admission.leave()  # a no-op before the first request
        async with self._host_slot(url):
            if admission is not None:
                await admission.enter()
            async with global_slots:
                with anyio.move_on_after(max(budget, 0.0)) as deadline:
                    return await self._exchange(transport, feed_url, url, headers)
        if deadline.cancelled_caught:
            raise DeadlineError(
                feed_url, f"took longer than the {self._settings.deadline:g} s deadline"
            )
        raise AssertionError("unreachable")  # pragma: no cover

    async def _exchange(
        self,
        transport: httpx.AsyncBaseTransport,
        feed_url: str,
        url: httpx.URL,
        headers: Mapping[str, str],
    ) -> _Answer:
        try:
            request = self._request(url, headers)
            response = await transport.handle_async_request(request)
            try:
                response.request = request
                lowered = {k.lower(): v for k, v in response.headers.items()}
                if "set-cookie" in lowered:
                    self._cookies.keep(response)
                body = None
                if 200 <= response.status_code < 300:
                    body = await self._read_body(feed_url, response, lowered)
                else:
                    await _drain(response, lowered)
                return _Answer(response.status_code, response.reason_phrase, lowered, body)
            finally:
                await response.aclose()
        except BlockedAddressError as e:
            raise BlockedAddressError(feed_url, e.reason) from e
        except httpx.TransportError as e:
            raise FetchError(feed_url, transport_reason(e)) from e

    def _request(self, url: httpx.URL, headers: Mapping[str, str]) -> httpx.Request:
        """A GET for one hop, with the URL's credentials, if any, and the cookies earlier
        answers of this cycle set for it."""
        request = httpx.Request("GET", url, headers=headers, extensions={"timeout": self._timeouts})
        if url.userinfo:  # https://user:password@host/feed: HTTP Basic, this hop only
            request.headers["Authorization"] = basic_authorization(url.username, url.password)
        self._cookies.add_to(request)
        return request

    async def _read_body(
        self, feed_url: str, response: httpx.Response, headers: Mapping[str, str]
    ) -> bytes:
        """The decoded body, refused as soon as it grows past the cap."""
        cap = self._settings.max_body_bytes
        decoders = self._decoders(feed_url, headers.get("content-encoding", ""))
        declared = headers.get("content-length", "")
        if not decoders and declared.isdigit() and int(declared) > cap:
            raise TooLargeError(feed_url, f"body of {declared} bytes is over the {cap}-byte cap")
        parts: list[bytes] = []
        size = 0
        try:
            async for raw in response.aiter_raw():
                for piece in _decode_chain(decoders, (raw,)):
                    size = self._take(feed_url, parts, piece, size, cap)
            for piece in _flush_chain(decoders):
                size = self._take(feed_url, parts, piece, size, cap)
        except (zlib.error, brotli.error) as e:
            coding = headers.get("content-encoding", "")
            raise FetchError(feed_url, f"cannot decode the {coding} body: {e}") from e
        return b"".join(parts)

    @staticmethod
    def _take(feed_url: str, parts: list[bytes], piece: bytes, size: int, cap: int) -> int:
        size += len(piece)
        if size > cap:
            raise TooLargeError(feed_url, f"body is over the {cap}-byte cap once decoded")
        parts.append(piece)
        return size

    @staticmethod
    def _decoders(feed_url: str, content_encoding: str) -> list[_Decoder]:
        codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
        decoders: list[_Decoder] = []
        for coding in reversed(codings):
            if coding == "identity":
                continue
            decoder = _decoder_for(coding)
            if decoder is None:
                raise FetchError(feed_url, f"unsupported Content-Encoding {coding!r}")
            decoders.append(decoder)
        return decoders

    def _result(
        self,
        feed_url: str,
        final_url: str,
        answer: _Answer,
        etag: str | None,
        last_modified: str | None,
        redirects: _Redirects,
        started: float,
    ) -> FetchResult:
        now = self._clock()
        if answer.status != 304 and not 200 <= answer.status < 300:
            retry_after = retry_after_for(answer.headers, now)
            reason = status_reason(answer.status, answer.phrase, retry_after)
            raise FetchError(feed_url, reason, status=answer.status, retry_after_s=retry_after)
        not_modified = answer.status == 304
        return FetchResult(
            url=final_url,
            status=answer.status,
            headers=answer.headers,
            body=None if not_modified else (answer.body or b""),
            etag=answer.headers.get("etag") or (etag if not_modified else None),
            last_modified=answer.headers.get("last-modified")
            or (last_modified if not_modified else None),
            permanent_url=redirects.permanent_url,
            max_age_s=parse_max_age(answer.headers, now),
            elapsed_s=time.monotonic() - started,
        )
