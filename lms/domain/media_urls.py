"""Signed media URLs: a path that carries its own authorisation for one file set until it expires.

Theory of operation. The manifest (Bearer, access-checked) hands out URLs of the form

    /media/<kid>/<sig>/<expires>/<fileset>/<file inside the file set>

where `fileset` is one directory of the media volume: `videos/<content_id>/<lease_id>` (a
published video, never changed once published) or `work/<lease_id>` (a job still running), and

    sig = base64url(md5("<expires>/<fileset>/ <secret>")), without "=" padding (22 characters)

with `secret` the one named by `kid`. This is exactly what nginx computes itself with

    secure_link      $sig,$expires;
    secure_link_md5  "$expires/$fileset/ $media_secret";   # map $kid $media_secret

so nginx (or a CDN doing the same) serves these paths from the volume without asking a node, and
the node's own media app (lms/http/media_app.py) verifies the same way, with no database read.
The signature sits in the path, not the query, so the relative URIs inside an HLS playlist or the
storyboard's WebVTT resolve to paths under the same signed prefix and inherit it. It covers the
whole file-set prefix (ending in "/", so `videos/1/<lease>` never signs `videos/1/<lease>x`), so
one signature opens every file of that set and nothing outside it.

Why MD5 here is safe enough (nginx's secure_link offers only MD5):
- The secret is at the END of a message the server chooses. MD5's length extension lets an
  attacker append to a message whose hash they know, which would need the secret at the start;
  with it at the end, extending a signed message yields a message that does not end with the
  secret. (A prefix-secret MD5 would be forgeable; this layout is the one that is not.)
- A collision attack needs two messages of the attacker's choice of which the server signs one.
  The server only signs "<expires>/<fileset>/ " for file sets it names itself after an access
  check, so there is no chosen message to collide with; a second preimage against MD5 remains
  infeasible.
- The tag is the full 128 bits (nginx compares all 16 bytes), checked here in constant time.
- Scope and lifetime bound a leaked URL: one file set, until `expires` (LMS_MEDIA_URL_TTL,
  4 hours by default), which a client cannot move without invalidating the signature.
- Secrets are at least 32 characters, drawn from a charset that is safe inside nginx's config.

Rotation: `LMS_MEDIA_KEYS="k2:<new>,k1:<old>"` signs with the first key and accepts all of them;
the key id in the path says which secret to check against. Prepend a new key everywhere (nodes and
nginx's map), and drop the old one after one TTL, when no URL it signed is still valid.

Expiry is rounded up to a multiple of min(TTL / 4, 15 min), so every URL handed out for a file set
within one such window is byte-identical and a CDN serves it from one cache entry.

Verification answers as nginx does: a malformed path, an unknown key id or a wrong signature is
`FORBIDDEN` (403); a correct signature whose expiry has passed is `EXPIRED` (410). nginx checks the
signature before the expiry, so does this: an expired URL with a tampered signature is 403.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

PREFIX = "/media/"
KID = re.compile(r"[a-z0-9]{1,16}")
# What nginx's location regex captures too (deploy/nginx/lms.conf): a lease id is a uuid4 string.
FILESET = re.compile(
    r"(?:work|videos/[0-9]{1,19})/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
)
SIGNATURE = re.compile(r"[A-Za-z0-9_-]{22}")
EXPIRES = re.compile(r"[0-9]{1,12}")
_SIGNED = re.compile(
    rf"^{PREFIX}(?P<kid>{KID.pattern})/(?P<sig>{SIGNATURE.pattern})/(?P<expires>{EXPIRES.pattern})"
    rf"/(?P<fileset>{FILESET.pattern})/(?P<file>.+)$"
)
# One path segment the worker writes and a player may ask for: no separator, no leading dot (so
# neither "." nor ".."), nothing a shell, nginx or a file system reads specially.
_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
# NAME_MAX; and a bound on the whole path far below PATH_MAX.
MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 1024
# Characters a secret may hold: base64 (either alphabet) and hex, all literal inside nginx's
# config (no "$", quote, space or ";"), and free of the "," and ":" that separate LMS_MEDIA_KEYS.
SECRET = re.compile(r"[A-Za-z0-9_\-+/=.~]+")
MIN_SECRET_LENGTH = 32
# Immutable: the files of a published job never change under a URL naming that job.
PUBLISHED_CACHE_CONTROL = "public, max-age=31536000, immutable"
# A running job's playlists grow as segments are written: revalidate every time.
RUNNING_CACHE_CONTROL = "no-cache"
MAX_WINDOW_SECONDS = 900
_DERIVATION_LABEL = b"lms media url key v1\x00"


@dataclass(frozen=True)
class MediaKey:
    kid: str
    secret: str = field(repr=False)


class Refused(enum.Enum):
    FORBIDDEN = "forbidden_signature"  # 403: malformed, unknown key, wrong signature
    EXPIRED = "url_expired"  # 410: the signature is right, its time is over


@dataclass(frozen=True)
class MediaFile:
    """A file a verified URL opens: `file` is a plain relative path inside `fileset`."""

    fileset: str
    file: str

    @property
    def path(self) -> str:
        """Relative to the media volume."""
        return f"{self.fileset}/{self.file}"

    @property
    def cache_control(self) -> str:
        return cache_control(self.fileset)


def cache_control(fileset: str) -> str:
    return PUBLISHED_CACHE_CONTROL if fileset.startswith("videos/") else RUNNING_CACHE_CONTROL


def signature(secret: str, expires: str, fileset: str) -> str:
    """nginx's `secure_link_md5 "$expires/$fileset/ $secret"`, as base64url without padding."""
    digest = hashlib.md5(f"{expires}/{fileset}/ {secret}".encode()).digest()  # noqa: S324 - nginx's secure_link_md5, keyed by a long secret
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def expiry(now: float, ttl: int) -> int:
    """The expiry of a URL handed out at `now`: at least `ttl` seconds on, rounded up to the
    window so URLs handed out close together are the same."""
    window = max(1, min(ttl // 4, MAX_WINDOW_SECONDS))
    return math.ceil((now + ttl) / window) * window


def signed_prefix(key: MediaKey, expires: int, fileset: str) -> str:
    """`/media/<kid>/<sig>/<expires>/<fileset>`: append "/<file>" for each file of the set."""
    if FILESET.fullmatch(fileset) is None:
        raise ValueError(f"not a file set of the media volume: {fileset!r}")
    sig = signature(key.secret, str(expires), fileset)
    return f"{PREFIX}{key.kid}/{sig}/{expires}/{fileset}"


def plain_relative_path(path: str) -> bool:
    """Whether `path` names a file below a directory without leaving it: segments as the worker
    writes them, none empty, none starting with a dot, within the file system's bounds."""
    if len(path.encode()) > MAX_PATH_BYTES:
        return False
    return all(len(part) <= MAX_NAME_BYTES and _SEGMENT.fullmatch(part) for part in path.split("/"))


def verify(path: str, keys: Mapping[str, str], now: float) -> MediaFile | Refused:
    """What a request path opens, checked against `keys` (key id -> secret) at `now`."""
    match = _SIGNED.match(path)
    if match is None or not plain_relative_path(match["file"]):
        return Refused.FORBIDDEN
    secret = keys.get(match["kid"])
    if secret is None:
        return Refused.FORBIDDEN
    expected = signature(secret, match["expires"], match["fileset"])
    if not hmac.compare_digest(expected, match["sig"]):
        return Refused.FORBIDDEN
    expires = int(match["expires"])
    if expires == 0:  # nginx reads it as no expiry given, and refuses the link
        return Refused.FORBIDDEN
    if expires < math.floor(now):  # nginx: valid up to and including the second it names
        return Refused.EXPIRED
    return MediaFile(match["fileset"], match["file"])


def key_map(keys: Iterable[MediaKey]) -> dict[str, str]:
    return {key.kid: key.secret for key in keys}


def parse_keys(raw: str) -> tuple[MediaKey, ...]:
    """`LMS_MEDIA_KEYS`: "kid:secret,kid:secret", the first one signs. Raise ValueError saying
    what is wrong, never echoing a secret."""
    keys: list[MediaKey] = []
    for position, entry in enumerate(raw.split(","), start=1):
        kid, colon, secret = entry.strip().partition(":")
        if not colon or KID.fullmatch(kid) is None:
            raise ValueError(
                f"entry {position}: expected kid:secret with a kid of 1 to 16 characters a-z, 0-9"
            )
        if len(secret) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"key {kid}: its secret must be at least {MIN_SECRET_LENGTH} characters"
            )
        if SECRET.fullmatch(secret) is None:
            raise ValueError(f"key {kid}: its secret may hold only A-Z a-z 0-9 _ - + / = . ~")
        if any(key.kid == kid for key in keys):
            raise ValueError(f"key {kid} is listed twice")
        keys.append(MediaKey(kid, secret))
    return tuple(keys)


def derived_key(secret_key: str) -> MediaKey:
    """The key used when LMS_MEDIA_KEYS is unset: `k0`, derived from LMS_SECRET_KEY (so every
    node of a cluster has it), under a label of its own so it is not the token key itself."""
    return MediaKey("k0", hashlib.sha256(_DERIVATION_LABEL + secret_key.encode()).hexdigest())


@dataclass(frozen=True)
class MediaUrls:
    """Signs the URLs of file sets: with the first of `keys`, valid for `ttl` seconds, under
    `base_url` (a CDN or nginx origin; "" for the node's own origin)."""

    keys: tuple[MediaKey, ...]
    ttl: int
    base_url: str = ""

    def __post_init__(self) -> None:
        if not self.keys:
            raise ValueError("at least one media key is needed to sign")

    def expiry(self, now: float) -> int:
        return expiry(now, self.ttl)

    def fileset(self, fileset: str, expires: int) -> str:
        """The signed URL of the file set, to which "/<file>" is appended."""
        return self.base_url + signed_prefix(self.keys[0], expires, fileset)
