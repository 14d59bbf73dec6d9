"""Courses, modules, contents and enrolment: each operation checks who may do it, then stores,
then invalidates the cache tags the change outdates (`lms.analytics.tags`).

A course's own row, read on its page and before each enrolment, is kept in the cache under its
`course_row` tag, which only an edit or a deletion of the course invalidates (progress in the
course does not touch it). A missing course is not cached: its id may be handed out next.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from lms.analytics import tags
from lms.cache.cache import Cache
from lms.domain.access import Principal, may_create_courses
from lms.errors import Forbidden, Invalid, NotFound
from lms.store import courses
from lms.store.courses import CoursePart
from lms.store.database import Database
from lms.store.rows import changes
from proto.api import (
    Content,
    ContentCreate,
    ContentPatch,
    Course,
    CourseCreate,
    CoursePatch,
    Enrollment,
    Module,
    ModuleCreate,
    ModulePatch,
)

T = TypeVar("T", bound=msgspec.Struct)

# The longest a course's row is kept: what a change made outside this service (SQL) may take
# to be seen; every change through here invalidates it at once.
COURSE_TTL = 300.0


class Catalog:
    def __init__(self, db: Database, cache: Cache) -> None:
        self._db = db
        self._cache = cache

    # --- courses ------------------------------------------------------------------------------

    async def create_course(self, who: Principal, body: CourseCreate) -> Course:
        if not may_create_courses(who):
            raise Forbidden("only instructors and admins may create courses")
        course = await self._db.transaction(courses.insert_course, who.user_id, changes(body))
        await self._cache.invalidate(tags.PLATFORM)
        return course

    async def list_courses(self, limit: int, offset: int) -> list[Course]:
        return await self._db.transaction(courses.list_courses, limit, offset)

    async def course(self, course_id: int) -> Course:
        async def read() -> Course:
            course = await self._db.connection(courses.course_by_id, course_id)
            if course is None:
                raise NotFound(f"no course with id {course_id}")
            return course

        return await self._cache.get_or_compute(
            f"catalog:course:{course_id}", [tags.course_row(course_id)], COURSE_TTL, read, Course
        )

    async def edit_course(self, who: Principal, course_id: int, patch: CoursePatch) -> Course:
        course = await self._db.transaction(
            courses.managed, who, course_id, courses.update_course, course_id, changes(patch)
        )
        await self._cache.invalidate(
            tags.course_row(course_id), tags.course(course_id), tags.PLATFORM
        )
        return course

    async def delete_course(self, who: Principal, course_id: int) -> None:
        await self._db.transaction(
            courses.managed, who, course_id, courses.delete_course, course_id
        )
        await self._cache.invalidate(
            tags.course_row(course_id), tags.course(course_id), tags.PLATFORM
        )

    # --- modules and contents -----------------------------------------------------------------

    async def add_module(self, who: Principal, course_id: int, body: ModuleCreate) -> Module:
        return await self._add(who, course_id, courses.modules, changes(body))

    async def modules(self, who: Principal, course_id: int) -> list[Module]:
        return await self._list(who, course_id, courses.modules)

    async def edit_module(
        self, who: Principal, course_id: int, module_id: int, patch: ModulePatch
    ) -> Module:
        return await self._edit(who, course_id, courses.modules, module_id, changes(patch))

    async def delete_module(self, who: Principal, course_id: int, module_id: int) -> None:
        await self._delete(who, course_id, courses.modules, module_id)

    async def add_content(self, who: Principal, course_id: int, body: ContentCreate) -> Content:
        if body.kind == "video" and body.body is not None:
            raise Invalid("a video content has no body; upload the video to it instead")
        content = await self._db.transaction(
            courses.managed, who, course_id, courses.insert_content, course_id, changes(body)
        )
        await self._cache.invalidate(tags.course(course_id), tags.content(content.id))
        return content

    async def contents(self, who: Principal, course_id: int) -> list[Content]:
        return await self._list(who, course_id, courses.contents)

    async def content(self, who: Principal, course_id: int, content_id: int) -> Content:
        return await self._db.transaction(
            courses.readable, who, course_id, courses.contents.get, course_id, content_id
        )

    async def edit_content(
        self, who: Principal, course_id: int, content_id: int, patch: ContentPatch
    ) -> Content:
        content = await self._edit(who, course_id, courses.contents, content_id, changes(patch))
        await self._cache.invalidate(tags.course(course_id), tags.content(content_id))
        return content

    async def delete_content(self, who: Principal, course_id: int, content_id: int) -> None:
        await self._delete(who, course_id, courses.contents, content_id)
        await self._cache.invalidate(tags.course(course_id), tags.content(content_id))

    # --- enrolment ----------------------------------------------------------------------------

    async def enroll(self, who: Principal, course_id: int) -> tuple[Enrollment, bool]:
        await self.course(course_id)
        enrollment, created = await self._db.transaction(courses.enroll, course_id, who.user_id)
        if created:
            await self._enrolment_changed(who.user_id, course_id)
        return enrollment, created

    async def unenroll(self, who: Principal, course_id: int) -> None:
        if not await self._db.transaction(courses.unenroll, course_id, who.user_id):
            raise NotFound("you are not enrolled in this course")
        await self._enrolment_changed(who.user_id, course_id)

    async def _enrolment_changed(self, user_id: int, course_id: int) -> None:
        await self._cache.invalidate(tags.user(user_id), tags.course(course_id), tags.PLATFORM)

    # --- shared shapes ------------------------------------------------------------------------

    async def _add(
        self, who: Principal, course_id: int, part: CoursePart[T], values: dict[str, Any]
    ) -> T:
        return await self._db.transaction(
            courses.managed, who, course_id, courses.insert_checked, part, course_id, values
        )

    async def _list(self, who: Principal, course_id: int, part: CoursePart[T]) -> list[T]:
        return await self._db.transaction(courses.readable, who, course_id, part.list, course_id)

    async def _edit(
        self,
        who: Principal,
        course_id: int,
        part: CoursePart[T],
        part_id: int,
        values: dict[str, Any],
    ) -> T:
        return await self._db.transaction(
            courses.managed,
            who,
            course_id,
            courses.update_checked,
            part,
            course_id,
            part_id,
            values,
        )

    async def _delete(
        self, who: Principal, course_id: int, part: CoursePart[T], part_id: int
    ) -> None:
        await self._db.transaction(courses.managed, who, course_id, part.delete, course_id, part_id)
