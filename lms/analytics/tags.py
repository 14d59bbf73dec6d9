"""The cache tags dashboards carry, and every change invalidates: one spelling for all.

A learner's answers carry their `user` tag and their courses' `course` tags; a course's
analytics its `course` tag; the admin dashboard `PLATFORM`. A change invalidates the tags of
what it touched: progress its learner, course, content and the platform; an enrolment its
learner, course and the platform; a content edit its course and content; a role change its
user and the platform.

A user's account row (role, token generation, profile) and a course's own row, which every
page's access check reads, carry `account` and `course_row` tags instead: progress, which
outdates `user` and `course` on every heartbeat, never changes them, so they stay cached while
learners watch. Whatever bumps a token generation (a role change, logout, a replayed refresh
token) or edits the row invalidates its tag.
"""

from __future__ import annotations

PLATFORM = "platform"


def user(user_id: int) -> str:
    return f"user:{user_id}"


def course(course_id: int) -> str:
    return f"course:{course_id}"


def content(content_id: int) -> str:
    return f"content:{content_id}"


def account(user_id: int) -> str:
    return f"account:{user_id}"


def course_row(course_id: int) -> str:
    return f"course-row:{course_id}"
