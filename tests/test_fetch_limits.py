"""The fetcher's limits against a real loopback server: body cap, bombs, deadline, concurrency."""

from __future__ import annotations

import gzip
import ssl
import struct
import tracemalloc
import zlib
from collections.abc import Callable, Iterator

import anyio
import brotli  # type: ignore[import-untyped]
import httpx
import pytest

from monitor.errors import DeadlineError, TooLargeError
from monitor.fetch import Fetcher, PerOriginTransport, _guarded_transport
from monitor.netguard import parse_networks
from monitor.settings import HttpSettings
from monitor.types import FetchResult
from tests.feedserver import FeedServer

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024
GiB = 1024 * MiB
LOOPBACK_OK = HttpSettings(allow_private_networks=("127.0.0.0/8",))


def with_settings(**changes: object) -> HttpSettings:
    return LOOPBACK_OK.model_copy(update=changes)


async def fetch(url: str, settings: HttpSettings = LOOPBACK_OK) -> FetchResult:
    async with Fetcher(settings) as fetcher:
        return await fetcher.fetch(url)


class Bomb:
    """A lazily generated compressed stream, handed out in pieces of at least `piece` bytes.

    Big pieces matter: a client that decodes whatever it reads in one go would inflate a
    whole piece (hundreds of MiB) at once, which the memory assertions below would catch.
    """

    def __init__(self, make: Callable[[], Iterator[bytes]], piece: int) -> None:
        self._make = make
        self._piece = piece

    def __call__(self) -> Iterator[bytes]:
        pending = bytearray()
        for chunk in self._make():
            pending += chunk
            if len(pending) >= self._piece:
                yield bytes(pending)
                pending.clear()
        yield bytes(pending)


def gzip_zeros(total: int, block: int = MiB) -> Iterator[bytes]:
    """A valid gzip stream of `total` zero bytes, about total/1000 bytes long.

    After a full flush the compressor's state is reset, so every further block of zeros
    compresses to the same bytes: compress two blocks, repeat the second one.
    """
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    zeros = bytes(block)
    yield packer.compress(zeros) + packer.flush(zlib.Z_FULL_FLUSH)
    repeated = packer.compress(zeros) + packer.flush(zlib.Z_FULL_FLUSH)
    for _ in range(total // block - 1):
        yield repeated
    crc = 0
    for _ in range(total // block):
        crc = zlib.crc32(zeros, crc)
    # An empty final fixed-Huffman block, then the gzip trailer (CRC-32, size mod 2**32).
    yield b"\x03\x00" + struct.pack("<II", crc, total & 0xFFFFFFFF)


def brotli_zeros(total: int, block: int = MiB) -> Iterator[bytes]:
    """A valid brotli stream of `total` zero bytes, compressed as it is sent."""
    packer = brotli.Compressor(quality=5)
    zeros = bytes(block)
    for _ in range(total // block):
        yield packer.process(zeros) + packer.flush()
    yield packer.finish()


def test_the_bomb_generators_make_valid_streams() -> None:
    assert gzip.decompress(b"".join(gzip_zeros(4 * MiB))) == bytes(4 * MiB)
    assert brotli.decompress(b"".join(brotli_zeros(4 * MiB))) == bytes(4 * MiB)
    assert len(b"".join(gzip_zeros(64 * MiB))) < 80 * 1024  # about 1000:1


async def _peak_memory_refusing(url: str, settings: HttpSettings) -> int:
    tracemalloc.start()
    try:
        with pytest.raises(TooLargeError, match="cap once decoded"):
            await fetch(url, settings)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


async def test_gzip_bomb_is_refused_without_inflating_it(feed_server: FeedServer) -> None:
    bomb = Bomb(lambda: gzip_zeros(GiB), piece=256 * 1024)  # about 256 MiB inflated
    url = feed_server.add("/bomb.xml", stream=bomb, headers={"Content-Encoding": "gzip"})
    peak = await _peak_memory_refusing(url, LOOPBACK_OK)  # default cap: 10 MiB
    assert peak < 40 * MiB


async def test_brotli_bomb_is_refused_without_inflating_it(feed_server: FeedServer) -> None:
    bomb = Bomb(lambda: brotli_zeros(GiB), piece=2048)  # about 200 MiB inflated
    url = feed_server.add("/bomb.xml", stream=bomb, headers={"Content-Encoding": "br"})
    peak = await _peak_memory_refusing(url, with_settings(max_body_bytes=MiB))
    assert peak < 16 * MiB


async def test_body_at_the_cap_is_accepted(feed_server: FeedServer) -> None:
    url = feed_server.add("/feed.xml", bytes(64 * 1024), encoding="gzip")
    result = await fetch(url, with_settings(max_body_bytes=64 * 1024))
    assert result.body == bytes(64 * 1024)


async def test_oversized_plain_body_is_refused_by_its_length(feed_server: FeedServer) -> None:
    url = feed_server.add("/feed.xml", bytes(2 * MiB))
    with pytest.raises(TooLargeError, match=r"body of 2097152 bytes is over the 1048576-byte cap"):
        await fetch(url, with_settings(max_body_bytes=MiB))


async def test_oversized_body_without_length_is_cut_off(feed_server: FeedServer) -> None:
    url = feed_server.add("/feed.xml", stream=lambda: (bytes(64 * 1024) for _ in range(64)))
    with pytest.raises(TooLargeError) as caught:
        await fetch(url, with_settings(max_body_bytes=MiB))
    assert caught.value.url == url


async def test_slow_drip_is_cut_off_at_the_deadline(feed_server: FeedServer) -> None:
    url = feed_server.add("/slow.xml", b"<rss>" + b" " * 100 + b"</rss>", drip=0.2)
    settings = with_settings(deadline=1.5, timeout=10.0)
    with pytest.raises(DeadlineError, match=r"longer than the 1.5 s deadline") as caught:
        await fetch(url, settings)
    assert caught.value.url == url


async def test_deadline_spans_redirect_hops(feed_server: FeedServer) -> None:
    feed_server.add("/final.xml", b"<rss/>", delay=0.4)
    for i in range(4):
        feed_server.add(f"/hop{i}", redirect=f"/hop{i + 1}", delay=0.4)
    feed_server.add("/hop4", redirect="/final.xml", delay=0.4)
    with pytest.raises(DeadlineError):
        await fetch(feed_server.url("/hop0"), with_settings(deadline=1.5, timeout=10.0))
    assert feed_server.hits("/final.xml") == 0


async def test_waiting_for_a_slot_does_not_count_against_the_deadline(
    feed_server: FeedServer,
) -> None:
    url = feed_server.add("/feed.xml", b"<rss/>", delay=0.5)
    settings = with_settings(per_host=1, deadline=1.0)
    results: list[FetchResult] = []

    async def one(fetcher: Fetcher) -> None:
        results.append(await fetcher.fetch(url))

    async with Fetcher(settings) as fetcher, anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(one, fetcher)
    assert [r.body for r in results] == [b"<rss/>"] * 3


async def _fire(settings: HttpSettings, urls: list[str]) -> None:
    async with Fetcher(settings) as fetcher, anyio.create_task_group() as tg:
        for url in urls:
            tg.start_soon(fetcher.fetch, url)


async def test_per_host_limit_is_observed_by_the_server(feed_server: FeedServer) -> None:
    urls = [feed_server.add(f"/feed{i}.xml", b"<rss/>", delay=0.5) for i in range(6)]
    await _fire(with_settings(per_host=2, concurrency=20), urls)
    assert feed_server.max_concurrent == 2
    assert sum(feed_server.hits(f"/feed{i}.xml") for i in range(6)) == 6


async def test_global_limit_holds_across_hosts() -> None:
    hosts = ("127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4")
    with FeedServer(hosts=hosts) as server:
        server.add("/feed.xml", b"<rss/>", delay=0.5)
        urls = [server.url("/feed.xml", host=h) for h in hosts for _ in range(2)]
        await _fire(with_settings(per_host=2, concurrency=3), urls)
        assert server.max_concurrent == 3
        assert server.hits("/feed.xml") == 8


async def test_idle_pools_beyond_the_bound_are_closed() -> None:
    hosts = ("127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4")
    settings = with_settings(concurrency=1)
    with FeedServer(hosts=hosts) as server:
        server.add("/feed.xml", b"<rss/>")
        transport = PerOriginTransport(
            lambda: _guarded_transport(settings, parse_networks(["127.0.0.0/8"]), ssl_ctx()),
            max_idle_pools=2,
        )
        async with httpx.AsyncClient(transport=transport, trust_env=False) as client:
            for host in (*hosts, hosts[0]):
                assert (await client.get(server.url("/feed.xml", host=host))).content == b"<rss/>"
            assert [host for _, host, _ in transport.origins] == ["127.0.0.4", "127.0.0.1"]
        assert transport.origins == []


def ssl_ctx() -> ssl.SSLContext:
    return httpx.create_ssl_context(trust_env=False)
