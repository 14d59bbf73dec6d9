"""Mail settings and unsubscribing: `GET/PATCH /api/v1/users/me/notifications`, one-click
unsubscribe without signing in (`/unsubscribe?token=...` for people and RFC 8058 clients,
`POST /api/v1/unsubscribe?token=...` for API clients), and the admin's template preview.

The unsubscribe link in a mail's footer and its `List-Unsubscribe` header are the same URL:
a person following it gets a page with a button, and nothing changes until they press it (a
GET never unsubscribes: mail scanners and link previews fetch links on their own); a mail
client's one-click POSTs `List-Unsubscribe=One-Click` to it and is unsubscribed at once.
"""

from __future__ import annotations

import html

from quart import Blueprint, Response, request
from quart_schema import tag

from lms.domain.access import Principal
from lms.errors import LmsError
from lms.http.wire import authenticated, json_body, refuses, respond, returns, services
from proto.mail import MailKind
from proto.notifications import MailPreview, NotificationPatch, NotificationSettings, Unsubscribed

blueprint = Blueprint("notifications", __name__)

_KIND_NAMES = {
    MailKind.WELCOME: "welcome messages",
    MailKind.DIGEST: "digests of new content in your courses",
    MailKind.REMINDER: "learning reminders",
    MailKind.ACHIEVEMENT: "achievement messages",
}


@blueprint.get("/api/v1/users/me/notifications")
@tag(["users"])
@authenticated
@returns(NotificationSettings)
async def my_settings(who: Principal) -> Response:
    """Which kinds of optional mail you receive. Security mail (password resets) always comes."""
    return respond(await services().notifications.settings(who))


@blueprint.patch("/api/v1/users/me/notifications")
@tag(["users"])
@authenticated
@json_body(NotificationPatch)
@returns(NotificationSettings)
async def change_settings(who: Principal, body: NotificationPatch) -> Response:
    """Turn kinds of mail on (true) or off (false), e.g. `{"reminder": false}`."""
    return respond(await services().notifications.change(who, body))


@blueprint.post("/api/v1/unsubscribe")
@tag(["users"])
@returns(Unsubscribed)
@refuses(400)
async def unsubscribe_api() -> Response:
    """One-click unsubscribe (RFC 8058) with the signed `token` of a mail's link; no sign-in."""
    await request.get_data()  # `List-Unsubscribe=One-Click`, or nothing: either way, read it
    return respond(await services().notifications.unsubscribe(_token()))


@blueprint.get("/unsubscribe")
async def unsubscribe_page() -> Response:
    """The page a mail's unsubscribe link opens: what it turns off, and a button to do it."""
    try:
        _, kind = services().notifications.describe(_token())
    except LmsError as exc:
        return _page("This link does not work", f"<p>{html.escape(exc.message)}.</p>", exc.status)
    action = html.escape(f"/unsubscribe?token={_token()}")
    return _page(
        "Unsubscribe",
        f"<p>Stop sending you {html.escape(_KIND_NAMES[kind])}?</p>"
        f'<form method="post" action="{action}">'
        '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
        '<button type="submit">Unsubscribe</button></form>',
    )


@blueprint.post("/unsubscribe")
async def unsubscribe_one_click() -> Response:
    """The button of the page above, and mail clients' one-click POST to the same URL."""
    await request.get_data()
    try:
        done = await services().notifications.unsubscribe(_token())
    except LmsError as exc:
        return _page("This link does not work", f"<p>{html.escape(exc.message)}.</p>", exc.status)
    return _page(
        "Unsubscribed",
        f"<p>You will no longer get {html.escape(_KIND_NAMES[done.kind])}. You can turn them "
        "back on in your notification settings.</p>",
    )


@blueprint.get("/api/v1/admin/mail/preview/<template>")
@tag(["admin"])
@authenticated
@returns(MailPreview)
async def preview(template: str, who: Principal) -> Response:
    """A mail template rendered with sample data: its subject, HTML part and text part."""
    mail = services().notifications.preview(who, template)
    return respond(
        MailPreview(template=template, subject=mail.subject, html=mail.html, text=mail.text)
    )


def _token() -> str:
    return request.args.get("token", "")


def _page(title: str, body: str, status: int = 200) -> Response:
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{html.escape(title)}</title><link rel="stylesheet" href="/static/site.css">'
        f"</head><body><main><h1>{html.escape(title)}</h1>{body}</main></body></html>"
    )
    return Response(
        page,
        status=status,
        content_type="text/html; charset=utf-8",
        # The token is in the URL: keep it out of other sites' logs.
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )
