"""The fetcher against a real loopback server: validators, redirects, statuses, headers."""

from __future__ import annotations

import base64
import socket
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from monitor.errors import FetchError
from monitor.fetch import Fetcher, cookie_site
from monitor.settings import HttpSettings
from monitor.types import FetchResult
from tests.feedserver import FeedServer, resolving, tcp_server

pytestmark = pytest.mark.anyio

RSS = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>Talks watch</title>
<item><guid>a1</guid><title>Envoys meet again in Geneva</title></item></channel></rss>"""
LOOPBACK_OK = HttpSettings(allow_private_networks=("127.0.0.0/8",))


async def fetch(url: str, settings: HttpSettings = LOOPBACK_OK, **kw: Any) -> FetchResult:
    async with Fetcher(settings) as fetcher:
        return await fetcher.fetch(url, **kw)


async def fetch_error(url: str, settings: HttpSettings = LOOPBACK_OK) -> FetchError:
    with pytest.raises(FetchError) as caught:
        await fetch(url, settings)
    return caught.value


# --- validators ----------------------------------------------------------------------


async def test_etag_gives_304_on_the_second_fetch(feed_server: FeedServer) -> None:
    url = feed_server.add("/feed.xml", RSS, etag='"rev-7"')
    first = await fetch(url)
    assert (first.status, first.body, first.etag) == (200, RSS, '"rev-7"')
    second = await fetch(url, etag=first.etag)
    assert second.not_modified and second.status == 304
    assert second.etag == '"rev-7"'
    assert feed_server.requests("/feed.xml")[1]["if-none-match"] == '"rev-7"'


async def test_last_modified_gives_304_on_the_second_fetch(feed_server: FeedServer) -> None:
    stamp = "Tue, 04 Mar 2025 09:30:00 GMT"
    url = feed_server.add("/lm.xml", RSS, last_modified=stamp)
    first = await fetch(url)
    assert first.body == RSS and first.last_modified == stamp
    second = await fetch(url, last_modified=first.last_modified)
    assert second.body is None and second.last_modified == stamp
    assert feed_server.requests("/lm.xml")[1]["if-modified-since"] == stamp


async def test_changed_feed_is_fetched_again_despite_old_etag(feed_server: FeedServer) -> None:
    url = feed_server.add("/feed.xml", RSS, etag='"rev-8"')
    result = await fetch(url, etag='"rev-7"')
    assert result.status == 200 and result.body == RSS and result.etag == '"rev-8"'


async def test_headers_are_lower_cased_and_max_age_read(feed_server: FeedServer) -> None:
    url = feed_server.add("/feed.xml", RSS, headers={"Cache-Control": "public, max-age=1800"})
    result = await fetch(url)
    assert result.headers["cache-control"] == "public, max-age=1800"
    assert all(name == name.lower() for name in result.headers)
    assert result.max_age_s == 1800


async def test_identifies_itself_and_asks_for_compressed_feeds(feed_server: FeedServer) -> None:
    url = feed_server.add("/feed.xml", RSS)
    await fetch(url)
    sent = feed_server.requests("/feed.xml")[0]
    assert "https://github.com/storywatch/monitor" in sent["user-agent"]
    assert sent["accept-encoding"] == "gzip, deflate, br"
    assert sent["accept"].startswith("application/rss+xml")


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br"])
async def test_compressed_bodies_are_decoded(feed_server: FeedServer, encoding: str) -> None:
    body = RSS * 500
    url = feed_server.add("/feed.xml", body, encoding=encoding)
    result = await fetch(url)
    assert result.body == body
    assert result.headers["content-encoding"] == encoding


async def test_raw_deflate_without_zlib_wrapper_is_decoded(feed_server: FeedServer) -> None:
    import zlib

    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    raw = packer.compress(RSS) + packer.flush()
    url = feed_server.add("/feed.xml", raw, headers={"Content-Encoding": "deflate"})
    assert (await fetch(url)).body == RSS


async def test_corrupt_gzip_is_a_fetch_error(feed_server: FeedServer) -> None:
    url = feed_server.add("/feed.xml", b"not gzip at all", headers={"Content-Encoding": "gzip"})
    error = await fetch_error(url)
    assert "cannot decode the gzip body" in error.reason


# --- redirects -----------------------------------------------------------------------


async def test_301_then_302_records_only_the_permanent_hop(feed_server: FeedServer) -> None:
    final = feed_server.add("/final.xml", RSS)
    middle = feed_server.add("/middle", redirect=final, status=302)
    start = feed_server.add("/start", redirect=middle, status=301)
    result = await fetch(start)
    assert result.body == RSS and result.url == final
    assert result.permanent_url == middle


async def test_302_then_301_records_no_permanent_url(feed_server: FeedServer) -> None:
    final = feed_server.add("/final.xml", RSS)
    middle = feed_server.add("/middle", redirect=final, status=301)
    start = feed_server.add("/start", redirect=middle, status=302)
    result = await fetch(start)
    assert result.url == final and result.permanent_url is None


async def test_301_then_308_records_the_end_of_the_chain(feed_server: FeedServer) -> None:
    final = feed_server.add("/final.xml", RSS)
    middle = feed_server.add("/middle", redirect="/final.xml", status=308)
    start = feed_server.add("/start", redirect=middle, status=301)
    result = await fetch(start)
    assert result.url == final and result.permanent_url == final


async def test_a_cookie_set_on_a_redirect_goes_with_the_next_hop(feed_server: FeedServer) -> None:
    """A consent or session redirect: the feed answers only to the cookie the hop set."""
    final = feed_server.add("/final.xml", RSS)
    start = feed_server.add(
        "/start", redirect="/final.xml", headers={"Set-Cookie": "consent=yes; Path=/"}
    )
    result = await fetch(start)
    assert result.url == final
    assert "cookie" not in feed_server.requests("/start")[0]
    assert feed_server.requests("/final.xml")[0]["cookie"] == "consent=yes"


async def test_cookies_stay_with_their_host_and_path() -> None:
    with FeedServer(hosts=("127.0.0.1", "127.0.0.2")) as server:
        server.add("/news/feed.xml", RSS, headers={"Set-Cookie": "session=abc; Path=/news"})
        server.add("/other.xml", RSS)
        async with Fetcher(LOOPBACK_OK) as fetcher:
            await fetcher.fetch(server.url("/news/feed.xml"))
            await fetcher.fetch(server.url("/news/feed.xml"))
            await fetcher.fetch(server.url("/other.xml"))
            await fetcher.fetch(server.url("/news/feed.xml", host="127.0.0.2"))
        first, again = server.requests("/news/feed.xml")[:2]
        assert "cookie" not in first and again["cookie"] == "session=abc"
        assert "cookie" not in server.requests("/other.xml")[0]
        assert "cookie" not in server.requests("/news/feed.xml")[2]


async def test_credentials_in_the_url_go_as_basic_authentication() -> None:
    """A private feed's URL may carry its user and password, percent-encoded. A relative
    redirect keeps them (the same authority); a redirect to another host does not."""
    with FeedServer(hosts=("127.0.0.1", "127.0.0.2")) as server:
        server.add("/private.xml", RSS)
        server.add("/renamed", redirect="/private.xml")
        server.add("/elsewhere", redirect=server.url("/private.xml", host="127.0.0.2"))
        url = f"http://reader%40desk:s3cr%3At@127.0.0.1:{server.port}"
        assert (await fetch(f"{url}/private.xml")).body == RSS
        await fetch(f"{url}/renamed")
        await fetch(f"{url}/elsewhere")
        expected = "Basic " + base64.b64encode(b"reader@desk:s3cr:t").decode()
        direct, renamed, elsewhere = server.requests("/private.xml")
        assert direct["authorization"] == renamed["authorization"] == expected
        assert server.requests("/renamed")[0]["authorization"] == expected
        assert elsewhere["host"].startswith("127.0.0.2:")
        assert "authorization" not in elsewhere


async def test_no_credentials_no_authorization(feed_server: FeedServer) -> None:
    await fetch(feed_server.add("/feed.xml", RSS))
    assert "authorization" not in feed_server.requests("/feed.xml")[0]


async def test_a_domain_cookie_goes_to_the_sites_other_hosts_only(
    feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = ("www.example.com", "feeds.example.com", "example.org", "news.example.co.uk")
    monkeypatch.setattr(anyio, "getaddrinfo", resolving(dict.fromkeys(names, "127.0.0.1")))
    feed_server.add("/start.xml", RSS, headers={"Set-Cookie": "site=1; Domain=example.com"})
    feed_server.add("/feed.xml", RSS)
    async with Fetcher(LOOPBACK_OK) as fetcher:
        await fetcher.fetch(f"http://www.example.com:{feed_server.port}/start.xml")
        for name in names[1:]:
            await fetcher.fetch(f"http://{name}:{feed_server.port}/feed.xml")
    sent = {r["host"].split(":")[0]: r.get("cookie") for r in feed_server.requests("/feed.xml")}
    assert sent == {"feeds.example.com": "site=1", "example.org": None, "news.example.co.uk": None}


@pytest.mark.parametrize(
    ("host", "site"),
    [
        ("www.example.com", "example.com"),
        ("Example.COM.", "example.com"),
        ("a.b.example.co.uk", "co.uk"),
        ("printer.office.local", "local"),
        ("localhost", "localhost"),
        ("127.0.0.1", "127.0.0.1"),
        ("::1", "::1"),
    ],
)
def test_cookie_site(host: str, site: str) -> None:
    assert cookie_site(host) == site


async def test_cookies_do_not_outlive_the_fetcher(feed_server: FeedServer) -> None:
    url = feed_server.add("/feed.xml", RSS, headers={"Set-Cookie": "session=abc"})
    await fetch(url)
    await fetch(url)
    assert [r.get("cookie") for r in feed_server.requests("/feed.xml")] == [None, None]


async def test_redirect_loop_is_detected(feed_server: FeedServer) -> None:
    a = feed_server.add("/a", redirect="/b")
    feed_server.add("/b", redirect="/a")
    error = await fetch_error(a)
    assert "redirect loop" in error.reason
    assert feed_server.hits("/a") == 1 and feed_server.hits("/b") == 1


async def test_too_many_redirects(feed_server: FeedServer) -> None:
    for i in range(7):
        feed_server.add(f"/hop{i}", redirect=f"/hop{i + 1}")
    feed_server.add("/hop7", RSS)
    settings = LOOPBACK_OK.model_copy(update={"max_redirects": 5})
    error = await fetch_error(feed_server.url("/hop0"), settings)
    assert "too many redirects" in error.reason
    assert feed_server.hits("/hop5") == 1 and feed_server.hits("/hop6") == 0


async def test_exactly_max_redirects_is_fine(feed_server: FeedServer) -> None:
    for i in range(5):
        feed_server.add(f"/hop{i}", redirect=f"/hop{i + 1}")
    feed_server.add("/hop5", RSS)
    assert (await fetch(feed_server.url("/hop0"))).body == RSS


@pytest.mark.parametrize("target", ["ftp://example.org/feed", "file:///etc/passwd"])
async def test_redirect_to_other_schemes_is_refused(feed_server: FeedServer, target: str) -> None:
    url = feed_server.add("/start", redirect=target)
    error = await fetch_error(url)
    assert "only http and https are fetched" in error.reason


async def test_redirect_without_location(feed_server: FeedServer) -> None:
    url = feed_server.add("/start", status=302)
    assert "without a Location" in (await fetch_error(url)).reason


# --- error statuses ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "words"),
    [(404, "HTTP 404 Not Found"), (410, "gone for good"), (500, "HTTP 500"), (403, "HTTP 403")],
)
async def test_error_statuses(feed_server: FeedServer, status: int, words: str) -> None:
    url = feed_server.add("/feed.xml", b"nope", status=status)
    error = await fetch_error(url)
    assert error.status == status and words in error.reason
    assert error.retry_after_s is None


async def test_unknown_path_is_404(feed_server: FeedServer) -> None:
    assert (await fetch_error(feed_server.url("/missing"))).status == 404


async def test_429_with_retry_after_seconds(feed_server: FeedServer) -> None:
    url = feed_server.add("/feed.xml", status=429, retry_after=120)
    error = await fetch_error(url)
    assert (error.status, error.retry_after_s) == (429, 120)
    assert "retry after 120 s" in error.reason


async def test_503_with_retry_after_http_date(feed_server: FeedServer) -> None:
    url = feed_server.add(
        "/feed.xml",
        status=503,
        headers={"Date": "Wed, 05 Mar 2025 10:00:00 GMT"},
        retry_after="Wed, 05 Mar 2025 10:05:00 GMT",
    )
    error = await fetch_error(url)
    assert (error.status, error.retry_after_s) == (503, 300)


async def test_huge_retry_after_is_capped(feed_server: FeedServer) -> None:
    url = feed_server.add("/feed.xml", status=429, retry_after=10**9)
    assert (await fetch_error(url)).retry_after_s == 86400


# --- transport errors ----------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_connection_refused_is_a_short_reason() -> None:
    error = await fetch_error(f"http://127.0.0.1:{_closed_port()}/feed.xml")
    assert error.reason.endswith("connection refused")
    assert error.status is None and "Traceback" not in str(error)


async def test_unknown_host_is_a_short_reason() -> None:
    error = await fetch_error("http://no-such-host.invalid/feed.xml")
    assert error.reason.startswith("cannot resolve host no-such-host.invalid")


async def test_tls_failure_is_a_short_reason(feed_server: FeedServer) -> None:
    # TLS spoken to a plain-HTTP port fails in the handshake.
    url = feed_server.add("/feed.xml", RSS).replace("http://", "https://")
    error = await fetch_error(url)
    assert error.reason.startswith("TLS error")


def _speak_nonsense(conn: socket.socket) -> None:
    conn.recv(4096)
    conn.sendall(b"SPEAKING NONSENSE\r\n\r\n")


@pytest.fixture
def garbage_server() -> Iterator[str]:
    """A TCP server that answers every connection with something that is not HTTP."""
    with tcp_server(_speak_nonsense) as url:
        yield url


async def test_protocol_error_is_a_short_reason(garbage_server: str) -> None:
    error = await fetch_error(garbage_server)
    assert error.reason.startswith("the server broke the HTTP protocol")


@pytest.mark.parametrize("url", ["ftp://example.org/feed", "not a url", "http:///nohost"])
async def test_bad_feed_urls_are_refused_before_any_io(url: str) -> None:
    error = await fetch_error(url)
    assert error.url == url


async def test_unexpected_exceptions_are_not_swallowed(
    feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = feed_server.add("/feed.xml", RSS)

    class BoomError(Exception):
        pass

    async def broken_resolver(*args: Any, **kwargs: Any) -> Any:
        raise BoomError

    monkeypatch.setattr(anyio, "getaddrinfo", broken_resolver)
    with pytest.raises(BoomError):
        await fetch(url)


async def test_fetch_outside_async_with_is_a_programming_error() -> None:
    with pytest.raises(RuntimeError, match="async with"):
        await Fetcher(LOOPBACK_OK).fetch("http://127.0.0.1:1/feed.xml")


async def test_one_client_serves_many_fetches_over_keep_alive(feed_server: FeedServer) -> None:
    url = feed_server.add("/feed.xml", RSS)
    async with Fetcher(LOOPBACK_OK) as fetcher, anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(fetcher.fetch, url)
    assert feed_server.hits("/feed.xml") == 10


async def test_answers_without_a_feed_keep_the_connection_alive(feed_server: FeedServer) -> None:
    """A 304, a redirect and a small error page are read to their end, so one connection
    serves them all (unread, each closed its connection)."""
    url = feed_server.add("/feed.xml", RSS, etag='"v1"')
    moved = feed_server.add("/old.xml", b"moved", status=301, headers={"Location": url})
    missing = feed_server.url("/missing.xml")
    one_at_a_time = HttpSettings(allow_private_networks=("127.0.0.0/8",), per_host=1)
    async with Fetcher(one_at_a_time) as fetcher:
        assert (await fetcher.fetch(url)).status == 200
        for _ in range(3):
            assert (await fetcher.fetch(url, etag='"v1"')).status == 304
        assert (await fetcher.fetch(moved)).status == 200
        with pytest.raises(FetchError, match="404"):
            await fetcher.fetch(missing)
        assert (await fetcher.fetch(url, etag='"v1"')).status == 304
    assert feed_server.connections == 1
