"""The node's HTML pages (lms/static/*.html): static files whose scripts read what they need from
the URL and sign in themselves (lms/static/session.js), so one answer serves every course, video
and user.

A page needs no token in its URL, which would end up in logs and browser history: its script
shows the shared sign-in form against `POST /api/v1/auth/login` and keeps the tokens in the
browser (see session.js for where and why), or takes an access token from the URL's fragment
(`#token=...`), which the browser never sends to the server.
"""

from __future__ import annotations

from importlib.resources import files

from quart import Response


def read_page(name: str) -> bytes:
    """The page `lms/static/<name>`, read once when the module serving it is imported."""
    return files("lms").joinpath("static", name).read_bytes()


def page_response(page: bytes) -> Response:
    # no-cache: a deploy's new page (and the scripts it names) shows on the next load.
    return Response(
        page,
        content_type="text/html; charset=utf-8",
        headers={"Cache-Control": "no-cache", "Referrer-Policy": "no-referrer"},
    )
