"""JSON Web Tokens: short-lived access tokens and single-use refresh tokens.

The algorithm is pinned (HS256, verified with `algorithms=["HS256"]`), so a token claiming
`alg: none` or an asymmetric algorithm is rejected rather than trusted. Every token names its
type, so a refresh token cannot be used as an access token or the other way round.

An access token names its user and the generation of that user's tokens when it was issued
(`gen`); it proves who the caller is, not what they may do: `Accounts.authenticate` reads the
role the account has now and refuses a token whose generation has been revoked. The `role`
claim is what the account had at issue, for clients to show; the server never trusts it.

Clocks: a token is verified by whichever node the request reaches, so nodes' clocks disagree by
a few seconds (more after a VM pause or a bad NTP step). Verification allows `CLOCK_LEEWAY`
seconds both ways: a token whose `iat` is up to that far in the verifier's future (issued by a
node whose clock runs ahead) is accepted, beyond it refused as not yet valid; and a token stays
accepted up to that long after its `exp`, so an access token lives at most `access_ttl +
CLOCK_LEEWAY` by the verifier's clock. A minute bounds real skew with room to spare, and is
small beside the 15-minute access lifetime and the generation check that revokes at once.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from lms.errors import Unauthenticated
from proto.api import Role

ALGORITHM = "HS256"
ISSUER = "lms"
CLOCK_LEEWAY = 60
"""Seconds of clock disagreement between nodes tolerated on `iat` and `exp` (see above)."""


@dataclass(frozen=True)
class AccessClaims:
    user_id: int
    generation: int


@dataclass(frozen=True)
class RefreshClaims:
    user_id: int
    jti: uuid.UUID
    family: uuid.UUID


@dataclass(frozen=True)
class IssuedRefresh:
    token: str
    jti: uuid.UUID
    family: uuid.UUID
    expires_at: float


class TokenIssuer:
    def __init__(
        self,
        secret: str,
        *,
        access_ttl: int,
        refresh_ttl: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`clock` gives the wall-clock time tokens are issued at (a test shifts it to play a
        node whose clock is wrong); verification uses PyJWT's reading of the system clock."""
        self._secret = secret
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self._clock = clock

    def access(self, user_id: int, role: Role, generation: int = 0) -> str:
        """An access token for the user, valid while their token generation is `generation`
        (a new account's is 0)."""
        now = int(self._clock())
        claims = {"sub": str(user_id), "role": role.value, "gen": generation, "typ": "access"}
        return self._sign(claims, now, now + self.access_ttl)

    def refresh(self, user_id: int, family: uuid.UUID | None = None) -> IssuedRefresh:
        now = int(self._clock())
        jti = uuid.uuid4()
        family = family or uuid.uuid4()
        expires = now + self.refresh_ttl
        return IssuedRefresh(
            self._refresh_token(user_id, jti, family, expires), jti, family, expires
        )

    def reissue_refresh(
        self, user_id: int, jti: uuid.UUID, family: uuid.UUID, expires_at: float
    ) -> str:
        """Refresh token `jti` again, from what its row keeps (tokens themselves are never
        stored): the same token `refresh` issued, while `refresh_ttl` is unchanged."""
        return self._refresh_token(user_id, jti, family, round(expires_at))

    def _refresh_token(self, user_id: int, jti: uuid.UUID, family: uuid.UUID, expires: int) -> str:
        claims = {"sub": str(user_id), "typ": "refresh", "jti": str(jti), "fam": str(family)}
        return self._sign(claims, expires - self.refresh_ttl, expires)

    def verify_access(self, token: str) -> AccessClaims:
        claims = self._verify(token, "access")
        try:
            return AccessClaims(int(claims["sub"]), int(claims["gen"]))
        except (KeyError, TypeError, ValueError):
            raise Unauthenticated("the access token is malformed") from None

    def verify_refresh(self, token: str) -> RefreshClaims:
        claims = self._verify(token, "refresh")
        try:
            return RefreshClaims(
                int(claims["sub"]), uuid.UUID(claims["jti"]), uuid.UUID(claims["fam"])
            )
        except (KeyError, ValueError):
            raise Unauthenticated("the refresh token is malformed") from None

    def _sign(self, claims: Mapping[str, str | int], issued: int, expires: int) -> str:
        payload = {**claims, "iss": ISSUER, "iat": issued, "exp": expires}
        return jwt.encode(payload, self._secret, algorithm=ALGORITHM)

    def _verify(self, token: str, kind: str) -> dict[str, Any]:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "typ", "iss"]},
                leeway=CLOCK_LEEWAY,
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated(f"the {kind} token has expired") from None
        except jwt.ImmatureSignatureError:
            raise Unauthenticated(f"the {kind} token is not valid yet") from None
        except jwt.InvalidTokenError:
            raise Unauthenticated(f"the {kind} token is invalid") from None
        if claims.get("typ") != kind:
            article = "an" if kind == "access" else "a"
            raise Unauthenticated(f"this is not {article} {kind} token")
        return claims
