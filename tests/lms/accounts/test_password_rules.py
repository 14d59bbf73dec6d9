"""The rule that refuses passwords too easy to guess, without a server."""

from __future__ import annotations

import pytest

from lms.accounts.password_rules import WeakPassword, common_passwords, refuse_weak, weakness

EMAIL = "ann.smith@example.org"


def test_the_vendored_list_holds_the_common_passwords_long_enough_to_be_chosen() -> None:
    common = common_passwords()
    assert {"password", "12345678", "iloveyou", "sunshine"} <= common
    assert "123456" not in common  # shorter than any password that can be chosen
    assert 30_000 < len(common) < 100_000


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("short", "shorter than 8"),
        ("password", "most common"),
        ("PaSsWoRd", "most common"),  # guessers try other cases too
        ("trustno1", "most common"),
        ("aaaaaaaaaaaa", "one character"),
        ("abcabcabcabc", "short sequence repeated"),
        ("12121212", "short sequence repeated"),
        ("abcdefghijkl", "run"),
        ("98765432", "run"),
        ("asdfghjkl", "run"),
        ("lkjhgfdsa", "run"),
        ("1234567890", "run"),
        ("ann.smith", "e-mail address"),
        ("AnnSmith1990!", "e-mail address"),
        ("ann.smith@example.org", "e-mail address"),
    ],
)
def test_a_password_easy_to_guess_is_refused_with_the_reason(password: str, why: str) -> None:
    reason = weakness(password, EMAIL)
    assert reason is not None
    assert why in reason
    with pytest.raises(WeakPassword, match=r"at `\$\.password`") as refused:
        refuse_weak(password, EMAIL)
    assert refused.value.status == 422


@pytest.mark.parametrize(
    "password",
    [
        "correct horse battery",
        "ann.smith is a teacher",  # her name inside a longer phrase is not her name alone
        "Kx7Qm2Vb",
        "abcdefgq",  # a run broken
        "abab abab",
        "ann@example.org",  # another address than hers
    ],
)
def test_a_password_not_easy_to_guess_is_accepted(password: str) -> None:
    assert weakness(password, EMAIL) is None
    refuse_weak(password, EMAIL)
