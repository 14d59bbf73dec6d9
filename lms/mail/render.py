"""Mail rendering: a template name and its context become a subject, an HTML part and a text part.

Theory of operation
-------------------
Each message is two Jinja2 templates in `lms/mail/templates/`: `<name>.html`, extending the one
responsive layout `base.html`, and `<name>.txt`, extending `base.txt`, whose `subject` block is
the subject line. The HTML environment escapes every value (a course titled `<script>` shows as
text); the text environment does not, since a text/plain part is never interpreted and an
entity such as `&lt;` would show as itself. The subject's whitespace is collapsed to single
spaces, so no value can break the header into a second one.

The layout's stylesheet is inlined into `style` attributes by css-inline (mail clients drop
`<style>` blocks or parts of them); its `@media` rules stay in a `<style>` block, where clients
that read them narrow the layout on phones.

Links are absolute, built on `MailLinks.public_url` by the templates' `url()`; the footer
carries `MailLinks.unsubscribe_url`, or, for security mail (no such link), says why it comes
whatever the user's settings. Templates are loaded and compiled once per process; `render` is
pure and thread-safe.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import css_inline
import jinja2

from lms.domain.unsubscribe import UnsubscribeKey, sign
from proto.mail import SECURITY_KINDS, MailKind

# What the footer's unsubscribe link turns off, by kind.
_KIND_LABELS = {
    MailKind.WELCOME: "welcome messages",
    MailKind.DIGEST: "new content digests",
    MailKind.REMINDER: "learning reminders",
    MailKind.ACHIEVEMENT: "achievement messages",
}


@dataclass(frozen=True, slots=True)
class MailLinks:
    """Where a message's links point: `public_url` is the site's origin as learners reach it
    (LMS_PUBLIC_URL), `unsubscribe_url` the message's one-click unsubscribe (None for security
    mail), `kind` what that link turns off."""

    public_url: str
    unsubscribe_url: str | None = None
    kind: MailKind | None = None


@dataclass(frozen=True, slots=True)
class RenderedMail:
    subject: str
    html: str
    text: str


class UnknownTemplate(LookupError):
    """No message template has this name."""


def links_for(
    public_url: str, key: UnsubscribeKey, user_id: int | None, kind: MailKind
) -> MailLinks:
    """The links of a message of `kind` to `user_id`: an unsubscribe URL signed for that user
    and kind, except for security mail and mail to no account. The same URL serves the footer
    (GET shows a confirmation page) and `List-Unsubscribe` (RFC 8058 POSTs to it)."""
    if user_id is None or kind in SECURITY_KINDS:
        return MailLinks(public_url)
    token = sign(key, user_id, kind)
    return MailLinks(public_url, f"{_origin(public_url)}/unsubscribe?token={quote(token)}", kind)


def _origin(public_url: str) -> str:
    return public_url.rstrip("/")


def _environment(autoescape: bool) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
        autoescape=autoescape,  # noqa: S701 - False only for the text/plain templates
        undefined=jinja2.StrictUndefined,  # a missing context value fails, not renders blank
        keep_trailing_newline=True,
    )


_html = _environment(autoescape=True)
_text = _environment(autoescape=False)
# Media queries stay in a <style> block: they cannot be inlined, and the layout needs them.
_inliner = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)

TEMPLATES: frozenset[str] = frozenset(
    name.removesuffix(".txt")
    for name in _text.list_templates(extensions=["txt"])
    if name != "base.txt"
)


def render(template: str, context: Mapping[str, Any], links: MailLinks) -> RenderedMail:
    """The message `template` filled with `context`.

    Raises:
      UnknownTemplate: `template` is not one of `TEMPLATES`.
      jinja2.UndefinedError: the context lacks a value the template uses.
    """
    if template not in TEMPLATES:
        raise UnknownTemplate(f"no mail template named {template!r}")
    origin = _origin(links.public_url)
    values = {
        **context,
        "public_url": origin,
        "unsubscribe_url": links.unsubscribe_url,
        "kind_label": _KIND_LABELS.get(links.kind, "these messages") if links.kind else "",
        "url": lambda path: origin + path,
        "content_url": lambda content: (
            origin + (f"/watch/{content['id']}" if content["kind"] == "video" else "/dashboard")
        ),
    }
    text_template = _text.get_template(f"{template}.txt")
    subject = " ".join(
        "".join(text_template.blocks["subject"](text_template.new_context(values))).split()
    )
    text = text_template.render(values)
    html = _html.get_template(f"{template}.html").render({**values, "subject": subject})
    return RenderedMail(subject=subject, html=_inliner.inline(html), text=text)
