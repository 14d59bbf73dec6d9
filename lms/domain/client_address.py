"""Which address a request came from, for per-client limits.

The peer of the TCP connection is the client unless it is a proxy we trust (nginx in front of
the node), in which case the client is the last address in `X-Forwarded-For` that none of our
proxies added: each proxy appends the address it received the request from, so the entries to
the right of the first untrusted one were written by us and those to its left by the client,
who may write anything there. With no trusted proxies (the default) the header is ignored, so a
client cannot pick the key it is limited by.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def client_address(peer: str, forwarded_for: str | None, trusted: Sequence[Network]) -> str:
    """The client's address: `peer` (the connection's), or from `forwarded_for` when `peer`
    is one of the `trusted` proxies. An entry that is not an address ends the walk there."""
    address = peer
    if not forwarded_for:
        return address
    hops = [hop.strip() for hop in forwarded_for.split(",")]
    while _is_trusted(address, trusted) and hops:
        hop = hops.pop()
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return address
        address = hop
    return address


def _is_trusted(address: str, trusted: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def parse_networks(raw: str) -> tuple[Network, ...]:
    """`"127.0.0.1, 10.0.0.0/8, ::1"`: addresses and CIDR blocks, comma-separated.

    Raises:
      ValueError: an entry is neither.
    """
    networks = []
    for entry in filter(None, (part.strip() for part in raw.split(","))):
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or CIDR block") from None
    return tuple(networks)
