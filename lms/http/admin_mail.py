"""`/api/v1/admin/mail`: the outbox by state, with each message's last error, and a retry for
dead mail (admins)."""

from __future__ import annotations

from quart import Blueprint, Response, request
from quart_schema import tag

from lms.domain.access import Principal
from lms.errors import Invalid
from lms.http.wire import authenticated, query_int, respond, returns, services
from proto.mail import OutboxPage, OutboxState, OutboxView

blueprint = Blueprint("admin_mail", __name__)
OUTBOX = "/api/v1/admin/mail"


@blueprint.get(OUTBOX)
@tag(["mail"])
@authenticated
@returns(OutboxPage)
async def list_mail(who: Principal) -> Response:
    """Newest first, with how many messages each state holds. `?state=` (pending, sending,
    sent, skipped, dead), `?limit=` (1-200, default 50), `?offset=`."""
    raw_state = request.args.get("state")
    try:
        state = None if raw_state is None else OutboxState(raw_state)
    except ValueError:
        choices = ", ".join(s.value for s in OutboxState)
        raise Invalid(f"query parameter 'state' must be one of {choices}") from None
    page = await services().outbox.list(
        who,
        state=state,
        limit=query_int("limit", 50, 1, 200),
        offset=query_int("offset", 0, 0, 10_000_000),
    )
    return respond(page)


@blueprint.post(OUTBOX + "/<int:mail_id>/retry")
@tag(["mail"])
@authenticated
@returns(OutboxView)
async def retry_mail(mail_id: int, who: Principal) -> Response:
    """Send a dead message again, now, with a fresh set of attempts; 409 unless it is dead."""
    await request.get_data(cache=False)
    return respond(await services().outbox.retry(who, mail_id))
