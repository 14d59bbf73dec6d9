"""Sample contexts for every message template: what the admin preview renders
(`GET /api/v1/admin/mail/preview/{template}`), and what the template tests fill each one with.
Each holds every value its template reads, shaped as the code that enqueues it writes them."""

from __future__ import annotations

from typing import Any

from proto.mail import MailKind

_COURSE = {"id": 7, "title": "Optics for beginners"}

# template name -> (the kind it is sent as, a context)
SAMPLES: dict[str, tuple[MailKind, dict[str, Any]]] = {
    "welcome": (MailKind.WELCOME, {"name": "Ada"}),
    "digest": (
        MailKind.DIGEST,
        {
            "name": "Ada",
            "course": _COURSE,
            "contents": [
                {"id": 41, "title": "Refraction", "kind": "video"},
                {"id": 42, "title": "Snell's law, worked examples", "kind": "text"},
            ],
        },
    ),
    "reminder": (MailKind.REMINDER, {"name": "Ada", "days": 3}),
    "achievement_first_video": (
        MailKind.ACHIEVEMENT,
        {"name": "Ada", "content": {"id": 41, "title": "Refraction"}, "course": _COURSE},
    ),
    "achievement_course": (MailKind.ACHIEVEMENT, {"name": "Ada", "course": _COURSE}),
    "achievement_streak": (MailKind.ACHIEVEMENT, {"name": "Ada", "days": 7, "since": "2026-12-01"}),
    "password_reset": (
        MailKind.PASSWORD_RESET,
        {"name": "Ada", "token": "sample-token-not-valid", "expires_minutes": 60},
    ),
    "account_exists": (MailKind.ACCOUNT_EXISTS, {"name": "Ada"}),
}
