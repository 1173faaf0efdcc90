"""The SSRF address policy as a truth table (pure)."""

from __future__ import annotations

import ipaddress

import pytest

from monitor.netguard import is_blocked, parse_networks, refusal

NONE: tuple[str, ...] = ()


@pytest.mark.parametrize(
    ("address", "allowed", "expected"),
    [
        # Public addresses pass.
        ("93.184.216.34", NONE, None),
        ("8.8.8.8", NONE, None),
        ("2606:4700:4700::1111", NONE, None),
        ("2001:4860:4860::8888", NONE, None),
        # Loopback.
        ("127.0.0.1", NONE, "a loopback address"),
        ("127.255.0.9", NONE, "a loopback address"),
        ("::1", NONE, "a loopback address"),
        # Private (RFC 1918, unique local).
        ("10.0.0.1", NONE, "a private address"),
        ("172.16.5.4", NONE, "a private address"),
        ("192.168.1.1", NONE, "a private address"),
        ("fc00::1", NONE, "a private address"),
        ("fd12:3456::1", NONE, "a private address"),
        # Link-local, cloud metadata included.
        ("169.254.169.254", NONE, "a link-local address"),
        ("fe80::1", NONE, "a link-local address"),
        # Carrier-grade NAT.
        ("100.64.0.1", NONE, "a shared (carrier-grade NAT) address"),
        ("100.127.255.254", NONE, "a shared (carrier-grade NAT) address"),
        # Multicast, reserved, unspecified.
        ("224.0.0.251", NONE, "a multicast address"),
        ("ff02::1", NONE, "a multicast address"),
        ("240.0.0.1", NONE, "a reserved address"),
        ("255.255.255.255", NONE, "a reserved address"),
        ("0.0.0.0", NONE, "an unspecified address"),
        ("::", NONE, "an unspecified address"),
        # Other special-purpose ranges.
        ("192.0.2.10", NONE, "a private address"),
        ("198.18.0.1", NONE, "a private address"),
        # IPv6 carrying a forbidden IPv4 address.
        ("::ffff:127.0.0.1", NONE, "a loopback address (IPv4 127.0.0.1 embedded)"),
        ("::ffff:169.254.169.254", NONE, "a link-local address (IPv4 169.254.169.254 embedded)"),
        ("::ffff:10.1.2.3", NONE, "a private address (IPv4 10.1.2.3 embedded)"),
        ("2002:7f00:1::", NONE, "a loopback address (IPv4 127.0.0.1 embedded)"),
        ("64:ff9b::a00:1", NONE, "a private address (IPv4 10.0.0.1 embedded)"),
        ("::ffff:93.184.216.34", NONE, None),
        # Allow-listed networks pass; neighbours do not.
        ("127.0.0.1", ("127.0.0.0/8",), None),
        ("127.0.0.2", ("127.0.0.1/32",), "a loopback address"),
        ("10.1.2.3", ("10.0.0.0/8",), None),
        ("192.168.1.1", ("10.0.0.0/8",), "a private address"),
        ("::ffff:10.1.2.3", ("10.0.0.0/8",), None),
        ("fd00::5", ("fd00::/8",), None),
        ("::1", ("127.0.0.0/8",), "a loopback address"),
    ],
)
def test_address_policy(address: str, allowed: tuple[str, ...], expected: str | None) -> None:
    assert is_blocked(address, parse_networks(allowed)) == expected


def test_accepts_address_objects() -> None:
    assert is_blocked(ipaddress.ip_address("10.9.8.7")) == "a private address"


def test_parse_networks_takes_bare_addresses_and_loose_cidrs() -> None:
    assert [str(n) for n in parse_networks([" 10.1.2.3 ", "192.168.1.7/24", "::1"])] == [
        "10.1.2.3/32",
        "192.168.1.0/24",
        "::1/128",
    ]


def test_refusal_names_the_address_and_the_way_out() -> None:
    assert refusal("127.0.0.1", "a loopback address") == (
        "refused: 127.0.0.1 is a loopback address; "
        "allow it with http.allow_private_networks or MONITOR_ALLOW_PRIVATE_NETWORKS"
    )
