"""`/reset-password`: the page a password-reset mail links to (`#token=...`, a fragment the
browser never sends here), where the new password is chosen, and the one the sign-in form's
"Forgot your password?" opens to ask for such a mail (lms/static/reset_password.html and .js).
Both speak to `/api/v1/auth/password-reset` (lms/http/auth.py); the page itself is static."""

from __future__ import annotations

from quart import Blueprint, Response

from lms.http.static_page import page_response, read_page

blueprint = Blueprint("reset_page", __name__)

_PAGE = read_page("reset_password.html")


@blueprint.get("/reset-password")
async def reset_password_page() -> Response:
    return page_response(_PAGE)
