"""The authorization matrix: every route of the app, every live socket and the signed media
paths, asked by six callers against a real node, each answer checked against the table below.

The table is the access policy written out (lms/domain/access.py and the services that apply
it): the route's rule and method, then the status each caller gets. A route added to the app
without a row here fails `test_the_table_names_every_route_of_the_app_and_nothing_else`, and so
does a row whose route is gone. Path parameters come from one world (a course with a module, a
text and a transcoded video, an unfinished upload, another instructor's course); routes that
change or delete things get fresh objects of their own per cell, so no cell decides another's.
"""

from __future__ import annotations

import base64
import enum
import json
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import trio
from trio_websocket import open_websocket_url

from lms.config import Settings
from lms.domain.unsubscribe import derived_key as unsubscribe_key
from lms.domain.unsubscribe import sign as sign_unsubscribe
from lms.http.app import create_app
from lms.http.wire import Services
from proto.notifications import MailKind
from tests.live_client import ws_url
from tests.lms.http.conftest import (
    PASSWORD,
    SECRET,
    Login,
    log_in,
    make_instructor,
    register,
    sign_up,
)
from tests.lms.http.test_media_app import URLS, place
from tests.lms.http.test_streaming import publish_clip


class Caller(enum.Enum):
    ANONYMOUS = "anonymous"
    OUTSIDER = "outsider"  # a learner not enrolled in the course
    LEARNER = "learner"  # a learner enrolled in the course
    OTHER_INSTRUCTOR = "other_instructor"  # the instructor of another course
    INSTRUCTOR = "instructor"  # the course's own instructor (its owner)
    ADMIN = "admin"


# --- the policy, as sets of callers a route lets through -----------------------------------------

ANYONE = frozenset(Caller)
SIGNED_IN = ANYONE - {Caller.ANONYMOUS}
# `may_read_contents`: enrolled, or `may_manage_course`.
ENROLLED = frozenset({Caller.LEARNER, Caller.INSTRUCTOR, Caller.ADMIN})
# `may_manage_course`: the course's owner or an admin.
STAFF = frozenset({Caller.INSTRUCTOR, Caller.ADMIN})
ADMINS = frozenset({Caller.ADMIN})
# `may_create_courses`, and the job list: by role, any instructor (of any course) or an admin.
INSTRUCTORS = frozenset({Caller.OTHER_INSTRUCTOR, Caller.INSTRUCTOR, Caller.ADMIN})
# A learner's own progress in a course: only someone enrolled has any (staff included: 403).
ENROLLED_ONLY = frozenset({Caller.LEARNER})


def owner(caller: Caller) -> frozenset[Caller]:
    """Routes on one user's thing (an upload, a user): that user, or an admin."""
    return frozenset({caller, Caller.ADMIN})


def allow(
    who: frozenset[Caller], ok: int = 200, *, refused: int = 403, **overrides: int
) -> dict[Caller, int]:
    """The status per caller: `ok` for `who`, 401 for an anonymous caller left out, `refused`
    for a signed-in one left out; `overrides` by caller name (e.g. `learner=200`)."""

    def status(caller: Caller) -> int:
        if caller.value in overrides:
            return overrides[caller.value]
        if caller in who:
            return ok
        return 401 if caller is Caller.ANONYMOUS else refused

    unknown = set(overrides) - {caller.value for caller in Caller}
    assert not unknown, f"no such callers: {unknown}"
    return {caller: status(caller) for caller in Caller}


# --- the world the cells run in -----------------------------------------------------------------

# What a cell knows: the world's path parameters and ids, and what its `fresh` made for it.
Values = dict[str, Any]
# Sign in at the cells of the routes that take credentials in the body: one for login, one for
# refresh (log-ins are limited per address, 10 in a row).
BYSTANDER = "bystander@test.lms"
REFRESHER = "refresher@test.lms"


@dataclass
class World:
    node: str
    api: httpx.AsyncClient
    media_dir: Path
    logins: dict[Caller, Login]
    course_id: int
    video_id: int
    manifest: dict[str, Any]
    job_id: int
    text_id: int
    module_id: int
    # A video content with nothing uploaded yet: what a new tus upload names.
    blank_video_id: int
    upload_id: str
    mail_id: int
    # A course of the other instructor's.
    other_course_id: int
    # How many fresh objects cells made (a name for each).
    made: int = 0

    def auth(self, caller: Caller) -> dict[str, str]:
        return {} if caller is Caller.ANONYMOUS else self.logins[caller].auth

    @property
    def instructor(self) -> Login:
        return self.logins[Caller.INSTRUCTOR]

    def params(self) -> Values:
        """Path parameters of the routes, by name."""
        storyboard = self.manifest["storyboard"].rsplit("/", 1)[1]
        return {
            "course_id": self.course_id,
            "content_id": self.video_id,
            "module_id": self.module_id,
            "job_id": self.job_id,
            "upload_id": self.upload_id,
            "mail_id": self.mail_id,
            "user_id": self.logins[Caller.LEARNER].user_id,
            "template": "welcome",
            "path": "master.m3u8",
            "name": storyboard,
            "filename": "site.css",
            "text_id": self.text_id,
            "blank_video_id": self.blank_video_id,
        }

    def name(self, what: str) -> str:
        self.made += 1
        return f"{what}-{self.made}"

    async def create(self, path: str, body: dict[str, Any]) -> int:
        response = await self.api.post(path, json=body, headers=self.instructor.auth)
        assert response.status_code == 201, response.text
        return cast(int, response.json()["id"])

    async def fresh_course(self) -> Values:
        """A course as the world's: the instructor owns it, the learner is enrolled in it."""
        course_id = await self.create("/api/v1/courses", {"title": self.name("course")})
        enrolled = await self.api.post(
            f"/api/v1/courses/{course_id}/enroll", headers=self.logins[Caller.LEARNER].auth
        )
        assert enrolled.status_code == 201, enrolled.text
        return {"course_id": course_id}

    async def fresh_content(self, kind: str) -> int:
        return await self.create(
            f"/api/v1/courses/{self.course_id}/contents", {"title": self.name(kind), "kind": kind}
        )

    async def fresh_text(self) -> Values:
        return {"content_id": await self.fresh_content("text")}

    async def fresh_video(self) -> Values:
        return {"content_id": await self.fresh_content("video")}

    async def fresh_module(self) -> Values:
        path = f"/api/v1/courses/{self.course_id}/modules"
        return {"module_id": await self.create(path, {"title": self.name("module")})}

    async def fresh_upload(self) -> Values:
        """An unfinished tus upload of 10 bytes, by the course's instructor."""
        headers = {**self.instructor.auth, **tus_creation(self.blank_video_id)}
        response = await self.api.post("/api/v1/uploads", headers=headers)
        assert response.status_code == 201, response.text
        return {"upload_id": response.headers["Location"].rsplit("/", 1)[1]}


TUS = {"Tus-Resumable": "1.0.0"}


def tus_creation(content_id: int) -> dict[str, str]:
    target = base64.b64encode(str(content_id).encode()).decode()
    return {**TUS, "Upload-Length": "10", "Upload-Metadata": f"content_id {target}"}


# --- the table ----------------------------------------------------------------------------------

Send = Callable[[Values], dict[str, Any]]
Fresh = Callable[[World], Awaitable[Values]]


@dataclass(frozen=True)
class Shown:
    """For a list: the course ids an answer names, and who should find the world's course in
    it (a 200 is not enough: a list must not show another's things)."""

    course_ids: Callable[[Any], set[int]]
    to: frozenset[Caller]


@dataclass(frozen=True)
class Probe:
    """One route's row: what each caller gets, the fresh objects a cell makes (path parameters
    and the like), and what it sends (httpx arguments: a minimal valid body)."""

    expected: Mapping[Caller, int]
    send: Send | None = None
    fresh: Fresh | None = None
    shown: Shown | None = None
    # Run after every other cell: it revokes the caller's tokens.
    ends_session: bool = False
    # Why the row is as it is, where the policy alone does not say (shown when a cell fails).
    why: str = ""


def body(value: dict[str, Any]) -> Send:
    return lambda _: {"json": value}


def unsubscribe(values: Values) -> dict[str, Any]:
    token = sign_unsubscribe(unsubscribe_key(SECRET), values["user_id"], MailKind.DIGEST)
    return {"params": {"token": token}}


async def bystander_refresh(world: World) -> Values:
    """A refresh token of its own: using one twice revokes its family."""
    return {"refresh_token": (await log_in(world.api, REFRESHER)).refresh_token}


async def fresh_name(world: World) -> Values:
    return {"name": world.name("fresh")}


COURSES = "/api/v1/courses"
COURSE = COURSES + "/<int:course_id>"
CONTENT = COURSE + "/contents/<int:content_id>"
MODULE = COURSE + "/modules/<int:module_id>"
STREAM = "/api/v1/stream/video/<int:content_id>"
JOB = "/api/v1/jobs/<int:job_id>"
UPLOAD = "/api/v1/uploads/<uuid:upload_id>"
PAGE = allow(ANYONE)  # pages are static: they sign in from the browser and ask the API

TABLE: dict[tuple[str, str], Probe] = {
    # --- pages, docs and operations: no token --------------------------------------------------
    ("/admin", "GET"): Probe(PAGE),
    ("/admin/jobs", "GET"): Probe(PAGE),
    ("/dashboard", "GET"): Probe(PAGE),
    ("/courses/<int:course_id>/analytics", "GET"): Probe(PAGE),
    ("/live/<int:course_id>", "GET"): Probe(PAGE),
    ("/watch/<int:content_id>", "GET"): Probe(PAGE),
    ("/reset-password", "GET"): Probe(PAGE),
    ("/docs", "GET"): Probe(PAGE),
    ("/openapi.json", "GET"): Probe(PAGE),
    ("/static/<path:filename>", "GET"): Probe(PAGE),
    ("/health", "GET"): Probe(allow(ANYONE)),
    ("/api/v1/monitoring/health", "GET"): Probe(allow(ANYONE)),
    # Prometheus scrapes without a token; deploy/nginx keeps both off the public internet.
    ("/metrics", "GET"): Probe(allow(ANYONE)),
    ("/api/v1/monitoring/metrics", "GET"): Probe(allow(ANYONE)),
    ("/api/v1/monitoring/stats", "GET"): Probe(allow(ADMINS)),
    # --- accounts ---------------------------------------------------------------------------
    ("/api/v1/auth/register", "POST"): Probe(
        allow(ANYONE, 202),
        why="one answer whether or not the address has an account",
        fresh=fresh_name,
        send=lambda v: {
            "json": {"email": f"{v['name']}@test.lms", "password": PASSWORD, "name": "New"}
        },
    ),
    ("/api/v1/auth/login", "POST"): Probe(
        allow(ANYONE), send=body({"email": BYSTANDER, "password": PASSWORD})
    ),
    ("/api/v1/auth/refresh", "POST"): Probe(
        allow(ANYONE),
        fresh=bystander_refresh,
        send=lambda v: {"json": {"refresh_token": v["refresh_token"]}},
        why="the refresh token is the credential, whoever holds it",
    ),
    ("/api/v1/auth/logout", "POST"): Probe(allow(SIGNED_IN, 204), ends_session=True),
    ("/api/v1/auth/password-reset", "POST"): Probe(
        allow(ANYONE, 202),
        # A fresh address per cell: resets are limited per address (5 an hour).
        fresh=fresh_name,
        send=lambda v: {"json": {"email": f"{v['name']}@test.lms"}},
    ),
    ("/api/v1/auth/password-reset/confirm", "POST"): Probe(
        allow(ANYONE, 400),
        send=body({"token": "not-a-reset-token", "password": PASSWORD + "!"}),
        why="the mailed reset token is the credential: checking it is the authorization",
    ),
    ("/api/v1/users/me", "GET"): Probe(allow(SIGNED_IN)),
    ("/api/v1/users/me", "PATCH"): Probe(allow(SIGNED_IN), send=body({"time_zone": "UTC"})),
    ("/api/v1/users/<int:user_id>", "PATCH"): Probe(
        allow(owner(Caller.LEARNER)),
        send=body({"name": "Enrolled Learner"}),
        why="the user is the enrolled learner: renaming yourself, or an admin (may_edit_user)",
    ),
    ("/api/v1/users/me/notifications", "GET"): Probe(allow(SIGNED_IN)),
    ("/api/v1/users/me/notifications", "PATCH"): Probe(
        allow(SIGNED_IN), send=body({"reminder": True})
    ),
    # The signed unsubscribe token is the credential (RFC 8058 one-click: no sign-in).
    ("/api/v1/unsubscribe", "POST"): Probe(allow(ANYONE), send=unsubscribe),
    ("/unsubscribe", "GET"): Probe(allow(ANYONE), send=unsubscribe),
    ("/unsubscribe", "POST"): Probe(allow(ANYONE), send=unsubscribe),
    ("/api/v1/admin/mail", "GET"): Probe(allow(ADMINS)),
    ("/api/v1/admin/mail/<int:mail_id>/retry", "POST"): Probe(
        allow(ADMINS, 409), why="the admin passes; the welcome mail was sent, not dead: 409"
    ),
    ("/api/v1/admin/mail/preview/<template>", "GET"): Probe(allow(ADMINS)),
    # --- the catalogue: open to anyone signed in; contents to those enrolled ---------------------
    (COURSES, "GET"): Probe(allow(SIGNED_IN)),
    (COURSES, "POST"): Probe(allow(INSTRUCTORS, 201), send=body({"title": "New course"})),
    (COURSE, "GET"): Probe(allow(SIGNED_IN)),
    (COURSE, "PATCH"): Probe(allow(STAFF), send=body({"description": "the world's course"})),
    (COURSE, "DELETE"): Probe(allow(STAFF, 204), fresh=World.fresh_course),
    (COURSE + "/enroll", "POST"): Probe(
        allow(SIGNED_IN, 201, learner=200),
        fresh=World.fresh_course,
        why="anyone signed in may enrol (an open catalogue); 200 when already enrolled",
    ),
    (COURSE + "/enroll", "DELETE"): Probe(
        allow(ENROLLED_ONLY, 204, refused=404),
        fresh=World.fresh_course,
        why="leaving applies to the caller's own enrolment: none to leave is a 404",
    ),
    (COURSE + "/modules", "GET"): Probe(allow(ENROLLED)),
    (COURSE + "/modules", "POST"): Probe(allow(STAFF, 201), send=body({"title": "Week 2"})),
    (MODULE, "PATCH"): Probe(allow(STAFF), send=body({"title": "Week 1"})),
    (MODULE, "DELETE"): Probe(allow(STAFF, 204), fresh=World.fresh_module),
    (COURSE + "/contents", "GET"): Probe(allow(ENROLLED)),
    (COURSE + "/contents", "POST"): Probe(
        allow(STAFF, 201), send=body({"title": "More reading", "kind": "text"})
    ),
    (CONTENT, "GET"): Probe(allow(ENROLLED)),
    (CONTENT, "PATCH"): Probe(allow(STAFF), send=body({"title": "Lecture"})),
    (CONTENT, "DELETE"): Probe(allow(STAFF, 204), fresh=World.fresh_text),
    (COURSE + "/announcements", "POST"): Probe(allow(STAFF, 201), send=body({"text": "Hello"})),
    # --- uploads: the course's staff start them; only the uploader (or an admin) continues ----
    (CONTENT + "/video", "POST"): Probe(
        allow(STAFF, 202),
        fresh=World.fresh_video,
        send=lambda _: {"files": {"file": ("clip.mp4", b"not a video at all", "video/mp4")}},
        why="the job is queued (and fails: not a video); the access check runs before the body",
    ),
    ("/api/v1/uploads", "OPTIONS"): Probe(allow(ANYONE, 204)),
    ("/api/v1/uploads", "POST"): Probe(
        allow(STAFF, 201), send=lambda v: {"headers": tus_creation(v["blank_video_id"])}
    ),
    (UPLOAD, "HEAD"): Probe(allow(owner(Caller.INSTRUCTOR)), send=lambda _: {"headers": TUS}),
    (UPLOAD, "PATCH"): Probe(
        allow(owner(Caller.INSTRUCTOR), 204),
        fresh=World.fresh_upload,
        send=lambda _: {
            "headers": {
                **TUS,
                "Content-Type": "application/offset+octet-stream",
                "Upload-Offset": "0",
            },
            "content": b"1234",
        },
    ),
    (UPLOAD, "DELETE"): Probe(
        allow(owner(Caller.INSTRUCTOR), 204),
        fresh=World.fresh_upload,
        send=lambda _: {"headers": TUS},
    ),
    # --- transcode jobs -----------------------------------------------------------------------
    ("/api/v1/jobs", "GET"): Probe(
        allow(INSTRUCTORS),
        shown=Shown(lambda jobs: {job["course_id"] for job in jobs}, STAFF),
        why="by role; an instructor sees the jobs of their own courses only",
    ),
    ("/api/v1/jobs/workers", "GET"): Probe(allow(ADMINS)),
    (JOB, "GET"): Probe(allow(STAFF)),
    (JOB + "/cancel", "POST"): Probe(allow(STAFF, 409), why="staff pass; the job is done: 409"),
    (JOB + "/retry", "POST"): Probe(allow(STAFF, 409), why="staff pass; the job is done: 409"),
    # --- playback: those who may read the course's contents ----------------------------------
    (STREAM + "/manifest", "GET"): Probe(allow(ENROLLED)),
    (STREAM, "GET"): Probe(allow(ENROLLED)),
    (STREAM + "/thumbnail", "GET"): Probe(allow(ENROLLED)),
    (STREAM + "/preview", "GET"): Probe(allow(ENROLLED)),
    (STREAM + "/storyboard/<name>", "GET"): Probe(allow(ENROLLED)),
    (STREAM + "/hls/<path:path>", "GET"): Probe(allow(ENROLLED)),
    # --- progress and dashboards ------------------------------------------------------------------
    ("/api/v1/progress", "POST"): Probe(
        allow(ENROLLED_ONLY),
        send=lambda v: {"json": {"content_id": v["text_id"], "completed": True}},
        why="only a learner enrolled in the content's course records progress (staff too: 403)",
    ),
    ("/api/v1/progress/course/<int:course_id>", "GET"): Probe(allow(ENROLLED_ONLY)),
    ("/api/v1/progress/my/summary", "GET"): Probe(
        allow(SIGNED_IN),
        shown=Shown(lambda summary: {c["course_id"] for c in summary["courses"]}, ENROLLED_ONLY),
    ),
    ("/api/v1/dashboard/stats", "GET"): Probe(allow(SIGNED_IN)),
    ("/api/v1/dashboard/analytics/progress", "GET"): Probe(allow(SIGNED_IN)),
    ("/api/v1/dashboard/analytics/course/<int:course_id>", "GET"): Probe(allow(STAFF)),
    ("/api/v1/dashboard/admin", "GET"): Probe(allow(ADMINS)),
    # --- live sockets: the first frame authenticates; refusals map to 401/403 ------------------
    ("/api/v1/ws/notifications", "WS"): Probe(allow(SIGNED_IN)),
    ("/api/v1/ws/progress/<int:course_id>", "WS"): Probe(allow(ENROLLED)),
}


# --- the routes of the app --------------------------------------------------------------------


def routes() -> set[tuple[str, str]]:
    """(rule, method) of every route the app serves; "WS" for a WebSocket. The routes do not
    depend on the services (handlers look them up per request), so none are built here."""
    app = create_app(cast(Services, None), max_body_bytes=1024)
    found = set()
    for rule in app.url_map.iter_rules():
        if rule.websocket:
            found.add((rule.rule, "WS"))
            continue
        methods = set(rule.methods or ())
        if rule.provide_automatic_options:  # type: ignore[attr-defined]
            methods.discard("OPTIONS")
        if "GET" in methods:
            methods.discard("HEAD")  # werkzeug answers HEAD for every GET
        found.update((rule.rule, method) for method in methods)
    return found


def test_the_table_names_every_route_of_the_app_and_nothing_else() -> None:
    served = routes()
    missing = sorted(served - TABLE.keys())
    gone = sorted(TABLE.keys() - served)
    assert not missing, f"routes the authorization table does not cover: {missing}"
    assert not gone, f"rows of the authorization table for routes that no longer exist: {gone}"


# --- the cells ----------------------------------------------------------------------------------

PARAMETER = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
# A refused socket's error frame, as the status the same refusal gets over HTTP.
SOCKET_REFUSALS = {"auth_required": 401, "unauthenticated": 401, "forbidden": 403, "not_found": 404}


def fill(rule: str, values: Values) -> str:
    return PARAMETER.sub(lambda match: str(values[match[1]]), rule)


async def answer(
    world: World,
    caller: Caller,
    rule: str,
    method: str,
    probe: Probe,
    *,
    through: int | None = None,
) -> str | None:
    """What is wrong with the caller's answer from the route, if anything. `through`: another
    course's id in place of the world's, the other ids left the world's (the answer is 404)."""
    values = world.params()
    if probe.fresh is not None:
        values.update(await probe.fresh(world))
    expected = probe.expected[caller]
    if through is not None:
        values["course_id"] = through
        expected = 404
    path = fill(rule, values)
    if method == "WS":
        status = await socket_answer(world, caller, path)
    else:
        request = probe.send(values) if probe.send is not None else {}
        headers = {**request.pop("headers", {}), **world.auth(caller)}
        response = await world.api.request(method, path, headers=headers, **request)
        status = response.status_code
        if probe.shown is not None and status == 200:
            shown = world.course_id in probe.shown.course_ids(response.json())
            if shown != (caller in probe.shown.to):
                seen = "shows" if shown else "misses"
                return f"{method} {rule} as {caller.value}: {seen} the course"
    if status != expected:
        crossed = "" if through is None else f" through course {through}"
        why = f" ({probe.why})" if probe.why and through is None else ""
        return f"{method} {rule} as {caller.value}{crossed}: {status}, not {expected}{why}"
    return None


async def socket_answer(world: World, caller: Caller, path: str) -> int:
    """How the socket answers the caller's first frame: 200 for a welcome (in a course's room,
    with the role the caller should have there), else its refusal's status."""
    if caller is Caller.ANONYMOUS:
        first: dict[str, Any] = {"type": "subscribe"}  # a client with no token to send
    else:
        first = {"type": "auth", "token": world.logins[caller].access_token}
    async with open_websocket_url(ws_url(world.node, path)) as ws:
        await ws.send_message(json.dumps(first))
        frame = json.loads(await ws.get_message())
    if frame["type"] == "batch":
        frame = frame["frames"][0]
    if frame["type"] == "error":
        return SOCKET_REFUSALS[frame["code"]]
    assert frame["type"] == "welcome", frame
    if frame.get("course_id") is not None:
        role = "instructor" if caller in STAFF else "learner"
        assert frame["role"] == role, (path, caller, frame)
    return 200


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Cells start a dozen uploads as the instructor, more than one user may leave unfinished.
    return replace(settings, transcode_workers=1, max_concurrent_uploads=50)


@pytest.fixture
async def world(
    node: str, api: httpx.AsyncClient, admin: Login, settings: Settings, small_clip: Path
) -> World:
    logins = {Caller.ADMIN: admin}

    async def join(caller: Caller, signed_in: Awaitable[Login]) -> None:
        logins[caller] = await signed_in

    # Side by side: each sign-up and log-in is argon2 work in the node's threads.
    async with trio.open_nursery() as nursery:
        for caller, email in (
            (Caller.INSTRUCTOR, "teacher@test.lms"),
            (Caller.OTHER_INSTRUCTOR, "other-teacher@test.lms"),
        ):
            nursery.start_soon(join, caller, make_instructor(api, admin, email))
        for caller, email in (
            (Caller.LEARNER, "learner@test.lms"),
            (Caller.OUTSIDER, "outsider@test.lms"),
        ):
            nursery.start_soon(join, caller, sign_up(api, email))
        nursery.start_soon(register, api, BYSTANDER)
        nursery.start_soon(register, api, REFRESHER)
    instructor, other, learner = (
        logins[Caller.INSTRUCTOR],
        logins[Caller.OTHER_INSTRUCTOR],
        logins[Caller.LEARNER],
    )
    video = await publish_clip(api, instructor, small_clip)
    course = f"/api/v1/courses/{video.course_id}"
    enrolled = await api.post(f"{course}/enroll", headers=learner.auth)
    assert enrolled.status_code == 201, enrolled.text
    other_course = await api.post(COURSES, json={"title": "Other"}, headers=other.auth)
    assert other_course.status_code == 201, other_course.text
    [job] = (await api.get("/api/v1/jobs", headers=instructor.auth)).json()
    assert job["state"] == "done", job
    [mail, *_] = (await api.get("/api/v1/admin/mail", headers=admin.auth)).json()["messages"]
    world = World(
        node=node,
        api=api,
        media_dir=settings.media_dir,
        logins=logins,
        course_id=video.course_id,
        video_id=video.content_id,
        manifest=video.manifest,
        job_id=job["id"],
        text_id=0,
        module_id=0,
        blank_video_id=0,
        upload_id="",
        mail_id=mail["id"],
        other_course_id=other_course.json()["id"],
    )
    world.text_id = await world.fresh_content("text")
    world.blank_video_id = await world.fresh_content("video")
    world.module_id = (await world.fresh_module())["module_id"]
    world.upload_id = (await world.fresh_upload())["upload_id"]
    return world


# --- signed media: the signature is the credential, whoever sends it ------------------------------

FILE = "thumbnail.jpg"


@dataclass(frozen=True)
class Signed:
    """A signed media URL in parts: /media/<kid>/<sig>/<expires>/<fileset>/<file>."""

    kid: str
    sig: str
    expires: int
    fileset: str

    @classmethod
    def of(cls, url: str) -> Signed:
        _, media, kid, sig, expires, *fileset, _file = url.split("/")
        assert media == "media", url
        assert len(fileset) == 3, url  # videos/<content>/<uuid>
        return cls(kid, sig, int(expires), "/".join(fileset))

    def url(self, file: str = FILE) -> str:
        return f"/media/{self.kid}/{self.sig}/{self.expires}/{self.fileset}/{file}"


def tampered(sig: str) -> str:
    return ("B" if sig[0] == "A" else "A") + sig[1:]


def media_cases(world: World) -> dict[str, tuple[str, Mapping[Caller, int]]]:
    """Signed URLs as a player might (mis)use them, and what every caller gets from each."""
    mine = Signed.of(world.manifest["thumbnail"])
    # Another video's file set, its files in place as a worker leaves them.
    other = f"videos/{world.course_id + 1000}/0c5e1f5e-2c4b-4f4e-9a55-1f1d1c1b1a19"
    place(world.media_dir, other, {FILE: b"another video's thumbnail"})
    past = int(time.time()) - 60
    return {
        "the manifest's URL": (mine.url(), allow(ANYONE)),
        "another file set's own URL": (
            URLS.fileset(other, mine.expires) + f"/{FILE}",
            allow(ANYONE),
        ),
        "its signature on another file set": (
            replace(mine, fileset=other).url(),
            allow(ANYONE, 403),
        ),
        "its signature with a later expiry": (
            replace(mine, expires=mine.expires + 3600).url(),
            allow(ANYONE, 403),
        ),
        "a tampered signature": (replace(mine, sig=tampered(mine.sig)).url(), allow(ANYONE, 403)),
        "an expired URL, rightly signed": (
            URLS.fileset(mine.fileset, past) + f"/{FILE}",
            allow(ANYONE, 410),
        ),
    }


async def test_every_route_socket_and_media_url_answers_every_caller_as_the_rules_say(
    world: World,
) -> None:
    wrong: list[str | None] = []
    # Rows run side by side (each row's cells in turn): most of the time is argon2 in the
    # node's threads, for the cells that register or log in.
    limiter = trio.CapacityLimiter(8)

    async def ask(rule: str, method: str, probe: Probe) -> None:
        async with limiter:
            for caller in Caller:
                wrong.append(await answer(world, caller, rule, method, probe))

    async with trio.open_nursery() as nursery:
        for (rule, method), probe in TABLE.items():
            if not probe.ends_session:
                nursery.start_soon(ask, rule, method, probe)
    # Another course's instructor at the world's contents and modules through their own course:
    # the course check passes (they manage it), and the thing is not that course's.
    crossed = [row for row in TABLE.items() if re.search(r"/(contents|modules)/<int:", row[0][0])]
    assert crossed
    for (rule, method), probe in crossed:
        other = Caller.OTHER_INSTRUCTOR
        wrong.append(await answer(world, other, rule, method, probe, through=world.other_course_id))
    for case, (url, expected) in media_cases(world).items():
        for caller in Caller:
            status = (await world.api.get(url, headers=world.auth(caller))).status_code
            if status != expected[caller]:
                wrong.append(f"media: {case} as {caller.value}: {status}, not {expected[caller]}")
    for (rule, method), probe in TABLE.items():
        if probe.ends_session:
            await ask(rule, method, probe)
    failures = sorted(line for line in wrong if line is not None)
    assert not failures, "\n".join(failures)
