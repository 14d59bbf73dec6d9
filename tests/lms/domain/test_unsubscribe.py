"""One-click unsubscribe tokens: a token turns off exactly the kind of mail it was signed for,
for exactly its user; anything tampered with, signed with another key, or naming security mail
is refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lms.domain.unsubscribe import BadUnsubscribeToken, derived_key, sign, verify
from proto.mail import SECURITY_KINDS, MailKind

KEY = derived_key("unsubscribe-test-secret-" + "x" * 32)
OPTIONAL = [kind for kind in MailKind if kind not in SECURITY_KINDS]


@given(st.integers(1, 2**63 - 1), st.sampled_from(OPTIONAL))
def test_a_token_names_its_user_and_kind(user_id: int, kind: MailKind) -> None:
    token = sign(KEY, user_id, kind)

    assert verify(KEY, token) == (user_id, kind)
    assert token.replace(".", "").replace("_", "").replace("-", "").isalnum()  # URL-safe


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: t.replace("42.", "43.", 1),  # another user
        lambda t: t.replace(".digest.", ".reminder.", 1),  # another kind
        lambda t: "042" + t[2:],  # the same user spelled another way
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # the signature
        lambda t: t + "A",
        lambda t: t.rsplit(".", 1)[0],  # no signature
        lambda t: "",
        lambda t: "x.digest." + t.rsplit(".", 1)[1],
        lambda t: "-42" + t[2:],
        lambda t: t.replace(".digest.", ".nonsense.", 1),
        lambda t: t + "\u00e9",
    ],
)
def test_a_tampered_token_is_refused(tamper) -> None:
    with pytest.raises(BadUnsubscribeToken):
        verify(KEY, tamper(sign(KEY, 42, MailKind.DIGEST)))


def test_a_token_of_another_user_or_key_is_refused() -> None:
    mine, theirs = sign(KEY, 42, MailKind.DIGEST), sign(KEY, 7, MailKind.DIGEST)
    forged = "7.digest." + mine.rsplit(".", 1)[1]

    assert verify(KEY, theirs) == (7, MailKind.DIGEST)
    with pytest.raises(BadUnsubscribeToken):
        verify(KEY, forged)
    with pytest.raises(BadUnsubscribeToken):
        verify(derived_key("another-deployment-" + "y" * 32), mine)


@pytest.mark.parametrize("kind", sorted(SECURITY_KINDS))
def test_security_mail_cannot_be_turned_off_even_with_a_valid_signature(kind: MailKind) -> None:
    with pytest.raises(BadUnsubscribeToken):
        verify(KEY, sign(KEY, 42, kind))
