"""The SSRF guard in the fetcher: loopback is the forbidden target, checked on every hop."""

from __future__ import annotations

import anyio
import pytest

from monitor.errors import BlockedAddressError
from monitor.fetch import Fetcher
from monitor.settings import HttpSettings
from monitor.types import FetchResult
from tests.feedserver import FeedServer, resolving

pytestmark = pytest.mark.anyio

HINT = "allow it with http.allow_private_networks or MONITOR_ALLOW_PRIVATE_NETWORKS"


async def fetch(url: str, settings: HttpSettings) -> FetchResult:
    async with Fetcher(settings) as fetcher:
        return await fetcher.fetch(url)


async def refusal(url: str, settings: HttpSettings | None = None) -> BlockedAddressError:
    with pytest.raises(BlockedAddressError) as caught:
        await fetch(url, settings or HttpSettings())
    return caught.value


async def test_loopback_ip_is_refused_by_default(feed_server: FeedServer) -> None:
    url = feed_server.add("/feed.xml", b"<rss/>")
    error = await refusal(url)
    assert error.reason == f"refused: 127.0.0.1 is a loopback address; {HINT}"
    assert error.url == url
    assert feed_server.hits("/feed.xml") == 0


async def test_localhost_is_refused_by_default(feed_server: FeedServer) -> None:
    feed_server.add("/feed.xml", b"<rss/>")
    error = await refusal(f"http://localhost:{feed_server.port}/feed.xml")
    assert error.reason.startswith("refused: localhost (")
    assert "is a loopback address" in error.reason
    assert feed_server.hits("/feed.xml") == 0


@pytest.mark.parametrize(
    ("host", "kind"),
    [
        ("[::ffff:127.0.0.1]", "a loopback address (IPv4 127.0.0.1 embedded)"),
        ("0.0.0.0", "an unspecified address"),
        ("169.254.169.254", "a link-local address"),
        ("10.0.0.1", "a private address"),
        ("[::1]", "a loopback address"),
    ],
)
async def test_forbidden_literals_are_refused_before_connecting(host: str, kind: str) -> None:
    error = await refusal(f"http://{host}:9/feed.xml")
    assert f"is {kind};" in error.reason


async def test_redirect_to_a_forbidden_host_is_refused_at_the_hop() -> None:
    with FeedServer(hosts=("127.0.0.1", "127.0.0.2")) as server:
        server.add("/inside.xml", b"<rss/>")
        start = server.add("/start", redirect=server.url("/inside.xml", host="127.0.0.2"))
        only_first = HttpSettings(allow_private_networks=("127.0.0.1/32",))
        error = await refusal(start, only_first)
        assert error.reason == f"refused: 127.0.0.2 is a loopback address; {HINT}"
        assert (server.hits("/start"), server.hits("/inside.xml")) == (1, 0)
        # The same chain passes when the second address is allowed too.
        both = HttpSettings(allow_private_networks=("127.0.0.1/32", "127.0.0.2/32"))
        assert (await fetch(start, both)).body == b"<rss/>"


async def test_a_name_resolving_to_loopback_is_refused(
    feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    feed_server.add("/feed.xml", b"<rss/>")
    monkeypatch.setattr(anyio, "getaddrinfo", resolving({"news.example.com": "127.0.0.1"}))
    error = await refusal(f"http://news.example.com:{feed_server.port}/feed.xml")
    assert error.reason.startswith("refused: news.example.com (127.0.0.1) is a loopback")
    assert feed_server.hits("/feed.xml") == 0


async def test_connects_to_the_checked_address_and_keeps_the_host_name(
    feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    feed_server.add("/feed.xml", b"<rss/>")
    monkeypatch.setattr(anyio, "getaddrinfo", resolving({"news.example.com": "127.0.0.1"}))
    allowed = HttpSettings(allow_private_networks=("127.0.0.0/8",))
    result = await fetch(f"http://news.example.com:{feed_server.port}/feed.xml", allowed)
    assert result.body == b"<rss/>"
    assert feed_server.requests("/feed.xml")[0]["host"] == f"news.example.com:{feed_server.port}"


async def test_proxy_variables_cannot_route_around_the_guard(
    feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = feed_server.add("/feed.xml", b"<rss/>")
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    await refusal(url)
    allowed = HttpSettings(allow_private_networks=("127.0.0.0/8",))
    assert (await fetch(url, allowed)).body == b"<rss/>"
    assert feed_server.hits("/feed.xml") == 1
