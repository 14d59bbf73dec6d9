"""`/api/v1/users`: who am I, your own settings, and admin edits of users (roles)."""

from __future__ import annotations

from quart import Blueprint, Response
from quart_schema import tag

from lms.domain.access import Principal
from lms.http.wire import authenticated, json_body, respond, returns, services
from proto.api import User, UserPatch

blueprint = Blueprint("users", __name__, url_prefix="/api/v1/users")


@blueprint.get("/me")
@tag(["users"])
@authenticated
@returns(User)
async def me(who: Principal) -> Response:
    return respond(await services().accounts.me(who))


@blueprint.patch("/me")
@tag(["users"])
@authenticated
@json_body(UserPatch)
@returns(User)
async def edit_me(who: Principal, body: UserPatch) -> Response:
    """Change your name or your `time_zone` (an IANA name; your days are counted in it)."""
    return respond(await services().accounts.edit(who, who.user_id, body))


@blueprint.patch("/<int:user_id>")
@tag(["users"])
@authenticated
@json_body(UserPatch)
@returns(User)
async def edit_user(user_id: int, who: Principal, body: UserPatch) -> Response:
    """Rename yourself; admins may also change anyone's role (`{"role": "instructor"}`)."""
    return respond(await services().accounts.edit(who, user_id, body))
