"""Row helpers shared by the store modules: records to proto Structs, and partial updates."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import asyncpg
import msgspec

T = TypeVar("T", bound=msgspec.Struct)


def to_struct(record: asyncpg.Record, into: type[T]) -> T:
    """Build `into` from the record's columns that it declares (extra columns are ignored)."""
    return msgspec.convert(dict(record.items()), into, from_attributes=False)


def changes(patch: msgspec.Struct) -> dict[str, Any]:
    """The fields a PATCH body actually sets (fields left UNSET are not touched)."""
    return {
        name: getattr(patch, name)
        for name in patch.__struct_fields__
        if getattr(patch, name) is not msgspec.UNSET
    }


async def fetch_one(conn: asyncpg.Connection, sql: str, *args: Any) -> asyncpg.Record:
    """`fetchrow` for a statement that always returns a row (INSERT ... RETURNING, an upsert,
    an aggregate, a row this transaction holds locked), which asyncpg types as optional."""
    row = await conn.fetchrow(sql, *args)
    if row is None:
        raise LookupError(f"no row from a statement that always returns one: {sql.strip()[:80]}")
    return row


async def insert_row(
    conn: asyncpg.Connection, table: str, values: Mapping[str, Any]
) -> asyncpg.Record:
    """INSERT one row into `table` and return it (column names are ours, as in update_row)."""
    placeholders = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    sql = f"INSERT INTO {table} ({', '.join(values)}) VALUES ({placeholders}) RETURNING *"  # noqa: S608 - table and columns are ours; values are parameters
    return await fetch_one(conn, sql, *values.values())


async def update_row(
    conn: asyncpg.Connection,
    table: str,
    where: Mapping[str, Any],
    values: Mapping[str, Any],
    *,
    touch: bool = True,
) -> asyncpg.Record | None:
    """UPDATE one row of `table` matching `where` with `values`; return it, or None if absent.

    Column names come from our own Struct field names, never from a client's keys, so building
    the statement from them is safe.
    """
    sets = [f"{column} = ${i}" for i, column in enumerate(values, start=1)]
    if touch:
        sets.append("updated_at = now()")
    conds = [f"{column} = ${i}" for i, column in enumerate(where, start=len(values) + 1)]
    sql = f"UPDATE {table} SET {', '.join(sets)} WHERE {' AND '.join(conds)} RETURNING *"  # noqa: S608 - table and columns are ours; values are parameters
    return await conn.fetchrow(sql, *values.values(), *where.values())
