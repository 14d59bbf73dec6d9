"""Registration, login, token refresh and logout, and who a token's bearer is now: the rules,
with storage and hashing passed in.

Every authenticated request reads its caller's standing (role and token generation), so it is
kept in the node's cache under the user's `account` tag, with their profile (`me`). Whatever
revokes tokens or changes the row through here (a role change, logout, a replayed refresh
token, an edit) invalidates that tag once its transaction has committed and before it answers:
on this node the next request sees it, on the others once the Bus brings the invalidation
(within 100 ms). A change made behind the API's back (SQL, `lms createadmin` in another
process) is seen within `ACCOUNT_TTL`, or from the user's next sign-in.
"""

from __future__ import annotations

import functools
import zoneinfo

import structlog

from lms.accounts.password_rules import refuse_weak
from lms.accounts.passwords import hash_password, needs_rehash, verify_password
from lms.accounts.tokens import TokenIssuer
from lms.analytics import tags
from lms.cache.cache import Cache
from lms.domain.access import Principal, Standing, may_edit_user
from lms.errors import Forbidden, Invalid, NotFound, Unauthenticated
from lms.mail.nudge import Nudge, nudge_mailer
from lms.store import users
from lms.store.database import Database
from lms.store.rows import changes
from proto.api import (
    LoginRequest,
    Registered,
    RegisterRequest,
    Role,
    TokenPair,
    User,
    UserPatch,
)

log = structlog.get_logger()

# The longest a cached standing or profile is kept: what a change that did not invalidate it
# (made outside this service) may take to be seen.
ACCOUNT_TTL = 30.0

# How long after a refresh token was spent the same token still gets the same successor instead
# of counting as a replay. A page left while its refresh was in flight never stores the pair the
# server rotated to, and the next page (or tab) spends the old token again, seconds later; without
# the grace that reuse revoked the whole login. Long enough for a navigation on a slow network;
# short, since within it a second holder gets the same successor rather than being caught (any
# later reuse is still a replay, and a logout still ends the family).
REFRESH_REUSE_GRACE = 30.0

REGISTERED = (
    "if this address had no account, it has one now: log in with it; if it had one, its "
    "owner has been told by mail, and the account is unchanged"
)


class Accounts:
    def __init__(self, db: Database, issuer: TokenIssuer, cache: Cache, nudge: Nudge) -> None:
        """`nudge` tells this node's Mailer that mail was enqueued."""
        self._db = db
        self._issuer = issuer
        self._cache = cache
        self._nudge = nudge

    async def register(self, request: RegisterRequest) -> Registered:
        """Create a learner account with a welcome mail or, when the address has an account
        already, mail its owner that someone tried (at most daily, `users.register`).

        The answer is the same either way, after the same work (the password is checked and
        hashed before the address is looked at), so neither it nor its time tells who has an
        account. Raises `WeakPassword` (422) for a password too easy to guess, whoever asks.
        """
        refuse_weak(request.password, request.email)
        password_hash = await hash_password(request.password)
        name = request.name.strip()
        user = await self._db.transaction(
            users.register, request.email, name, password_hash, Role.LEARNER
        )
        if user is None:
            log.info("registration_for_taken_address")
        else:
            await self._cache.invalidate(tags.PLATFORM)
            log.info("user_registered", user_id=user.id)
        await nudge_mailer(self._nudge)
        return Registered(email=request.email, name=name, message=REGISTERED)

    async def login(self, request: LoginRequest) -> TokenPair:
        found = await self._db.transaction(users.credentials, request.email)
        user, stored_hash = found if found else (None, None)
        if not await verify_password(stored_hash, request.password) or user is None:
            raise Unauthenticated("wrong e-mail address or password")
        if stored_hash and needs_rehash(stored_hash):
            new_hash = await hash_password(request.password)
            await self._db.transaction(users.set_password_hash, user.id, new_hash)
        # The row was just read: whatever changed it behind the API's back since it was
        # cached holds from this sign-in on, on every node.
        await self._cache.invalidate(tags.account(user.id))
        return await self._issue(user)

    async def refresh(self, refresh_token: str) -> TokenPair:
        claims = self._issuer.verify_refresh(refresh_token)
        successor = self._issuer.refresh(claims.user_id, claims.family)
        rotated = await self._db.transaction(
            users.rotate_refresh,
            claims.jti,
            successor.jti,
            successor.family,
            successor.expires_at,
            REFRESH_REUSE_GRACE,
        )
        if rotated is None:
            # A replay revoked the family and the user's access tokens (or the token was spent).
            await self._cache.invalidate(tags.account(claims.user_id))
            log.warning("refresh_token_replayed", user_id=claims.user_id)
            raise Unauthenticated("this refresh token was already used or revoked; log in again")
        if rotated.jti == successor.jti:
            token = successor.token
        else:
            log.info("refresh_token_reused_within_grace", user_id=claims.user_id)
            token = self._issuer.reissue_refresh(
                rotated.user.id, rotated.jti, claims.family, rotated.expires_at
            )
        return self._pair(rotated.user, rotated.generation, token)

    async def log_out(self, who: Principal) -> None:
        """End every session of the user: their refresh and access tokens, on every device."""
        await self._db.transaction(users.log_out, who.user_id)
        await self._cache.invalidate(tags.account(who.user_id))
        log.info("user_logged_out", user_id=who.user_id)

    async def authenticate(self, token: str) -> Principal:
        """The bearer of access token `token`, with the role their account has now.

        Raises `Unauthenticated` for a missing, expired, forged or revoked token (logout, a
        replayed refresh token, a role change) and for an account that no longer exists.
        """
        claims = self._issuer.verify_access(token)
        standing = await self._standing_of(claims.user_id)
        if standing.token_generation != claims.generation:
            raise Unauthenticated(
                "this access token was revoked (logout, or a change to the account); "
                "refresh it or log in again"
            )
        return Principal(claims.user_id, standing.role)

    async def current(self, who: Principal) -> Principal:
        """`who` with the role their account has now: for a connection admitted earlier that
        is about to do something the role decides."""
        return Principal(who.user_id, (await self._standing_of(who.user_id)).role)

    async def standing(self, user_id: int) -> Standing | None:
        """The user's role and token generation now (None once they are gone), read on every
        authenticated request: from the cache, else one primary-key read."""

        async def read() -> Standing | None:
            return await self._db.connection(users.standing, user_id)

        return await self._cache.get_or_compute(
            f"account:standing:{user_id}",
            [tags.account(user_id)],
            ACCOUNT_TTL,
            read,
            Standing | None,
        )

    async def _standing_of(self, user_id: int) -> Standing:
        standing = await self.standing(user_id)
        if standing is None:
            raise Unauthenticated("this account no longer exists")
        return standing

    async def me(self, who: Principal) -> User:
        async def read() -> User | None:
            return await self._db.connection(users.user_by_id, who.user_id)

        user = await self._cache.get_or_compute(
            f"account:user:{who.user_id}",
            [tags.account(who.user_id)],
            ACCOUNT_TTL,
            read,
            User | None,
        )
        if user is None:
            raise Unauthenticated("this account no longer exists")
        return user

    async def edit(self, who: Principal, user_id: int, patch: UserPatch) -> User:
        values = changes(patch)
        if not may_edit_user(who, user_id, changes_role="role" in values):
            raise Forbidden("only an admin may change roles or edit other users")
        if "time_zone" in values and values["time_zone"] not in _time_zones():
            raise Invalid(
                f"{values['time_zone']!r} is not an IANA time zone name; send one such as "
                "'Europe/Paris' or 'UTC' - at `$.time_zone`"
            )
        user = await self._db.transaction(users.update_user, user_id, values)
        if user is None:
            raise NotFound(f"no user with id {user_id}")
        # Their account row changed (a role change also revoked their tokens); their time
        # zone counts their days; the platform counts users by role.
        await self._cache.invalidate(tags.account(user_id), tags.user(user_id), tags.PLATFORM)
        if "role" in values:
            log.info("user_role_changed", user_id=user_id, role=user.role, by=who.user_id)
        return user

    async def _issue(self, user: User) -> TokenPair:
        issued = self._issuer.refresh(user.id)
        generation = await self._db.transaction(
            users.store_refresh, issued.jti, issued.family, user.id, issued.expires_at
        )
        return self._pair(user, generation, issued.token)

    def _pair(self, user: User, generation: int, refresh_token: str) -> TokenPair:
        return TokenPair(
            access_token=self._issuer.access(user.id, user.role, generation),
            refresh_token=refresh_token,
            expires_in=self._issuer.access_ttl,
        )


@functools.cache
def _time_zones() -> frozenset[str]:
    """The IANA zone names this machine knows (read once: it walks the zone files, ~0.1 s).
    `localtime` is this machine's own zone, not a name a user could mean."""
    return frozenset(zoneinfo.available_timezones() - {"localtime"})
