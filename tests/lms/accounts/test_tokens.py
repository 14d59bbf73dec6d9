import time

import jwt
import pytest

from lms.accounts.tokens import CLOCK_LEEWAY, AccessClaims, TokenIssuer
from lms.errors import Unauthenticated
from proto.api import Role

SECRET = "k" * 48


def issuer(access_ttl: int = 900) -> TokenIssuer:
    return TokenIssuer(SECRET, access_ttl=access_ttl, refresh_ttl=3600)


def test_access_token_names_the_user_and_the_generation_of_their_tokens() -> None:
    token = issuer().access(7, Role.INSTRUCTOR, 3)
    assert issuer().verify_access(token) == AccessClaims(7, 3)


def test_an_access_token_without_a_generation_is_malformed() -> None:
    now = int(time.time())
    claims = {"sub": "1", "role": "admin", "typ": "access", "iss": "lms", "iat": now}
    old = jwt.encode({**claims, "exp": now + 60}, SECRET, algorithm="HS256")
    with pytest.raises(Unauthenticated, match="malformed"):
        issuer().verify_access(old)


def test_refresh_token_is_not_accepted_as_access_token() -> None:
    refresh = issuer().refresh(7).token
    with pytest.raises(Unauthenticated, match="not an access token"):
        issuer().verify_access(refresh)


def test_access_token_is_not_accepted_as_refresh_token() -> None:
    with pytest.raises(Unauthenticated):
        issuer().verify_refresh(issuer().access(7, Role.LEARNER))


def test_token_signed_with_another_key_is_rejected() -> None:
    other = TokenIssuer("o" * 48, access_ttl=900, refresh_ttl=3600)
    with pytest.raises(Unauthenticated, match="invalid"):
        issuer().verify_access(other.access(1, Role.ADMIN))


def test_unsigned_alg_none_token_is_rejected() -> None:
    now = int(time.time())
    forged = jwt.encode(
        {"sub": "1", "role": "admin", "typ": "access", "iss": "lms", "iat": now, "exp": now + 60},
        key=None,
        algorithm="none",
    )
    with pytest.raises(Unauthenticated):
        issuer().verify_access(forged)


def test_expired_access_token_says_so() -> None:
    now = int(time.time())
    expired = jwt.encode(
        {
            "sub": "1",
            "role": "admin",
            "typ": "access",
            "iss": "lms",
            "iat": now - CLOCK_LEEWAY - 100,
            "exp": now - CLOCK_LEEWAY - 10,
        },
        SECRET,
        algorithm="HS256",
    )
    with pytest.raises(Unauthenticated, match="expired"):
        issuer().verify_access(expired)


def test_refreshed_tokens_stay_in_their_family() -> None:
    first = issuer().refresh(3)
    second = issuer().refresh(3, first.family)
    claims = issuer().verify_refresh(second.token)
    assert claims.family == first.family
    assert claims.jti != first.jti
    assert claims.user_id == 3


def test_a_refresh_token_signed_again_from_its_row_is_the_same_token() -> None:
    issued = issuer().refresh(3)
    again = issuer().reissue_refresh(3, issued.jti, issued.family, float(issued.expires_at))
    assert again == issued.token
