"""The outbox as admins see it: messages by state, each with its last error, and a retry for
the dead ones (`/api/v1/admin/mail`)."""

from __future__ import annotations

from lms.domain.access import Principal
from lms.domain.outbox import IllegalMove
from lms.errors import Conflict, Forbidden, NotFound
from lms.mail.nudge import Nudge, nudge_mailer
from lms.store import outbox
from lms.store.database import Database
from proto.mail import OutboxPage, OutboxState, OutboxView


class OutboxAdmin:
    def __init__(self, db: Database, nudge: Nudge) -> None:
        """`nudge` tells this node's Mailer that a message is due now."""
        self._db = db
        self._nudge = nudge

    async def list(
        self, who: Principal, *, state: OutboxState | None, limit: int, offset: int
    ) -> OutboxPage:
        _admins_only(who)
        return await self._db.transaction(
            outbox.list_outbox, state=state, limit=limit, offset=offset
        )

    async def retry(self, who: Principal, mail_id: int) -> OutboxView:
        """Send a dead message again with fresh attempts.

        Raises:
          Forbidden: not an admin. NotFound: no such message. Conflict: it is not dead.
        """
        _admins_only(who)
        try:
            view = await self._db.transaction(outbox.retry_dead, mail_id)
        except IllegalMove as exc:
            raise Conflict(f"only dead mail can be retried; this one is {exc.old}") from None
        if view is None:
            raise NotFound(f"no mail {mail_id} in the outbox")
        await nudge_mailer(self._nudge)
        return view


def _admins_only(who: Principal) -> None:
    if not who.is_admin:
        raise Forbidden("only admins see the outbox")
