"""`/api/v1/auth`: register, log in, refresh, log out."""

from __future__ import annotations

from quart import Blueprint, Response
from quart_schema import tag

from lms.domain.access import Principal
from lms.http.wire import authenticated, json_body, no_content, respond, returns, services
from proto.api import ErrorBody, LoginRequest, RefreshRequest, RegisterRequest, TokenPair, User

blueprint = Blueprint("auth", __name__, url_prefix="/api/v1/auth")


@blueprint.post("/register")
@tag(["auth"])
@json_body(RegisterRequest)
@returns(User, 201)
@returns(ErrorBody, 409)
async def register(body: RegisterRequest) -> Response:
    """Create a learner account."""
    return respond(await services().accounts.register(body), 201)


@blueprint.post("/login")
@tag(["auth"])
@json_body(LoginRequest)
@returns(TokenPair)
@returns(ErrorBody, 401)
async def login(body: LoginRequest) -> Response:
    """Exchange e-mail and password for an access token and a refresh token."""
    return respond(await services().accounts.login(body))


@blueprint.post("/refresh")
@tag(["auth"])
@json_body(RefreshRequest)
@returns(TokenPair)
@returns(ErrorBody, 401)
async def refresh(body: RefreshRequest) -> Response:
    """Exchange a refresh token (usable once) for a new pair."""
    return respond(await services().accounts.refresh(body.refresh_token))


@blueprint.post("/logout")
@tag(["auth"])
@authenticated
async def logout(who: Principal) -> Response:
    """End every session of the caller: all their refresh tokens and access tokens, on every
    device, stop working at once."""
    await services().accounts.log_out(who)
    return no_content()
