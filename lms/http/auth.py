"""`/api/v1/auth`: register, log in, refresh, log out, reset a forgotten password."""

from __future__ import annotations

from quart import Blueprint, Response
from quart_schema import tag

from lms.domain.access import Principal
from lms.http.openapi_document import no_body
from lms.http.rate_limits import limit
from lms.http.wire import authenticated, json_body, no_content, respond, returns, services
from proto.api import (
    ErrorBody,
    LoginRequest,
    PasswordResetConfirm,
    PasswordResetRequest,
    PasswordResetRequested,
    RefreshRequest,
    Registered,
    RegisterRequest,
    TokenPair,
)

blueprint = Blueprint("auth", __name__, url_prefix="/api/v1/auth")


@blueprint.post("/register")
@tag(["auth"])
@json_body(RegisterRequest)
@returns(Registered, 202)
@returns(ErrorBody, 422)
@returns(ErrorBody, 429)
async def register(body: RegisterRequest) -> Response:
    """Create a learner account, who logs in next (their id is `GET /api/v1/users/me`'s). For
    an address that has an account already the answer is the same, as quick, and its owner
    is mailed instead: who has an account is not revealed. A password too easy to guess
    (too short, common, a run such as `abcdefgh`, the address itself) is refused with 422
    `weak_password` saying why. Limited per client (429 with Retry-After)."""
    limits = services().limits
    await limits.per_client(limits.register_per_ip, "sign-ups from here")
    return respond(await services().accounts.register(body), 202)


@blueprint.post("/login")
@tag(["auth"])
@json_body(LoginRequest)
@returns(TokenPair)
@returns(ErrorBody, 401)
@returns(ErrorBody, 429)
async def login(body: LoginRequest) -> Response:
    """Exchange e-mail and password for an access token and a refresh token. Limited per
    address and per client (429 with Retry-After): a password is guessed one address at a
    time, from anywhere."""
    limits = services().limits
    await limits.per_client(limits.login_per_ip, "log-in attempts from here")
    await limit(limits.login_per_address, body.email.lower(), "log-in attempts for this address")
    return respond(await services().accounts.login(body))


@blueprint.post("/refresh")
@tag(["auth"])
@json_body(RefreshRequest)
@returns(TokenPair)
@returns(ErrorBody, 401)
@returns(ErrorBody, 429)
async def refresh(body: RefreshRequest) -> Response:
    """Exchange a refresh token (usable once) for a new pair. Limited per client (429 with
    Retry-After)."""
    limits = services().limits
    await limits.per_client(limits.refresh_per_ip, "token refreshes from here")
    return respond(await services().accounts.refresh(body.refresh_token))


@blueprint.post("/logout")
@tag(["auth"])
@authenticated
@no_body(204, "Signed out on every device.")
async def logout(who: Principal) -> Response:
    """End every session of the caller: all their refresh tokens and access tokens, on every
    device, stop working at once."""
    await services().accounts.log_out(who)
    return no_content()


@blueprint.post("/password-reset")
@tag(["auth"])
@json_body(PasswordResetRequest)
@returns(PasswordResetRequested, 202)
@returns(ErrorBody, 429)
async def request_password_reset(body: PasswordResetRequest) -> Response:
    """Mail a link to reset the password to the address, if an account has it. The answer is
    the same, and as quick, either way. Limited per address and per client (429 with
    Retry-After)."""
    limits = services().limits
    await limits.per_client(limits.reset_per_ip, "password reset requests from here")
    await limit(limits.reset_per_address, body.email.lower(), "password resets for this address")
    await services().password_resets.request(body.email)
    return respond(
        PasswordResetRequested(
            "if an account has this address, a link to reset its password is on its way; "
            "it works once, within an hour"
        ),
        202,
    )


@blueprint.post("/password-reset/confirm")
@tag(["auth"])
@json_body(PasswordResetConfirm)
@returns(ErrorBody, 400)
@returns(ErrorBody, 410)
@returns(ErrorBody, 422)
@returns(ErrorBody, 429)
@no_body(204, "The password is set; every session of the account has ended.")
async def confirm_password_reset(body: PasswordResetConfirm) -> Response:
    """Set a new password with the token from a reset link, and end every session of the
    account. Refused: `reset_token_invalid` (400: unknown or altered, or for another `email`),
    `reset_token_used` (410), `reset_token_expired` (410, after an hour), `weak_password`
    (422: too easy to guess, as at registration; the token is not spent)."""
    limits = services().limits
    await limits.per_client(limits.reset_per_ip, "password reset attempts from here")
    await services().password_resets.confirm(body)
    return no_content()
