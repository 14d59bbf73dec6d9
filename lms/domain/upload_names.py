"""The name an upload is known by: what the client called its file, made plain text.

An upload's bytes are stored under a name the server chooses (`uploads/<uuid>`,
lms/uploads/storage.py), so a client's file name never becomes a path. It is still shown back
(tus `Upload-Metadata`, job lists, pages) and may one day name a download, so it is cut down to
something that reads as what it is, a last path component:

- NFKC first, so look-alikes become what they look like (full-width dots and solidus,
  U+FF0E U+FF0E U+FF0F, are `../`; the one-dot leader U+2024 is `.`) and are then treated as such;
- controls, format characters (U+202E RIGHT-TO-LEFT OVERRIDE, zero-width joiners, BOM), line and
  paragraph separators dropped: they hide or reorder what a reader sees;
- `/` and `\\` separate components; only the last one is kept;
- no leading or trailing white space, at most `MAX_NAME_BYTES` bytes of UTF-8 (a file system's
  name limit), and a name of dots only (`.`, `..`) or nothing is `FALLBACK`.
"""

from __future__ import annotations

import unicodedata

MAX_NAME_BYTES = 255
FALLBACK = "upload"
# Cc controls (NUL, newline), Cf format (bidi overrides, zero-width), Cs lone surrogates,
# Zl/Zp line and paragraph separators.
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def shown_name(raw: str) -> str:
    """`raw` as an upload's name: one path component of visible text, never `.` or `..`."""
    visible = "".join(
        char
        for char in unicodedata.normalize("NFKC", raw)
        if unicodedata.category(char) not in _DROPPED_CATEGORIES
    )
    last = visible.replace("\\", "/").rsplit("/", 1)[-1].strip()
    cut = last.encode()[:MAX_NAME_BYTES].decode(errors="ignore").strip()
    # What was cut may leave a character NFKC would write otherwise (a base without its mark).
    name = unicodedata.normalize("NFKC", cut)
    return FALLBACK if not name.strip(".") else name
