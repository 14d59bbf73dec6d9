"""The migration files keep the rules of docs/migrations.md that a reader of SQL can check: they
are numbered without gaps, and none does what the previous release's nodes, still running on
the database during a rolling deploy or after a rollback, would trip over (drop or rename a
table or column, change a column's type or make it NOT NULL, add a NOT NULL column with no
default) unless it says, in a `-- contract:` comment, why that release no longer needs it."""

from __future__ import annotations

import re

import pytest

from lms.store.migrate import load_migrations

CONTRACT_NOTE = re.compile(r"^\s*--\s*contract:\s*\S", re.IGNORECASE | re.MULTILINE)
_COMMENT = re.compile(r"--[^\n]*|/\*.*?\*/", re.DOTALL)
_BREAKING = {
    "drops a table": re.compile(r"\bDROP\s+TABLE\b", re.IGNORECASE),
    "drops a column": re.compile(r"\bDROP\s+COLUMN\b", re.IGNORECASE),
    "renames something": re.compile(r"\bRENAME\b", re.IGNORECASE),
    "changes a column's type": re.compile(
        r"\bALTER\s+COLUMN\s+\w+\s+(SET\s+DATA\s+)?TYPE\b", re.IGNORECASE
    ),
    "makes a column NOT NULL": re.compile(
        r"\bALTER\s+COLUMN\s+\w+\s+SET\s+NOT\s+NULL\b", re.IGNORECASE
    ),
}
# One ADD COLUMN clause: up to the next clause of the same ALTER TABLE or the statement's end.
_ADD_COLUMN = re.compile(
    r"\bADD\s+COLUMN\b(.*?)(?=,\s*ADD\b|,\s*ALTER\b|,\s*DROP\b|;|$)", re.IGNORECASE | re.DOTALL
)


def breaking_changes(sql: str) -> list[str]:
    """What in `sql` the previous release's nodes, still running on the database, would trip
    over; empty when it is all additive."""
    code = _COMMENT.sub(" ", sql)
    found = [what for what, pattern in _BREAKING.items() if pattern.search(code)]
    for clause in _ADD_COLUMN.findall(code):
        # Old nodes insert rows without the new column: it needs a default or must allow NULL.
        if re.search(r"\bNOT\s+NULL\b", clause, re.I) and not re.search(
            r"\bDEFAULT\b", clause, re.I
        ):
            found.append("adds a NOT NULL column with no default")
    return found


def test_migrations_are_numbered_from_one_without_gaps() -> None:
    versions = [m.version for m in load_migrations()]
    assert versions == list(range(1, len(versions) + 1))


def test_every_migration_keeps_the_previous_release_working() -> None:
    breaking = {
        f"{m.version:04d}_{m.name}": breaking_changes(m.sql)
        for m in load_migrations()
        if not CONTRACT_NOTE.search(m.sql)  # a contract step, its reason given in the file
    }
    # A rolling deploy runs the previous release on the new schema: expand now and contract in
    # the next release, or say why it is safe in a '-- contract:' comment (docs/migrations.md).
    assert {name: found for name, found in breaking.items() if found} == {}


@pytest.mark.parametrize(
    ("sql", "found"),
    [
        ("ALTER TABLE users DROP COLUMN time_zone;", ["drops a column"]),
        ("DROP TABLE mail_preferences;", ["drops a table"]),
        ("ALTER TABLE users RENAME COLUMN name TO full_name;", ["renames something"]),
        ("ALTER TABLE outbox RENAME TO mail_outbox;", ["renames something"]),
        ("ALTER TABLE users ALTER COLUMN name TYPE varchar(80);", ["changes a column's type"]),
        ("ALTER TABLE users ALTER COLUMN name SET NOT NULL;", ["makes a column NOT NULL"]),
        (
            "ALTER TABLE users ADD COLUMN a int, ADD COLUMN b text NOT NULL;",
            ["adds a NOT NULL column with no default"],
        ),
    ],
)
def test_the_check_finds_what_would_break_the_previous_release(sql: str, found: list[str]) -> None:
    assert breaking_changes(sql) == found


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE TABLE certificates (id bigint PRIMARY KEY);",
        "ALTER TABLE users ADD COLUMN locale text;",
        "ALTER TABLE progress ADD COLUMN version bigint NOT NULL DEFAULT 0;",
        "ALTER TABLE users ADD COLUMN a numeric(10, 2) NOT NULL DEFAULT 0, ADD COLUMN b text;",
        "-- we never DROP COLUMN here, nor RENAME\nCREATE INDEX ON jobs (state);",
    ],
)
def test_the_check_lets_additive_migrations_through(sql: str) -> None:
    assert breaking_changes(sql) == []
