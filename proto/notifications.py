"""Notification settings: which kinds of optional mail a user receives
(`GET/PATCH /api/v1/users/me/notifications`), and the one-click unsubscribe's answer.

Security mail (password resets, a registration attempt on an existing address) has no setting:
it is always sent.
"""

from __future__ import annotations

from msgspec import UNSET, UnsetType

from proto.api import Request, Response
from proto.mail import MailKind

# The kinds a user may turn off, in the order the settings list them.
OPTIONAL_KINDS = (MailKind.WELCOME, MailKind.DIGEST, MailKind.REMINDER, MailKind.ACHIEVEMENT)


class NotificationSettings(Response, frozen=True):
    """Whether each kind of optional mail is on (every kind is on until turned off)."""

    welcome: bool
    digest: bool  # one message per course and day listing what was published in it
    reminder: bool  # a nudge after a few days without learning, at 18:00 in your time zone
    achievement: bool  # first video finished, course completed, 7- and 30-day streaks


class NotificationPatch(Request, frozen=True):
    """The kinds to turn on (true) or off (false); a kind left out is left as it is."""

    welcome: bool | UnsetType = UNSET
    digest: bool | UnsetType = UNSET
    reminder: bool | UnsetType = UNSET
    achievement: bool | UnsetType = UNSET


class Unsubscribed(Response, frozen=True):
    """What a one-click unsubscribe turned off, for whom."""

    user_id: int
    kind: MailKind


class MailPreview(Response, frozen=True):
    """A template rendered with sample data, as it would be sent."""

    template: str
    subject: str
    html: str
    text: str
