from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio

from lms.store.bridge import open_bridge
from lms.store.database import Database
from lms.store.migrate import Migration, MigrationError, load_migrations, migrate


@asynccontextmanager
async def database(dsn: str) -> AsyncIterator[Database]:
    db = await Database.connect(dsn, min_size=1, max_size=2)
    try:
        yield db
    finally:
        await db.close()


async def applied_versions(db: Database) -> list[int]:
    async def fetch(conn) -> list[int]:  # type: ignore[no-untyped-def]
        return [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")]

    return await db.connection(fetch)


async def test_migrating_twice_applies_each_file_once(empty_database_url: str) -> None:
    shipped = load_migrations()
    async with open_bridge(), database(empty_database_url) as db:
        first = await migrate(db)
        second = await migrate(db)
        assert [m.version for m in first] == [m.version for m in shipped]
        assert second == []
        assert await applied_versions(db) == [m.version for m in shipped]


async def test_two_nodes_migrating_at_once_apply_everything_exactly_once(
    empty_database_url: str,
) -> None:
    results: list[list[Migration]] = []
    async with open_bridge():

        async def one_node() -> None:
            async with database(empty_database_url) as db:
                results.append(await migrate(db))

        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(one_node)
        applied = sorted(len(r) for r in results)
        assert applied == [0, 0, len(load_migrations())]


async def test_an_edited_applied_migration_is_refused(empty_database_url: str) -> None:
    original = [Migration(1, "first", "CREATE TABLE t (id int);")]
    edited = [Migration(1, "first", "CREATE TABLE t (id bigint);")]
    async with open_bridge(), database(empty_database_url) as db:
        await migrate(db, original)
        with pytest.raises(MigrationError, match="changed after it was applied"):
            await migrate(db, edited)


async def test_the_previous_release_runs_on_a_database_a_newer_one_migrated(
    empty_database_url: str,
) -> None:
    """A rollback, or an old node restarting mid-deploy: the newer migrations stay applied."""
    newer = [Migration(1, "a", "SELECT 1;"), Migration(2, "b", "SELECT 1;")]
    async with open_bridge(), database(empty_database_url) as db:
        await migrate(db, newer)
        assert await migrate(db, newer[:1]) == []
        assert await applied_versions(db) == [1, 2]


async def test_a_database_whose_history_differs_is_refused(empty_database_url: str) -> None:
    async with open_bridge(), database(empty_database_url) as db:
        await migrate(db, [Migration(1, "a", "SELECT 1;"), Migration(2, "b", "SELECT 1;")])
        ours = [Migration(1, "a", "SELECT 1;"), Migration(3, "c", "SELECT 1;")]
        with pytest.raises(MigrationError, match="history is not this version's"):
            await migrate(db, ours)
        assert await applied_versions(db) == [1, 2]


async def test_a_failing_migration_leaves_no_trace(empty_database_url: str) -> None:
    broken = [
        Migration(1, "ok", "CREATE TABLE a (id int);"),
        Migration(2, "bad", "CREATE TABLE a (id int);"),
    ]
    async with open_bridge(), database(empty_database_url) as db:
        with pytest.raises(Exception, match="already exists"):
            await migrate(db, broken)
        assert await applied_versions(db) == [1]
        # The lock was released: a corrected set applies.
        assert [
            m.version for m in await migrate(db, [broken[0], Migration(2, "b", "SELECT 1;")])
        ] == [2]
