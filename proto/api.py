"""REST request and response bodies of `/api/v1`.

Requests forbid unknown fields, so a typo in a client (`"titel"`) is an error rather than a silent
no-op. Constraints live in the types (`Meta`), so the OpenAPI schema states them too.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import UNSET, Meta, UnsetType

Email = Annotated[
    str,
    Meta(
        min_length=3,
        max_length=254,
        pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
        description="An e-mail address; compared case-insensitively.",
    ),
]
# Also the shortest lms/accounts/password_rules.py accepts (it refuses weak ones past it).
PASSWORD_MIN_LENGTH = 8
Password = Annotated[str, Meta(min_length=PASSWORD_MIN_LENGTH, max_length=256)]
Name = Annotated[str, Meta(min_length=1, max_length=200)]
Title = Annotated[str, Meta(min_length=1, max_length=300)]
Description = Annotated[str, Meta(max_length=20_000)]
Position = Annotated[int, Meta(ge=0, le=1_000_000)]
Threshold = Annotated[float, Meta(gt=0.0, le=1.0)]
# The fastest a course's videos may be credited as watched, in seconds of video per second of
# wall clock (lms/domain/progress.py `credit`): 1x to the 16x players allow.
DEFAULT_MAX_PLAYBACK_RATE = 2.0
PlaybackRate = Annotated[float, Meta(ge=1.0, le=16.0)]
TimeZone = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=64,
        description="An IANA time zone name, such as `Europe/Paris`; the user's days are "
        "counted in it.",
    ),
]
# Ids are bigint columns: a larger number names nothing (and would fail in the query).
MAX_ID = 2**63 - 1
Id = Annotated[int, Meta(ge=1, le=MAX_ID)]


class Role(enum.StrEnum):
    LEARNER = "learner"
    INSTRUCTOR = "instructor"
    ADMIN = "admin"


class ContentKind(enum.StrEnum):
    VIDEO = "video"
    TEXT = "text"


class Request(msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True):
    """Base of every request body. In a `...Patch` body a field left out is left unchanged."""


class Response(msgspec.Struct, frozen=True, gc=False):
    """Base of every response body."""


# --- auth -------------------------------------------------------------------------------------


class RegisterRequest(Request, frozen=True):
    email: Email
    password: Password
    name: Name


class Registered(Response, frozen=True):
    """The answer to a registration, the same whether or not the address already had an
    account, so that it tells nobody who has one: a new account can log in at once (its id is
    `GET /api/v1/users/me`'s); the owner of an existing one is mailed that someone tried, and
    their account is unchanged."""

    email: str
    name: str
    message: str


class LoginRequest(Request, frozen=True):
    email: Email
    password: Annotated[str, Meta(min_length=1, max_length=256)]


class RefreshRequest(Request, frozen=True):
    refresh_token: Annotated[str, Meta(min_length=1, max_length=4096)]


class TokenPair(Response, frozen=True):
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "bearer"  # noqa: S105 - the OAuth token type, not a secret


class PasswordResetRequest(Request, frozen=True):
    email: Email


class PasswordResetRequested(Response, frozen=True):
    """The same whether or not an account has the address: who has one is not revealed."""

    message: str


class PasswordResetConfirm(Request, frozen=True):
    """`token` from the reset mail's link; `password` under the rules of registration. With
    `email`, the token must be the one mailed to that address."""

    token: Annotated[str, Meta(min_length=1, max_length=256)]
    password: Password
    email: Email | None = None


# --- users ------------------------------------------------------------------------------------


class User(Response, frozen=True):
    id: int
    email: str
    name: str
    role: Role
    time_zone: str
    created_at: datetime


class UserPatch(Request, frozen=True):
    name: Name | UnsetType = UNSET
    role: Role | UnsetType = UNSET
    time_zone: TimeZone | UnsetType = UNSET


# --- courses, modules, contents ---------------------------------------------------------------


class CourseCreate(Request, frozen=True):
    title: Title
    description: Description = ""
    completion_threshold: Threshold = 0.9
    max_playback_rate: PlaybackRate = DEFAULT_MAX_PLAYBACK_RATE


class CoursePatch(Request, frozen=True):
    title: Title | UnsetType = UNSET
    description: Description | UnsetType = UNSET
    completion_threshold: Threshold | UnsetType = UNSET
    max_playback_rate: PlaybackRate | UnsetType = UNSET


class Course(Response, frozen=True):
    id: int
    owner_id: int
    title: str
    description: str
    completion_threshold: float
    created_at: datetime
    updated_at: datetime
    # Last, with a default: a course cached by the previous release (Redis) still decodes.
    max_playback_rate: float = DEFAULT_MAX_PLAYBACK_RATE


class ModuleCreate(Request, frozen=True):
    title: Title
    position: Position = 0


class ModulePatch(Request, frozen=True):
    title: Title | UnsetType = UNSET
    position: Position | UnsetType = UNSET


class Module(Response, frozen=True):
    id: int
    course_id: int
    title: str
    position: int


class ContentCreate(Request, frozen=True):
    title: Title
    kind: ContentKind
    position: Position = 0
    module_id: Id | None = None
    body: Description | None = None


class ContentPatch(Request, frozen=True):
    title: Title | UnsetType = UNSET
    position: Position | UnsetType = UNSET
    module_id: Id | UnsetType | None = UNSET
    body: Description | UnsetType | None = UNSET


class Content(Response, frozen=True):
    id: int
    course_id: int
    module_id: int | None
    title: str
    kind: ContentKind
    position: int
    body: str | None
    created_at: datetime


class Enrollment(Response, frozen=True):
    course_id: int
    user_id: int
    enrolled_at: datetime


# --- errors and health ------------------------------------------------------------------------


class ErrorDetail(Response, frozen=True, omit_defaults=True):
    code: str
    message: str
    details: list[dict[str, str]] | None = None


class ErrorBody(Response, frozen=True):
    error: ErrorDetail


class ComponentHealth(Response, frozen=True):
    name: str
    ok: bool
    state: str
    detail: str = ""


class Health(Response, frozen=True):
    status: str
    node_id: str
    components: list[ComponentHealth]


class AdminCreate(Request, frozen=True):
    """`lms createadmin --email --password`."""

    email: Email
    password: Password
