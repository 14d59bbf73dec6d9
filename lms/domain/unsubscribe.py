"""One-click unsubscribe tokens: who may turn off which kind of mail, without signing in. Pure.

A token is `<user id>.<kind>.<signature>`, where the signature is HMAC-SHA256 over the user id
and the kind under a key derived from LMS_SECRET_KEY (so every node of a cluster verifies what
any node signed), in unpadded URL-safe base64: the token goes into a URL as it is. It names no
expiry: a mail read a year later must still unsubscribe (RFC 8058 asks that the link keep
working), and all it can do is turn one kind of mail off for one user. Verification compares
signatures in constant time, and a token for one user or kind is worthless for another.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import NewType

from proto.mail import SECURITY_KINDS, MailKind

UnsubscribeKey = NewType("UnsubscribeKey", bytes)

_DERIVATION_LABEL = b"lms unsubscribe key v1\x00"


class BadUnsubscribeToken(ValueError):
    """The token is malformed, was not signed by us, or names mail that cannot be turned off."""


def derived_key(secret_key: str) -> UnsubscribeKey:
    """The signing key, derived from LMS_SECRET_KEY under a label of its own, so a signature
    made here can never stand for one made with the secret elsewhere (tokens, media URLs)."""
    return UnsubscribeKey(hmac.digest(secret_key.encode(), _DERIVATION_LABEL, hashlib.sha256))


def sign(key: UnsubscribeKey, user_id: int, kind: MailKind) -> str:
    """The token that turns off `kind` mail for `user_id`."""
    return f"{user_id}.{kind.value}.{_signature(key, user_id, kind)}"


def verify(key: UnsubscribeKey, token: str) -> tuple[int, MailKind]:
    """The (user id, kind) that `token` turns off.

    Raises:
      BadUnsubscribeToken: the token is malformed, tampered with, signed with another key, or
          names security mail (which is never turned off).
    """
    user_part, _, rest = token.partition(".")
    kind_part, _, signature = rest.partition(".")
    if not user_part.isascii() or not user_part.isdigit() or len(user_part) > 19:
        raise BadUnsubscribeToken("this unsubscribe link is malformed")
    try:
        kind = MailKind(kind_part)
    except ValueError:
        raise BadUnsubscribeToken("this unsubscribe link is malformed") from None
    user_id = int(user_part)
    if str(user_id) != user_part:  # "042": one token per user, not one per spelling
        raise BadUnsubscribeToken("this unsubscribe link is malformed")
    expected = _signature(key, user_id, kind)
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
        raise BadUnsubscribeToken("this unsubscribe link is not valid")
    if kind in SECURITY_KINDS:
        raise BadUnsubscribeToken("security mail cannot be turned off")
    return user_id, kind


def _signature(key: UnsubscribeKey, user_id: int, kind: MailKind) -> str:
    mac = hmac.digest(key, f"{user_id}\x00{kind.value}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
