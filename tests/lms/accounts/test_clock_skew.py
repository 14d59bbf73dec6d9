"""Tokens between nodes whose clocks disagree: a token issued by a node whose clock is wrong
is verified by a node whose clock is right. The issuer's clock is shifted, nobody sleeps."""

import time

import pytest

from lms.accounts.tokens import CLOCK_LEEWAY, TokenIssuer
from lms.errors import Unauthenticated
from proto.api import Role

SECRET = "k" * 48
ACCESS_TTL = 900


def node_with_clock_off_by(seconds: float) -> TokenIssuer:
    return TokenIssuer(
        SECRET, access_ttl=ACCESS_TTL, refresh_ttl=3600, clock=lambda: time.time() + seconds
    )


def node_with_a_good_clock() -> TokenIssuer:
    return TokenIssuer(SECRET, access_ttl=ACCESS_TTL, refresh_ttl=3600)


def test_a_token_from_a_node_30_s_ahead_is_accepted() -> None:
    token = node_with_clock_off_by(30).access(7, Role.LEARNER, 2)
    assert node_with_a_good_clock().verify_access(token).user_id == 7
    refresh = node_with_clock_off_by(30).refresh(7).token
    assert node_with_a_good_clock().verify_refresh(refresh).user_id == 7


def test_a_token_issued_further_in_the_future_than_the_leeway_is_refused() -> None:
    token = node_with_clock_off_by(CLOCK_LEEWAY + 30).access(7, Role.LEARNER)
    with pytest.raises(Unauthenticated, match="not valid yet"):
        node_with_a_good_clock().verify_access(token)


def test_a_token_expired_by_less_than_the_leeway_is_still_accepted() -> None:
    # Issued by a node running behind: by the verifier's clock it expired 30 s ago.
    token = node_with_clock_off_by(-(ACCESS_TTL + 30)).access(7, Role.LEARNER)
    assert node_with_a_good_clock().verify_access(token).user_id == 7


def test_a_token_expired_by_more_than_the_leeway_is_refused() -> None:
    token = node_with_clock_off_by(-(ACCESS_TTL + CLOCK_LEEWAY + 30)).access(7, Role.LEARNER)
    with pytest.raises(Unauthenticated, match="expired"):
        node_with_a_good_clock().verify_access(token)
