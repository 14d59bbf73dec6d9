"""The client address a request is limited by: the peer, or X-Forwarded-For behind our proxies."""

import ipaddress

import pytest

from lms.domain.client_address import client_address, parse_networks

NGINX = parse_networks("10.0.0.0/8, ::1")


def test_without_trusted_proxies_the_header_is_ignored() -> None:
    assert client_address("203.0.113.7", "198.51.100.1", ()) == "203.0.113.7"


def test_a_header_from_an_untrusted_peer_is_ignored() -> None:
    assert client_address("203.0.113.7", "198.51.100.1", NGINX) == "203.0.113.7"


def test_behind_a_trusted_proxy_the_client_is_the_address_it_received_from() -> None:
    assert client_address("10.0.0.2", "198.51.100.1", NGINX) == "198.51.100.1"


def test_addresses_a_client_wrote_into_the_header_itself_are_not_believed() -> None:
    # The client sent "X-Forwarded-For: 1.2.3.4"; nginx appended the address it saw.
    assert client_address("10.0.0.2", "1.2.3.4, 198.51.100.1", NGINX) == "198.51.100.1"


def test_a_chain_of_trusted_proxies_is_walked_to_the_first_untrusted_hop() -> None:
    assert client_address("::1", "1.2.3.4, 198.51.100.1, 10.1.1.1", NGINX) == "198.51.100.1"


def test_a_garbled_hop_stops_the_walk_at_the_last_trusted_address() -> None:
    assert client_address("10.0.0.2", "198.51.100.1, unknown", NGINX) == "10.0.0.2"


def test_only_trusted_hops_leave_the_leftmost_one() -> None:
    assert client_address("10.0.0.2", "10.0.0.3", NGINX) == "10.0.0.3"


def test_networks_parse_from_addresses_and_blocks() -> None:
    assert parse_networks(" 127.0.0.1 ,10.0.0.0/8,") == (
        ipaddress.ip_network("127.0.0.1/32"),
        ipaddress.ip_network("10.0.0.0/8"),
    )
    with pytest.raises(ValueError, match="'nginx' is not an IP address"):
        parse_networks("nginx")
