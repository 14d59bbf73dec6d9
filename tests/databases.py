"""Per-test PostgreSQL databases: the schema is migrated once into a template, then each test
gets its own copy (CREATE DATABASE ... TEMPLATE takes milliseconds), so tests never see each
other's rows and need no cleanup order."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import trio

from lms.store.bridge import open_bridge
from lms.store.database import Database
from lms.store.migrate import migrate

TEMPLATE = "lms_template"
# A pool's close waits for every connection it lent: a test that leaves one out fails, not hangs.
CLOSE_DEADLINE = 10.0


@asynccontextmanager
async def open_database(url: str) -> AsyncIterator[Database]:
    """The bridge and a small pool; everything in the test must run inside this block."""
    async with open_bridge():
        db = await Database.connect(url, min_size=1, max_size=4)
        try:
            yield db
        finally:
            with trio.fail_after(CLOSE_DEADLINE):
                await db.close()


def with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{name}"))


def admin_sql(dsn: str, *statements: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(with_database(dsn, "postgres"))
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run())


async def migrate_database(dsn: str) -> None:
    async with open_bridge():
        db = await Database.connect(dsn, min_size=1, max_size=1)
        try:
            await migrate(db)
        finally:
            await db.close()


@pytest.fixture(scope="session")
def template_dsn(postgres_dsn: str) -> str:
    admin_sql(
        postgres_dsn,
        f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)",
        f"CREATE DATABASE {TEMPLATE}",
    )
    dsn = with_database(postgres_dsn, TEMPLATE)
    trio.run(migrate_database, dsn)
    return dsn


@pytest.fixture
def database_url(template_dsn: str) -> Iterator[str]:
    """A fresh, migrated database for this test alone, dropped afterwards."""
    name = f"lms_test_{uuid.uuid4().hex[:12]}"
    admin_sql(template_dsn, f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    yield with_database(template_dsn, name)
    admin_sql(template_dsn, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def empty_database_url(postgres_dsn: str) -> Iterator[str]:
    """A fresh database with no schema at all, for migration tests."""
    name = f"lms_empty_{uuid.uuid4().hex[:12]}"
    admin_sql(postgres_dsn, f"CREATE DATABASE {name}")
    yield with_database(postgres_dsn, name)
    admin_sql(postgres_dsn, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
