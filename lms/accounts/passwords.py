"""argon2id password hashes, computed off the trio thread.

A hash costs tens of milliseconds of CPU and 64 MiB of memory by design, so hashing runs in a
worker thread under a small limiter: the event loop stays responsive and a burst of logins cannot
allocate gigabytes at once.
"""

from __future__ import annotations

import argon2
import trio

_hasher = argon2.PasswordHasher()  # argon2id, RFC 9106 low-memory profile defaults
_limiter = trio.CapacityLimiter(2)
# Verified against when the e-mail is unknown, so a login takes as long whether or not the
# account exists (no user enumeration by timing).
_DUMMY_HASH = _hasher.hash("not-a-real-password")


async def hash_password(password: str) -> str:
    return await trio.to_thread.run_sync(_hasher.hash, password, limiter=_limiter)


async def verify_password(stored_hash: str | None, password: str) -> bool:
    """True when `password` matches; `stored_hash=None` (no such user) costs the same and fails."""
    return await trio.to_thread.run_sync(
        _verify, stored_hash or _DUMMY_HASH, password, stored_hash is not None, limiter=_limiter
    )


def needs_rehash(stored_hash: str) -> bool:
    """True when the hash was made with weaker parameters than today's."""
    return _hasher.check_needs_rehash(stored_hash)


def _verify(stored_hash: str, password: str, real: bool) -> bool:
    try:
        return _hasher.verify(stored_hash, password) and real
    except argon2.exceptions.VerificationError:
        return False
    except argon2.exceptions.InvalidHashError:
        return False
