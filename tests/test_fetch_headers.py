"""Pure header arithmetic of the fetcher: Retry-After, max-age, Expires, status reasons."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from monitor.fetch import (
    parse_http_date,
    parse_max_age,
    parse_retry_after,
    retry_after_for,
    status_reason,
)

NOW = datetime(2025, 3, 5, 10, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120),
        (" 0 ", 0),
        ("Wed, 05 Mar 2025 10:02:00 GMT", 120),
        ("Wednesday, 05-Mar-25 10:02:00 GMT", 120),
        ("Wed, 05 Mar 2025 09:00:00 GMT", 0),  # already past
        ("Thu, 01 Jan 2099 00:00:00 GMT", 86400),  # capped
        ("99999999", 86400),
        ("-5", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, expected: int | None) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_retry_after_cap_is_a_parameter() -> None:
    assert parse_retry_after("7200", NOW, cap_s=3600) == 3600


def test_retry_after_date_counts_from_the_response_date() -> None:
    headers = {
        "date": "Wed, 05 Mar 2025 12:00:00 GMT",
        "retry-after": "Wed, 05 Mar 2025 12:01:00 GMT",
    }
    assert retry_after_for(headers, NOW) == 60  # not 2 h + 60 s from our own clock


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"cache-control": "max-age=600"}, 600),
        ({"cache-control": 'public, max-age="900", must-revalidate'}, 900),
        ({"cache-control": "s-maxage=300"}, 300),
        ({"cache-control": "max-age=60, s-maxage=300"}, 60),
        ({"cache-control": "Max-Age=30"}, 30),
        ({"cache-control": "no-cache"}, None),
        ({"cache-control": "max-age=soon"}, None),
        ({"expires": "Wed, 05 Mar 2025 11:00:00 GMT"}, 3600),
        (
            {"expires": "Wed, 05 Mar 2025 11:00:00 GMT", "date": "Wed, 05 Mar 2025 10:30:00 GMT"},
            1800,
        ),
        ({"expires": "Wed, 05 Mar 2025 09:00:00 GMT"}, 0),
        ({"expires": "0"}, None),
        ({"cache-control": "max-age=120", "expires": "Wed, 05 Mar 2025 11:00:00 GMT"}, 120),
        ({}, None),
    ],
)
def test_parse_max_age(headers: dict[str, str], expected: int | None) -> None:
    assert parse_max_age(headers, NOW) == expected


def test_parse_http_date() -> None:
    assert parse_http_date("Wed, 05 Mar 2025 10:00:00 GMT") == NOW
    assert parse_http_date("Wed, 05 Mar 2025 11:00:00 +0100") == NOW
    assert parse_http_date("garbage") is None
    assert parse_http_date(None) is None


@pytest.mark.parametrize(
    ("status", "phrase", "retry", "expected"),
    [
        (404, "Not Found", None, "HTTP 404 Not Found"),
        (410, "", None, "HTTP 410 Gone: the feed is gone for good"),
        (429, "Too Many Requests", 30, "HTTP 429 Too Many Requests; retry after 30 s"),
        (599, "", None, "HTTP 599"),
    ],
)
def test_status_reason(status: int, phrase: str, retry: int | None, expected: str) -> None:
    assert status_reason(status, phrase, retry) == expected
