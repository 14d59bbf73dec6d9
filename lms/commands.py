"""What each `lms` command does, as trio functions (the parser lives in `lms.cli`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgspec

from lms import node
from lms.accounts.passwords import hash_password
from lms.config import Settings
from lms.store import bridge, users
from lms.store.database import StoreUnavailable
from lms.store.migrate import MigrationError
from lms.store.postgres_cluster import PostgresClusterError
from proto.api import AdminCreate


class CommandFailed(Exception):
    """The command could not do its job; the message says why, for a person."""


# Failures a person can act on (start the database, fix the URL, upgrade the server): they get
# one clear line instead of a traceback.
_EXPLAINED = (StoreUnavailable, MigrationError, PostgresClusterError)


def _explained(error: BaseException) -> BaseException | None:
    """The explainable failure inside `error` (trio wraps errors in exception groups)."""
    if isinstance(error, _EXPLAINED):
        return error
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            if found := _explained(inner):
                return found
    return None


@asynccontextmanager
async def explained_failures() -> AsyncIterator[None]:
    try:
        yield
    except BaseException as error:
        found = _explained(error)
        if found is None:
            raise
        raise CommandFailed(str(found)) from error


async def serve(settings: Settings) -> int:
    async with explained_failures():
        await node.serve(settings)
    return 0


async def migrate(settings: Settings) -> int:
    async with explained_failures(), bridge.open_bridge(), node.open_store(settings):
        print("database is up to date")
    return 0


async def create_admin(settings: Settings, email: str, password: str) -> int:
    try:
        admin = msgspec.convert({"email": email, "password": password}, AdminCreate)
    except msgspec.ValidationError as exc:
        raise CommandFailed(str(exc)) from exc
    password_hash = await hash_password(admin.password)
    async with explained_failures(), bridge.open_bridge(), node.open_store(settings) as store:
        user = await store.db.transaction(users.upsert_admin, admin.email, password_hash)
    print(f"admin {user.email} (id {user.id}) is ready")
    return 0
