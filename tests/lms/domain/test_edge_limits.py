"""LMS_RATE_LIMITS: the limits it names change, the others keep their defaults, and every bad
entry is reported at once."""

from __future__ import annotations

import pytest

from lms.config import ConfigError, Settings
from lms.domain.edge_limits import DEFAULT_EDGE_LIMITS, parse_edge_limits
from lms.domain.token_bucket import Limit


def test_only_the_named_limits_change() -> None:
    limits = parse_edge_limits(" login_per_ip = 5/60 ,socket_per_user=2/1,")
    assert limits.login_per_ip == Limit(5, 5 / 60)
    assert limits.socket_per_user == Limit(2, 2.0)
    assert limits.login_per_address == DEFAULT_EDGE_LIMITS.login_per_address
    assert parse_edge_limits("") == DEFAULT_EDGE_LIMITS


def test_a_later_entry_for_the_same_limit_wins() -> None:
    assert parse_edge_limits("login_per_ip=5/60,login_per_ip=7/60").login_per_ip.capacity == 7


def test_every_bad_entry_is_named_with_the_names_there_are() -> None:
    with pytest.raises(ValueError, match="names: login_per_address, ") as raised:
        parse_edge_limits("login=5/60,login_per_ip=fast,register_per_ip=0/60,socket_per_ip")
    message = str(raised.value)
    assert "'login=5/60'" in message
    assert "login_per_ip: expected requests/seconds" in message
    assert "register_per_ip: expected 1 to 1000000" in message
    assert "'socket_per_ip'" in message
    assert "announce_per_user" in message  # the list of names


def test_settings_read_them_from_lms_rate_limits() -> None:
    settings = Settings.from_env({"LMS_RATE_LIMITS": "upload_per_user=1/60"})
    assert settings.rate_limits.upload_per_user == Limit(1, 1 / 60)
    assert Settings.from_env({}).rate_limits == DEFAULT_EDGE_LIMITS
    assert Settings.from_env({}).max_sockets_per_user == 20
    with pytest.raises(ConfigError, match="LMS_RATE_LIMITS="):
        Settings.from_env({"LMS_RATE_LIMITS": "uploads=1/60"})
    with pytest.raises(ConfigError, match="LMS_MAX_SOCKETS_PER_USER="):
        Settings.from_env({"LMS_MAX_SOCKETS_PER_USER": "0"})
