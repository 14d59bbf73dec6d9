"""Security headers on every answer of a node with no nginx in front: pages, JSON, errors, signed
media and /docs each carry nosniff, no framing, a referrer policy and a CSP, once; a route's own
stricter header stands alone; and nginx's copy of the pages' policy is the node's, to the letter."""

from __future__ import annotations

import re

import httpx

from lms.config import Settings
from lms.http.docs import POLICY as DOCS_POLICY
from lms.http.security_headers import PAGE_POLICY, REFERRER_POLICY, page_policy
from tests.lms.http.test_media_app import place, published, signed
from tests.nginx import LMS_CONF, SECURITY_HEADERS

ALWAYS = {"x-content-type-options": "nosniff", "x-frame-options": "DENY"}


def directives(policy: str) -> dict[str, list[str]]:
    return {d.split()[0]: d.split()[1:] for d in policy.split("; ")}


async def test_every_kind_of_answer_carries_each_security_header_once(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    fileset = published()
    place(settings.media_dir, fileset, {"thumb.jpg": b"\xff\xd8\xff"})
    answers = {
        "page": await api.get("/watch/1"),
        "json": await api.get("/health"),
        "error": await api.get("/api/v1/no-such-thing"),
        "media": await api.get(signed(fileset, "thumb.jpg")),
        "refused media": await api.get("/media/not-signed"),
        "docs": await api.get("/docs"),
    }
    assert [answer.status_code for answer in answers.values()] == [200, 200, 404, 200, 403, 200]
    assert answers["error"].json()["error"]["code"] == "not_found"
    for kind, answer in answers.items():
        for name, value in ALWAYS.items():
            assert answer.headers.get_list(name) == [value], (kind, name)
        assert len(answer.headers.get_list("content-security-policy")) == 1, kind
        assert len(answer.headers.get_list("referrer-policy")) == 1, kind

    for kind in ("page", "json", "error", "media", "refused media"):
        assert answers[kind].headers["content-security-policy"] == PAGE_POLICY, kind
    # The routes' own, stricter choices win: /docs's CSP, the pages' referrer policy (a reset
    # token travels in the URL).
    assert answers["docs"].headers["content-security-policy"] == DOCS_POLICY
    assert answers["page"].headers["referrer-policy"] == "no-referrer"
    for kind in ("json", "error", "media"):
        assert answers[kind].headers["referrer-policy"] == REFERRER_POLICY, kind


def test_the_pages_policy_loads_from_this_origin_only_and_lets_hls_js_play() -> None:
    policy = directives(PAGE_POLICY)
    assert policy["default-src"] == policy["script-src"] == policy["style-src"] == ["'self'"]
    assert policy["media-src"] == ["'self'", "blob:"]
    assert policy["worker-src"] == ["'self'", "blob:"]
    assert policy["connect-src"] == ["'self'"]
    assert policy["frame-ancestors"] == policy["base-uri"] == policy["object-src"] == ["'none'"]


def test_a_media_cdn_is_allowed_where_the_player_reaches_it_and_nowhere_else() -> None:
    policy = directives(page_policy("https://cdn.example.org:8443/lms"))
    origin = "https://cdn.example.org:8443"
    assert policy["media-src"] == ["'self'", "blob:", origin]
    assert policy["connect-src"] == ["'self'", origin]
    assert policy["img-src"] == ["'self'", "data:", "blob:", origin]
    for name in ("default-src", "script-src", "style-src", "worker-src"):
        assert origin not in policy[name], name


def test_nginx_adds_the_nodes_page_policy_and_each_header_only_where_the_node_set_none() -> None:
    conf = LMS_CONF.read_text()
    [nginx_policy] = re.findall(
        r'map \$upstream_http_content_security_policy \$lms_csp \{[^}]*?"" "([^"]+)";', conf
    )
    assert nginx_policy == PAGE_POLICY
    included = SECURITY_HEADERS.read_text()
    for header in ("Content-Security-Policy", "Referrer-Policy", *map(str.title, ALWAYS)):
        [variable] = re.findall(rf"^add_header {header} \$(\w+) always;$", included, re.MULTILINE)
        upstream = header.lower().replace("-", "_")
        # "" (the node sent none) maps to nginx's value, anything else to "" (no header).
        assert re.search(
            rf"map \$upstream_http_{upstream} \${variable} \{{(?:\s*#.*)*"
            rf'\s*"" "[^"]+";\s*default "";\s*\}}',
            conf,
        ), header
