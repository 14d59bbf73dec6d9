"""Notification settings, one-click unsubscribe and the admin's template preview: the rules, with
storage passed in."""

from __future__ import annotations

import structlog

from lms.domain.access import Principal
from lms.domain.unsubscribe import BadUnsubscribeToken, UnsubscribeKey, verify
from lms.errors import Forbidden, LmsError, NotFound
from lms.mail.render import RenderedMail, links_for, render
from lms.mail.samples import SAMPLES
from lms.store import mail_preferences
from lms.store.database import Database
from lms.store.rows import changes
from proto.api import Role
from proto.mail import MailKind
from proto.notifications import NotificationPatch, NotificationSettings, Unsubscribed

log = structlog.get_logger()

# The account the preview's unsubscribe link is signed for: none (ids start at 1), so following
# it changes nothing.
_PREVIEW_USER = 0


class BadUnsubscribeLink(LmsError):
    status = 400
    code = "bad_unsubscribe_link"


class Notifications:
    def __init__(self, db: Database, key: UnsubscribeKey, public_url: str) -> None:
        self._db = db
        self._key = key
        self._public_url = public_url

    async def settings(self, who: Principal) -> NotificationSettings:
        return _settings(await self._db.transaction(mail_preferences.preferences, who.user_id))

    async def change(self, who: Principal, patch: NotificationPatch) -> NotificationSettings:
        choices = {MailKind(kind): on for kind, on in changes(patch).items()}
        stored = await self._db.transaction(mail_preferences.set_preferences, who.user_id, choices)
        if stored is None:
            raise NotFound("this account no longer exists")
        return _settings(stored)

    async def unsubscribe(self, token: str) -> Unsubscribed:
        """Turn off the kind of mail `token` names for its user (no sign-in: the token is the
        proof). Idempotent: a second click changes nothing and answers the same."""
        user_id, kind = self.describe(token)
        stored = await self._db.transaction(
            mail_preferences.set_preferences, user_id, {kind: False}
        )
        if stored is None:
            raise NotFound("the account this link was sent to no longer exists")
        log.info("mail_unsubscribed", user_id=user_id, kind=kind.value)
        return Unsubscribed(user_id=user_id, kind=kind)

    def preview(self, who: Principal, template: str) -> RenderedMail:
        """`template` rendered with its sample data (lms/mail/samples.py), as it would be sent."""
        if who.role is not Role.ADMIN:
            raise Forbidden("only an admin may preview mail templates")
        if template not in SAMPLES:
            raise NotFound(f"no mail template named {template!r}; see {sorted(SAMPLES)}")
        kind, context = SAMPLES[template]
        return render(
            template, context, links_for(self._public_url, self._key, _PREVIEW_USER, kind)
        )

    def describe(self, token: str) -> tuple[int, MailKind]:
        """The (user, kind) a token would turn off, changing nothing (the page a link opens)."""
        try:
            return verify(self._key, token)
        except BadUnsubscribeToken as exc:
            raise BadUnsubscribeLink(str(exc)) from None


def _settings(stored: dict[MailKind, bool]) -> NotificationSettings:
    return NotificationSettings(**{kind.value: on for kind, on in stored.items()})
