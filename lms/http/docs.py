"""`/docs`: the API explorer (Swagger UI on `/openapi.json`), every file of it served by the node,
so it works in a school without internet access and under a strict Content-Security-Policy.

quart-schema's own page is switched off (lms/http/app.py): it loads Swagger UI from a CDN and
starts it with an inline script. This page (lms/static/docs.html) takes Swagger UI from
lms/static/vendor/swagger-ui/ (`make vendor-swagger-ui`) and starts it from lms/static/docs.js,
both through Quart's static route, which answers with their content type, an ETag and a cache
lifetime, and needs no token.
"""

from __future__ import annotations

from importlib.resources import files

from quart import Blueprint, Response
from quart_schema import hide

blueprint = Blueprint("docs", __name__)

_PAGE = files("lms").joinpath("static/docs.html").read_bytes()

# Everything from the node, no inline script or style. Swagger UI sets styles through the DOM
# (which style-src does not govern) and its stylesheet draws icons as data: images.
POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)


@blueprint.get("/docs")
@hide
async def docs_page() -> Response:
    return Response(
        _PAGE,
        content_type="text/html; charset=utf-8",
        headers={"Cache-Control": "no-cache", "Content-Security-Policy": POLICY},
    )
