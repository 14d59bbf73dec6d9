"""The cache tags dashboards carry, and every change invalidates: one spelling for all.

A learner's answers carry their `user` tag and their courses' `course` tags; a course's
analytics its `course` tag; the admin dashboard `PLATFORM`. A change invalidates the tags of
what it touched: progress its learner, course, content and the platform; an enrolment its
learner, course and the platform; a content edit its course and content; a role change its
user and the platform.
"""

from __future__ import annotations

PLATFORM = "platform"


def user(user_id: int) -> str:
    return f"user:{user_id}"


def course(course_id: int) -> str:
    return f"course:{course_id}"


def content(content_id: int) -> str:
    return f"content:{content_id}"
