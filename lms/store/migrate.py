"""Schema migrations: ordered `.sql` files applied once each, recorded in `schema_migrations`.

Safe to run twice and from several nodes at once: a session-level advisory lock serialises
migrators, and each file is applied in its own transaction together with its record. A file that
was applied and then edited is refused (its checksum no longer matches) rather than silently
diverging between databases. A database ahead of this version (a newer release's migrations
applied after all of ours) is run on as it is: migrations stay backward compatible for one
release, so a rollback needs no downgrade; one whose history differs from ours is refused.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg
import structlog

from lms.store.database import Database

log = structlog.get_logger()

# pg_advisory_lock takes a bigint; any constant unique to this application will do.
MIGRATION_LOCK_KEY = 0x4C4D535F4D4947  # "LMS_MIG"
_FILENAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(Exception):
    """The database's migration history disagrees with the files shipped with this version."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations() -> list[Migration]:
    """The migration files shipped in `lms/store/migrations`, in version order."""
    found = []
    for entry in resources.files("lms.store").joinpath("migrations").iterdir():
        match = _FILENAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text()))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migration files share a version: {versions}")
    return found


async def migrate(db: Database, migrations: list[Migration] | None = None) -> list[Migration]:
    """Apply every pending migration; return those this call applied (empty when up to date)."""
    return await db.connection(_apply, load_migrations() if migrations is None else migrations)


async def _apply(conn: asyncpg.Connection, migrations: list[Migration]) -> list[Migration]:
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        await conn.execute(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version     integer PRIMARY KEY,
                name        text NOT NULL,
                checksum    text NOT NULL,
                applied_at  timestamptz NOT NULL DEFAULT now()
            )
            """
        )
        applied = {
            row["version"]: row["checksum"]
            for row in await conn.fetch("SELECT version, checksum FROM schema_migrations")
        }
        known = {m.version for m in migrations}
        unknown = sorted(set(applied) - known)
        if unknown and (unknown[0] < max(known, default=0) or known - set(applied)):
            raise MigrationError(
                f"the database has migrations {unknown} that this version does not know, "
                "among ones it does: its history is not this version's"
            )
        if unknown:
            # Migrated by a newer release, every file of ours applied before its own: the
            # previous release, rolled back to or not yet replaced, runs on that schema, which
            # stays backward compatible for one release (docs/migrations.md).
            log.warning("schema_ahead", newer_migrations=unknown)
        done = []
        for migration in migrations:
            if migration.version in applied:
                if applied[migration.version] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version:04d}_{migration.name} was changed after "
                        "it was applied; add a new migration instead of editing an applied one"
                    )
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            done.append(migration)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
