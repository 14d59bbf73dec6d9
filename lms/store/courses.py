"""Courses, their modules and contents, and enrolments (asyncpg; run through `Database`).

`managed` and `readable` wrap an operation on a course's rows with the check of who may do it,
in the same transaction: the check and the change see one snapshot, and the whole operation
crosses the bridge once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import asyncpg
import msgspec

from lms.domain.access import Principal, may_manage_course, may_read_contents
from lms.errors import Forbidden, Invalid, NotFound
from lms.store import digests
from lms.store.rows import fetch_one, insert_row, to_struct, update_row
from proto.api import Content, ContentKind, Course, Enrollment, Module

T = TypeVar("T", bound=msgspec.Struct)


async def insert_course(conn: asyncpg.Connection, owner_id: int, values: dict[str, Any]) -> Course:
    row = await insert_row(conn, "courses", {"owner_id": owner_id, **values})
    return to_struct(row, Course)


async def course_by_id(conn: asyncpg.Connection, course_id: int) -> Course | None:
    row = await conn.fetchrow("SELECT * FROM courses WHERE id = $1", course_id)
    return None if row is None else to_struct(row, Course)


async def list_courses(conn: asyncpg.Connection, limit: int, offset: int) -> list[Course]:
    rows = await conn.fetch("SELECT * FROM courses ORDER BY id LIMIT $1 OFFSET $2", limit, offset)
    return [to_struct(row, Course) for row in rows]


async def update_course(
    conn: asyncpg.Connection, course_id: int, values: dict[str, Any]
) -> Course | None:
    row = await update_row(conn, "courses", {"id": course_id}, values)
    return None if row is None else to_struct(row, Course)


async def delete_course(conn: asyncpg.Connection, course_id: int) -> bool:
    return (
        await conn.fetchval("DELETE FROM courses WHERE id = $1 RETURNING true", course_id) or False
    )


@dataclass(frozen=True)
class CoursePart(Generic[T]):
    """A table of rows that belong to one course (modules, contents): the same five operations,
    always scoped by `course_id` so an id from another course is simply not found."""

    table: str
    struct: type[T]
    has_updated_at: bool

    async def insert(self, conn: asyncpg.Connection, course_id: int, values: dict[str, Any]) -> T:
        row = await insert_row(conn, self.table, {"course_id": course_id, **values})
        return to_struct(row, self.struct)

    async def get(self, conn: asyncpg.Connection, course_id: int, part_id: int) -> T | None:
        row = await conn.fetchrow(
            f"SELECT * FROM {self.table} WHERE course_id = $1 AND id = $2",  # noqa: S608 - table is ours; values are parameters
            course_id,
            part_id,
        )
        return None if row is None else to_struct(row, self.struct)

    async def list(self, conn: asyncpg.Connection, course_id: int) -> list[T]:
        rows = await conn.fetch(
            f"SELECT * FROM {self.table} WHERE course_id = $1 ORDER BY position, id",  # noqa: S608 - table is ours; values are parameters
            course_id,
        )
        return [to_struct(row, self.struct) for row in rows]

    async def update(
        self, conn: asyncpg.Connection, course_id: int, part_id: int, values: dict[str, Any]
    ) -> T | None:
        where = {"course_id": course_id, "id": part_id}
        row = await update_row(conn, self.table, where, values, touch=self.has_updated_at)
        return None if row is None else to_struct(row, self.struct)

    async def delete(self, conn: asyncpg.Connection, course_id: int, part_id: int) -> bool:
        deleted = await conn.fetchval(
            f"DELETE FROM {self.table} WHERE course_id = $1 AND id = $2 RETURNING true",  # noqa: S608 - table is ours; values are parameters
            course_id,
            part_id,
        )
        return deleted or False


modules = CoursePart("modules", Module, has_updated_at=False)
contents = CoursePart("contents", Content, has_updated_at=True)


async def enroll(conn: asyncpg.Connection, course_id: int, user_id: int) -> tuple[Enrollment, bool]:
    """Enrol a user; the bool says whether this call created the enrolment (it is idempotent)."""
    row = await conn.fetchrow(
        """
        INSERT INTO enrollments (course_id, user_id) VALUES ($1, $2)
        ON CONFLICT DO NOTHING RETURNING *
        """,
        course_id,
        user_id,
    )
    if row is not None:
        return to_struct(row, Enrollment), True
    row = await fetch_one(
        conn, "SELECT * FROM enrollments WHERE course_id = $1 AND user_id = $2", course_id, user_id
    )
    return to_struct(row, Enrollment), False


async def unenroll(conn: asyncpg.Connection, course_id: int, user_id: int) -> bool:
    deleted = await conn.fetchval(
        "DELETE FROM enrollments WHERE course_id = $1 AND user_id = $2 RETURNING true",
        course_id,
        user_id,
    )
    return deleted or False


async def is_enrolled(conn: asyncpg.Connection, course_id: int, user_id: int) -> bool:
    return await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM enrollments WHERE course_id = $1 AND user_id = $2)",
        course_id,
        user_id,
    )


# --- operations checked against who asks ---------------------------------------------------------


async def _course_or_404(conn: asyncpg.Connection, course_id: int) -> Course:
    course = await course_by_id(conn, course_id)
    if course is None:
        raise NotFound(f"no course with id {course_id}")
    return course


async def managed(conn: asyncpg.Connection, who: Principal, course_id: int, fn, *args):  # type: ignore[no-untyped-def]
    """Run `fn(conn, *args)` if `who` may manage the course; raise NotFound for a missing result."""
    course = await _course_or_404(conn, course_id)
    if not may_manage_course(who, course.owner_id):
        raise Forbidden("only the course's instructor or an admin may change it")
    result = await fn(conn, *args)
    if result is None or result is False:
        raise NotFound("no such item in this course")
    return result


async def readable(conn: asyncpg.Connection, who: Principal, course_id: int, fn, *args):  # type: ignore[no-untyped-def]
    """Run `fn(conn, *args)` if `who` may read the course's contents; raise NotFound for a
    missing result."""
    course = await _course_or_404(conn, course_id)
    enrolled = await is_enrolled(conn, course_id, who.user_id)
    if not may_read_contents(who, course.owner_id, enrolled):
        raise Forbidden("enrol in this course to see its contents")
    result = await fn(conn, *args)
    if result is None:
        raise NotFound("no such item in this course")
    return result


async def _check_module(conn: asyncpg.Connection, course_id: int, values: dict[str, Any]) -> None:
    module_id = values.get("module_id")
    if module_id is not None and await modules.get(conn, course_id, module_id) is None:
        raise Invalid(f"module {module_id} is not part of course {course_id}")


async def insert_checked(
    conn: asyncpg.Connection, part: CoursePart[T], course_id: int, values: dict[str, Any]
) -> T:
    """`part.insert`, once the module the values name (if any) is known to be the course's."""
    await _check_module(conn, course_id, values)
    return await part.insert(conn, course_id, values)


async def insert_content(
    conn: asyncpg.Connection, course_id: int, values: dict[str, Any]
) -> Content:
    """`insert_checked` for a content. A text is published as it is created, so it joins its
    learners' digests in the same transaction; a video joins them once its first transcode
    completes (lms/store/jobs.py `complete`)."""
    content = await insert_checked(conn, contents, course_id, values)
    if content.kind == ContentKind.TEXT:
        await digests.add_to_digests(conn, content.id)
    return content


async def update_checked(
    conn: asyncpg.Connection,
    part: CoursePart[T],
    course_id: int,
    part_id: int,
    values: dict[str, Any],
) -> T | None:
    """`part.update`, once the module the values name (if any) is known to be the course's."""
    await _check_module(conn, course_id, values)
    return await part.update(conn, course_id, part_id, values)
