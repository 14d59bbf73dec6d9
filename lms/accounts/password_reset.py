"""Password reset: a token mailed to the account's address, good once and for an hour, that sets
a new password and ends every session of the account.

Asking for a reset answers the same, after the same work, whether or not an account has the
address: a token is made and hashed, and one transaction runs the same statement either way
(`lms.store.password_resets.request`), so neither the answer nor its time tells who has an
account. What that leaves, the two rows an existing account's reset inserts (~0.1 ms of a ~3 ms
answer, measured by the timing test), no dummy work mirrors exactly, so the answer also waits
until `ANSWER_FLOOR` after the request came: a sleep, free in trio, that hides the rest while
the work fits in it (and under a load where it does not, the load's own noise is far larger).
The token travels only in the mail; the database keeps its SHA-256.

A reset revokes the account's tokens as a logout does, and so, like `Accounts.log_out`,
invalidates the account's cached standing once it has committed.
"""

from __future__ import annotations

import hashlib
import secrets

import structlog
import trio

from lms.accounts.password_rules import refuse_weak
from lms.accounts.passwords import hash_password
from lms.analytics import tags
from lms.cache.cache import Cache
from lms.errors import LmsError
from lms.mail.nudge import Nudge, nudge_mailer
from lms.store import password_resets
from lms.store.database import Database
from lms.store.password_resets import Redeemable
from proto.api import PasswordResetConfirm

log = structlog.get_logger()

VALID_SECONDS = 3600
TOKEN_BYTES = 32
ANSWER_FLOOR = 0.025  # seconds; a reset request is rare, and 25 ms is not felt


class ResetTokenInvalid(LmsError):
    status = 400
    code = "reset_token_invalid"


class ResetTokenUsed(LmsError):
    status = 410
    code = "reset_token_used"


class ResetTokenExpired(LmsError):
    status = 410
    code = "reset_token_expired"


class PasswordResets:
    def __init__(
        self, db: Database, cache: Cache, nudge: Nudge, *, valid_seconds: int = VALID_SECONDS
    ) -> None:
        """`nudge` tells this node's Mailer that mail was enqueued."""
        self._db = db
        self._cache = cache
        self._nudge = nudge
        self._valid_seconds = valid_seconds

    async def request(self, email: str) -> None:
        """Mail a reset link to `email` if an account has that address; nothing otherwise,
        indistinguishably to the caller."""
        answer_at = trio.current_time() + ANSWER_FLOOR
        token = secrets.token_urlsafe(TOKEN_BYTES)
        context = {"token": token, "expires_minutes": self._valid_seconds // 60}
        mailed = await self._db.transaction(
            password_resets.request, email, token_hash(token), self._valid_seconds, context
        )
        log.info("password_reset_requested", mailed=mailed)
        # Either way, so that the time does not tell (telling the Mailer costs microseconds).
        await nudge_mailer(self._nudge)
        await trio.sleep_until(answer_at)

    async def confirm(self, body: PasswordResetConfirm) -> None:
        """Set the password of the token's account and end all of its sessions.

        Raises:
          ResetTokenInvalid: no such token (tampered with, or for another `body.email`).
          ResetTokenUsed: the token, or another of the account's, reset its password already.
          ResetTokenExpired: the token is over an hour old.
          WeakPassword: the new password is too easy to guess (the token is not spent).
        """
        hashed = token_hash(body.token)
        # Checked before hashing the password, so a bad token costs no argon2 work; checked
        # again as it is spent, in the transaction, since two requests may race.
        state, address = await self._db.connection(password_resets.redeemable, hashed, body.email)
        _refuse_unless_valid(state)
        assert address is not None  # noqa: S101 - a valid token names its account
        refuse_weak(body.password, address)
        password_hash = await hash_password(body.password)
        state, user_id = await self._db.transaction(
            password_resets.redeem, hashed, body.email, password_hash
        )
        _refuse_unless_valid(state)
        assert user_id is not None  # noqa: S101 - a valid redemption names its account
        await self._cache.invalidate(tags.account(user_id))
        log.info("password_reset", user_id=user_id)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _refuse_unless_valid(state: Redeemable) -> None:
    match state:
        case Redeemable.UNKNOWN:
            raise ResetTokenInvalid(
                "this reset link is not valid (mistyped, altered, or for another address); "
                "ask for a new one"
            )
        case Redeemable.USED:
            raise ResetTokenUsed(
                "this reset link was already used (or another one was, which ends them all); "
                "ask for a new one"
            )
        case Redeemable.EXPIRED:
            raise ResetTokenExpired("this reset link has expired; ask for a new one")
