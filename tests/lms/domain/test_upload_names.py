"""An upload's name is one component of visible text whatever the client called its file: no
separator, no `..`, no character that hides or reorders text, at most 255 bytes."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from lms.domain.upload_names import FALLBACK, MAX_NAME_BYTES, shown_name

# Pieces a hostile name is made of, mixed with any text by the strategy below.
TRICKS = [
    "..",
    "/",
    "\\",
    "\x00",
    "\n",
    "\u202e",  # RIGHT-TO-LEFT OVERRIDE: "lecture\u202e4pm.exe" shows as "lectureexe.mp4"
    "\u200b",  # ZERO WIDTH SPACE
    "\ufeff",  # BOM
    "\u2028",  # LINE SEPARATOR
    "\uff0e",  # FULLWIDTH FULL STOP
    "\uff0f",  # FULLWIDTH SOLIDUS
    "\uff3c",  # FULLWIDTH REVERSE SOLIDUS
    "\u2024",  # ONE DOT LEADER (NFKC: ".")
    "\u2025",  # TWO DOT LEADER (NFKC: "..")
    "\ufe52",  # SMALL FULL STOP
    "\u0301",  # COMBINING ACUTE ACCENT
    "\u0338",  # COMBINING LONG SOLIDUS OVERLAY
    "etc",
    "passwd",
    "C:",
    " ",
]
NAMES = st.lists(st.one_of(st.sampled_from(TRICKS), st.text()), max_size=12).map("".join)
# Dropped as the module says: controls, format characters, surrogates, line/paragraph separators.
HIDDEN = {"Cc", "Cf", "Cs", "Zl", "Zp"}


@given(NAMES)
@example("../../etc/passwd")
@example("..\\..\\windows\\system32")
@example("/etc/passwd")
@example("\uff0e\uff0e\uff0f\uff0e\uff0e\uff0fetc\uff0fpasswd")
@example("\u2025")
@example("x" * 300)
@example("\U0001f600" * 100)
def test_any_name_becomes_one_component_of_visible_text(raw: str) -> None:
    name = shown_name(raw)
    assert name
    assert "/" not in name
    assert "\\" not in name
    assert name.strip(".")  # never ".", "..", "..."
    assert name == name.strip()
    assert len(name.encode()) <= MAX_NAME_BYTES
    assert not {unicodedata.category(char) for char in name} & HIDDEN
    assert unicodedata.normalize("NFKC", name) == name
    assert shown_name(name) == name  # a name shown back and sent again stays itself


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("lecture.mp4", "lecture.mp4"),
        ("Vorlesung Übung 3.mp4", "Vorlesung Übung 3.mp4"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\..\\lecture.mp4", "lecture.mp4"),
        ("\uff0e\uff0e\uff0fsecret.mp4", "secret.mp4"),
        ("lecture\u202e4pm.exe", "lecture4pm.exe"),
        ("a\x00b.mp4", "ab.mp4"),
        ("\u2025", FALLBACK),
        ("../", FALLBACK),
        ("", FALLBACK),
        ("e\u0301.mp4", "\u00e9.mp4"),
    ],
)
def test_names_keep_what_a_person_reads_and_lose_what_misleads(raw: str, shown: str) -> None:
    assert shown_name(raw) == shown


def test_an_overlong_name_is_cut_at_255_bytes_on_a_character_boundary() -> None:
    name = shown_name("\u00e9" * 200 + ".mp4")  # 2 bytes each
    assert name == "\u00e9" * 127
