"""`/api/v1/courses`: courses, their modules and contents, and enrolment."""

from __future__ import annotations

from quart import Blueprint, Response
from quart_schema import tag

from lms.domain.access import Principal
from lms.http.openapi_document import no_body
from lms.http.wire import (
    authenticated,
    json_body,
    no_content,
    query_int,
    respond,
    returns,
    services,
)
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

blueprint = Blueprint("courses", __name__, url_prefix="/api/v1/courses")
COURSE = "/<int:course_id>"
MODULE = COURSE + "/modules/<int:module_id>"
CONTENT = COURSE + "/contents/<int:content_id>"


@blueprint.post("")
@tag(["courses"])
@authenticated
@json_body(CourseCreate)
@returns(Course, 201)
async def create_course(who: Principal, body: CourseCreate) -> Response:
    """Create a course (instructors and admins); the caller becomes its owner."""
    return respond(await services().catalog.create_course(who, body), 201)


@blueprint.get("")
@tag(["courses"])
@authenticated
@returns(list[Course])
async def list_courses(who: Principal) -> Response:
    """The course catalogue, by id; `?limit=` (1-200, default 50) and `?offset=`."""
    limit = query_int("limit", 50, 1, 200)
    offset = query_int("offset", 0, 0, 10_000_000)
    return respond(await services().catalog.list_courses(limit, offset))


@blueprint.get(COURSE)
@tag(["courses"])
@authenticated
@returns(Course)
async def get_course(course_id: int, who: Principal) -> Response:
    return respond(await services().catalog.course(course_id))


@blueprint.patch(COURSE)
@tag(["courses"])
@authenticated
@json_body(CoursePatch)
@returns(Course)
async def edit_course(course_id: int, who: Principal, body: CoursePatch) -> Response:
    return respond(await services().catalog.edit_course(who, course_id, body))


@blueprint.delete(COURSE)
@tag(["courses"])
@authenticated
@no_body(204, "Deleted.")
async def delete_course(course_id: int, who: Principal) -> Response:
    await services().catalog.delete_course(who, course_id)
    return no_content()


@blueprint.post(COURSE + "/modules")
@tag(["courses"])
@authenticated
@json_body(ModuleCreate)
@returns(Module, 201)
async def add_module(course_id: int, who: Principal, body: ModuleCreate) -> Response:
    return respond(await services().catalog.add_module(who, course_id, body), 201)


@blueprint.get(COURSE + "/modules")
@tag(["courses"])
@authenticated
@returns(list[Module])
async def list_modules(course_id: int, who: Principal) -> Response:
    return respond(await services().catalog.modules(who, course_id))


@blueprint.patch(MODULE)
@tag(["courses"])
@authenticated
@json_body(ModulePatch)
@returns(Module)
async def edit_module(
    course_id: int, module_id: int, who: Principal, body: ModulePatch
) -> Response:
    return respond(await services().catalog.edit_module(who, course_id, module_id, body))


@blueprint.delete(MODULE)
@tag(["courses"])
@authenticated
@no_body(204, "Deleted.")
async def delete_module(course_id: int, module_id: int, who: Principal) -> Response:
    await services().catalog.delete_module(who, course_id, module_id)
    return no_content()


@blueprint.post(COURSE + "/contents")
@tag(["courses"])
@authenticated
@json_body(ContentCreate)
@returns(Content, 201)
async def add_content(course_id: int, who: Principal, body: ContentCreate) -> Response:
    """Add a video or text content; a video's file is uploaded to it afterwards."""
    return respond(await services().catalog.add_content(who, course_id, body), 201)


@blueprint.get(COURSE + "/contents")
@tag(["courses"])
@authenticated
@returns(list[Content])
async def list_contents(course_id: int, who: Principal) -> Response:
    """The course's contents in order (enrolled learners, the owner and admins)."""
    return respond(await services().catalog.contents(who, course_id))


@blueprint.get(CONTENT)
@tag(["courses"])
@authenticated
@returns(Content)
async def get_content(course_id: int, content_id: int, who: Principal) -> Response:
    return respond(await services().catalog.content(who, course_id, content_id))


@blueprint.patch(CONTENT)
@tag(["courses"])
@authenticated
@json_body(ContentPatch)
@returns(Content)
async def edit_content(
    course_id: int, content_id: int, who: Principal, body: ContentPatch
) -> Response:
    return respond(await services().catalog.edit_content(who, course_id, content_id, body))


@blueprint.delete(CONTENT)
@tag(["courses"])
@authenticated
@no_body(204, "Deleted.")
async def delete_content(course_id: int, content_id: int, who: Principal) -> Response:
    await services().catalog.delete_content(who, course_id, content_id)
    return no_content()


@blueprint.post(COURSE + "/enroll")
@tag(["courses"])
@authenticated
@returns(Enrollment, 201)
@returns(Enrollment, 200)
async def enroll(course_id: int, who: Principal) -> Response:
    """Enrol the caller: 201 the first time, 200 when already enrolled."""
    enrollment, created = await services().catalog.enroll(who, course_id)
    return respond(enrollment, 201 if created else 200)


@blueprint.delete(COURSE + "/enroll")
@tag(["courses"])
@authenticated
@no_body(204, "Unenrolled (or was not enrolled).")
async def unenroll(course_id: int, who: Principal) -> Response:
    await services().catalog.unenroll(who, course_id)
    return no_content()
