"""Which deployment a node belongs to, as its database says (asyncpg; run through `Database`)."""

from __future__ import annotations

import asyncpg

from lms.store.rows import fetch_one


async def deployment_id(conn: asyncpg.Connection) -> str:
    """The same string on every node of one deployment, and a different one for another
    database (another cluster, or another database in one cluster): the cluster's system
    identifier, made at initdb, and the database's name. What namespaces shared Redis keys."""
    row = await fetch_one(
        conn,
        "SELECT (SELECT system_identifier FROM pg_control_system()) AS system, current_database()",
    )
    return f"{row['system']}/{row['current_database']}"
