"""Every mail template renders with sample data into a subject, an HTML part and a text part:
user content escaped in HTML and shown as written in text, links absolute, the footer's
unsubscribe link (or the security notice), the layout's styles inlined."""

from __future__ import annotations

import re

import jinja2
import pytest

from lms.domain.unsubscribe import derived_key, verify
from lms.mail.render import TEMPLATES, MailLinks, UnknownTemplate, links_for, render
from lms.mail.samples import SAMPLES
from proto.mail import SECURITY_KINDS, MailKind

KEY = derived_key("render-test-secret-" + "x" * 32)
PUBLIC = "https://learn.example.org"
HOSTILE = "<script>alert('x')</script> & Co"


def test_every_template_has_a_sample_and_every_sample_a_template() -> None:
    assert set(SAMPLES) == TEMPLATES


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_template_renders_both_parts_with_absolute_links(name: str) -> None:
    kind, context = SAMPLES[name]
    mail = render(name, context, links_for(PUBLIC + "/", KEY, 42, kind))

    assert mail.subject
    assert "\n" not in mail.subject
    assert mail.html.lstrip().lower().startswith("<!doctype html>")
    assert "Ada" in mail.text
    assert "Ada" in mail.html
    hrefs = re.findall(r'href="([^"]*)"', mail.html)
    assert hrefs
    assert all(href.startswith(PUBLIC + "/") for href in hrefs)
    text_links = re.findall(r"https?://\S+", mail.text)
    assert text_links
    assert all(link.startswith(PUBLIC + "/") for link in text_links)
    assert "{{" not in mail.html + mail.text  # nothing left unrendered


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_styles_are_inlined_and_only_media_queries_stay_in_a_style_block(name: str) -> None:
    kind, context = SAMPLES[name]
    html = render(name, context, links_for(PUBLIC, KEY, 42, kind)).html

    assert 'style="' in html
    assert 'class="card" style="max-width: 560px' in html
    (block,) = re.findall(r"<style>(.*?)</style>", html, re.S)
    assert block.strip().startswith("@media")


@pytest.mark.parametrize(
    "name", sorted(n for n, (k, _) in SAMPLES.items() if k not in SECURITY_KINDS)
)
def test_optional_mail_has_a_signed_unsubscribe_link_for_its_user_and_kind(name: str) -> None:
    kind, context = SAMPLES[name]
    mail = render(name, context, links_for(PUBLIC, KEY, 42, kind))

    (url,) = set(re.findall(re.escape(PUBLIC) + r"/unsubscribe\?token=([\w.%-]+)", mail.text))
    assert verify(KEY, url) == (42, kind)
    assert f"{PUBLIC}/unsubscribe?token={url}" in mail.html


@pytest.mark.parametrize("name", ["password_reset", "account_exists"])
def test_security_mail_has_no_unsubscribe_link_and_says_why(name: str) -> None:
    kind, context = SAMPLES[name]
    links = links_for(PUBLIC, KEY, 42, kind)
    mail = render(name, context, links)

    assert links.unsubscribe_url is None
    assert "unsubscribe" not in (mail.html + mail.text).lower()
    assert "security" in mail.text
    assert "security" in mail.html


def test_a_course_titled_script_is_text_in_both_parts() -> None:
    kind, context = SAMPLES["digest"]
    hostile = {
        **context,
        "name": HOSTILE,
        "course": {"id": 7, "title": HOSTILE},
        "contents": [{"id": 1, "title": HOSTILE, "kind": "video"}],
    }
    mail = render("digest", hostile, links_for(PUBLIC, KEY, 42, kind))

    assert "<script" not in mail.html
    # The inliner serialises the document again: quotes need no escaping in text nodes.
    assert "&lt;script&gt;alert('x')&lt;/script&gt; &amp; Co" in mail.html
    assert HOSTILE in mail.text
    assert "&lt;" not in mail.text
    assert HOSTILE in mail.subject


def test_a_title_with_line_breaks_cannot_add_a_header_line_to_the_subject() -> None:
    _kind, context = SAMPLES["achievement_course"]
    title = "Optics\r\nBcc: victim@example.org"
    mail = render(
        "achievement_course", {**context, "course": {"id": 1, "title": title}}, MailLinks(PUBLIC)
    )

    assert mail.subject == "You completed Optics Bcc: victim@example.org"


def test_a_password_reset_link_carries_its_token() -> None:
    mail = render(
        "password_reset",
        {"name": "Ada", "token": "t0k/en+", "expires_minutes": 60},
        MailLinks(PUBLIC),
    )

    assert f"{PUBLIC}/reset-password#token=t0k/en%2B" in mail.text
    assert "60 minutes" in mail.text


def test_an_unknown_template_and_a_missing_value_are_errors_not_blank_mail() -> None:
    with pytest.raises(UnknownTemplate):
        render("../base", {}, MailLinks(PUBLIC))
    with pytest.raises(jinja2.UndefinedError):
        render("welcome", {}, MailLinks(PUBLIC))
    assert MailKind.WELCOME.value in TEMPLATES
