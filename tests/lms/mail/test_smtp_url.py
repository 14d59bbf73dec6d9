from __future__ import annotations

import pytest

from lms.mail.smtp_url import SmtpTarget, parse_smtp_url


def test_starttls_on_the_submission_port_with_a_login() -> None:
    assert parse_smtp_url("smtp://lms:s3cret@mail.example.org:587?starttls=1") == SmtpTarget(
        host="mail.example.org",
        port=587,
        implicit_tls=False,
        starttls=True,
        username="lms",
        password="s3cret",
    )


def test_smtps_defaults_to_port_465_and_plain_smtp_to_25() -> None:
    assert parse_smtp_url("smtps://mail.example.org").port == 465
    assert parse_smtp_url("smtps://mail.example.org").implicit_tls
    relay = parse_smtp_url("smtp://relay")
    assert (relay.port, relay.starttls, relay.username) == (25, False, None)


def test_special_characters_in_the_login_are_percent_decoded() -> None:
    target = parse_smtp_url("smtp://ada%40example.org:p%40ss%3Aw@mail:587")
    assert (target.username, target.password) == ("ada@example.org", "p@ss:w")


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("http://mail.example.org", "smtp:// or smtps://"),
        ("smtp://", "expected a host"),
        ("smtp://mail:99999", "expected smtp://"),
        ("smtp://mail?tls=1", "unknown parameter 'tls'"),
        ("smtp://mail?starttls=maybe", "starttls must be 1 or 0"),
        ("smtps://mail?starttls=1", "smtp:// only"),
        ("smtp://mail/path", "no path"),
    ],
)
def test_a_bad_url_says_what_is_wrong(url: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        parse_smtp_url(url)


def test_the_password_is_never_shown() -> None:
    target = parse_smtp_url("smtp://lms:hunter2@mail:587?starttls=1")
    assert "hunter2" not in repr(target)
    assert "hunter2" not in target.describe()
    assert target.describe() == "SMTP lms@mail:587 (STARTTLS)"
    with pytest.raises(ValueError, match="starttls") as bad:
        parse_smtp_url("smtp://lms:hunter2@mail:587?starttls=2")
    assert "hunter2" not in str(bad.value)
