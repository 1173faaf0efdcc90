"""Address policy against server-side request forgery: which IP addresses a feed may not reach.

Pure functions only; `monitor.fetch` applies them to every address it resolves or connects to.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOW_HINT = "allow it with http.allow_private_networks or MONITOR_ALLOW_PRIVATE_NETWORKS"

_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def parse_networks(networks: Iterable[str]) -> tuple[IPNetwork, ...]:
    """Networks from CIDR strings such as "10.0.0.0/8" (a bare address is a /32 or /128)."""
    return tuple(ipaddress.ip_network(n.strip(), strict=False) for n in networks)


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, NAT64), if it carries one."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_kind(ip: IPAddress) -> str | None:
    """What makes `ip` unfit for polling ("a loopback address", ...), or None when it is public."""
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip in _CGNAT:
        return "a shared (carrier-grade NAT) address"
    if ip.is_reserved:
        return "a reserved address"
    if ip.is_private:
        return "a private address"
    if not ip.is_global:
        return "a non-global address"
    return None


def _allowed(ip: IPAddress, allowed: Sequence[IPNetwork]) -> bool:
    return any(ip.version == net.version and ip in net for net in allowed)


def is_blocked(ip: IPAddress | str, allowed: Sequence[IPNetwork] = ()) -> str | None:
    """Why `ip` is refused ("a loopback address", ...), or None when it may be polled.

    An address inside one of the `allowed` networks is never refused. An IPv6 address
    carrying an IPv4 address (mapped, 6to4, NAT64) is judged by the IPv4 address it carries.
    """
    address = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
    inner = embedded_ipv4(address)
    if _allowed(address, allowed) or (inner is not None and _allowed(inner, allowed)):
        return None
    if inner is not None:
        kind = address_kind(inner)
        return None if kind is None else f"{kind} (IPv4 {inner} embedded)"
    return address_kind(address)


def refusal(ip: IPAddress | str, kind: str) -> str:
    """The message a refused feed records, naming the address and the way to allow it."""
    return f"refused: {ip} is {kind}; {ALLOW_HINT}"
