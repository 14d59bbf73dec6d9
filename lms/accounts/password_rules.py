"""Which passwords are refused as too easy to guess, and why.

A password an attacker tries early is refused wherever one is chosen (registration, a reset's
new password): one on the list of the 100,000 most common passwords (SecLists'
`10-million-password-list-top-100000.txt`, vendored gzipped beside this module by
`make vendor-passwords`, with its licence), compared ignoring case since guessers try the
capitalised forms too; one shorter than `PASSWORD_MIN_LENGTH`; one character repeated, or a
short run repeated (`abcabcabc`); a run of consecutive characters up or down (`abcdefgh`,
`98765432`) or along a keyboard row (`qwertyui`); and the address's own local part, whatever
digits and symbols are added to it (`ann.smith` -> `AnnSmith1990!`).

The list is read once, on first use (~40 ms), and only its entries long enough to be chosen at
all are kept (~38,000 strings, a few MiB): once per process, the node's loop waits that long.
"""

from __future__ import annotations

import functools
import gzip
import itertools
from importlib import resources

from lms.errors import Invalid
from proto.api import PASSWORD_MIN_LENGTH

COMMON_PASSWORDS = "common-passwords.txt.gz"
# Rows of the keyboards most passwords are typed on, and the digit row.
_KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm", "azertyuiop", "qwertzuiop", "1234567890")
# The longest unit whose repetition counts as one pattern (`abcd` in `abcdabcd`).
_LONGEST_REPEATED_UNIT = 4


class WeakPassword(Invalid):
    code = "weak_password"


def weakness(password: str, email: str) -> str | None:
    """Why `password` is too easy to guess for the account of `email`; None when it is not."""
    folded = password.casefold()
    if len(password) < PASSWORD_MIN_LENGTH:
        return f"it is shorter than {PASSWORD_MIN_LENGTH} characters"
    if len(set(folded)) == 1:
        return "it is one character repeated"
    if _is_repeated_unit(folded):
        return "it is a short sequence repeated"
    if _is_run(folded):
        return "it is a run of consecutive characters or keys"
    if _is_local_part(folded, email):
        return "it is the e-mail address, or its name before the @"
    if folded in common_passwords():
        return "it is one of the 100,000 most common passwords, the first ones guessed"
    return None


def refuse_weak(password: str, email: str) -> None:
    """Raise `WeakPassword` (422, naming why) when `password` is too easy to guess."""
    reason = weakness(password, email)
    if reason is not None:
        raise WeakPassword(
            f"this password is too easy to guess: {reason}; choose a longer or less common "
            "one (a few unrelated words work well) - at `$.password`"
        )


@functools.cache
def common_passwords() -> frozenset[str]:
    """The vendored list's entries (case-folded) that are long enough to be chosen at all."""
    packed = resources.files("lms.accounts").joinpath(COMMON_PASSWORDS).read_bytes()
    words = gzip.decompress(packed).decode("utf-8").splitlines()
    return frozenset(w.casefold() for w in words if len(w) >= PASSWORD_MIN_LENGTH)


def _is_repeated_unit(folded: str) -> bool:
    return any(
        len(folded) % size == 0 and folded == folded[:size] * (len(folded) // size)
        for size in range(2, _LONGEST_REPEATED_UNIT + 1)
    )


def _is_run(folded: str) -> bool:
    steps = {ord(b) - ord(a) for a, b in itertools.pairwise(folded)}
    if steps in ({1}, {-1}):
        return True
    return any(folded in row or folded in row[::-1] for row in _KEYBOARD_ROWS)


def _is_local_part(folded: str, email: str) -> bool:
    address = email.casefold()
    names = {_letters(address.rpartition("@")[0]), _letters(address)} - {""}
    return _letters(folded) in names


def _letters(text: str) -> str:
    return "".join(c for c in text if c.isalpha())
