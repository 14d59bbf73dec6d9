"""Signed media URLs (pure): what a signature opens, and everything it must not."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lms.domain.media_urls import (
    PUBLISHED_CACHE_CONTROL,
    RUNNING_CACHE_CONTROL,
    MediaFile,
    MediaKey,
    MediaUrls,
    Refused,
    derived_key,
    expiry,
    key_map,
    parse_keys,
    plain_relative_path,
    signature,
    verify,
)

SECRET = "correct-horse-battery-staple-0123456789"
KEY = MediaKey("k1", SECRET)
OLD = MediaKey("k0", "an-older-secret-still-accepted-for-one-ttl")
KEYS = key_map([KEY, OLD])
LEASE = "6f1c2d3e-9a0b-4c5d-8e7f-0123456789ab"
OTHER_LEASE = "0a1b2c3d-4e5f-4a6b-8c7d-9e8f7a6b5c4d"
PUBLISHED = f"videos/42/{LEASE}"
RUNNING = f"work/{LEASE}"
EXPIRES = 1_765_000_000
NOW = EXPIRES - 3600.0
URLS = MediaUrls((KEY, OLD), ttl=14_400)


def url(fileset: str = PUBLISHED, file: str = "hls/master.m3u8", key: MediaKey = KEY) -> str:
    return MediaUrls((key,), ttl=14_400).fileset(fileset, EXPIRES) + "/" + file


def test_the_signature_is_what_nginx_secure_link_md5_computes() -> None:
    # By hand, from nginx's documented formula (secure_link_md5 "$expires/$fileset/ $secret",
    # base64url of the binary MD5 without padding):
    #   printf '%s' '1765000000/videos/42/6f1c...89ab/ correct-horse-battery-staple-0123456789' \
    #     | openssl md5 -binary | openssl base64 | tr '+/' '-_' | tr -d =
    assert signature(SECRET, "1765000000", PUBLISHED) == "9JbFkuuIrbwme1Rq1Svr6g"
    assert url() == f"/media/k1/9JbFkuuIrbwme1Rq1Svr6g/1765000000/{PUBLISHED}/hls/master.m3u8"


def test_a_signed_url_opens_its_file_with_the_cache_policy_of_its_file_set() -> None:
    opened = verify(url(file="hls/720p/segment_00001.m4s"), KEYS, NOW)
    assert opened == MediaFile(PUBLISHED, "hls/720p/segment_00001.m4s")
    assert opened.path == f"{PUBLISHED}/hls/720p/segment_00001.m4s"
    assert opened.cache_control == PUBLISHED_CACHE_CONTROL
    running = verify(url(RUNNING), KEYS, NOW)
    assert isinstance(running, MediaFile)
    assert running.cache_control == RUNNING_CACHE_CONTROL


def test_every_file_of_the_set_shares_the_one_signature() -> None:
    # Relative URIs in a playlist resolve under the same signed prefix.
    master = url(file="hls/master.m3u8")
    segment = master.rsplit("/", 1)[0] + "/720p/init.mp4"
    assert verify(segment, KEYS, NOW) == MediaFile(PUBLISHED, "hls/720p/init.mp4")


def test_an_expired_url_is_gone_but_only_with_a_right_signature() -> None:
    assert isinstance(verify(url(), KEYS, EXPIRES + 0.9), MediaFile)  # its last second
    assert verify(url(), KEYS, EXPIRES + 1) is Refused.EXPIRED
    tampered = url().replace("/1765000000/", "/1765000001/")
    assert verify(tampered, KEYS, EXPIRES + 10) is Refused.FORBIDDEN


def test_the_previous_key_still_verifies_during_a_rotation() -> None:
    assert isinstance(verify(url(key=OLD), KEYS, NOW), MediaFile)
    assert verify(url(key=OLD), key_map([KEY]), NOW) is Refused.FORBIDDEN
    assert URLS.fileset(PUBLISHED, EXPIRES).startswith("/media/k1/")  # the first key signs


def test_a_key_id_signs_only_with_its_own_secret() -> None:
    as_old = url().replace("/media/k1/", "/media/k0/")
    assert verify(as_old, KEYS, NOW) is Refused.FORBIDDEN
    assert verify(url().replace("/media/k1/", "/media/k9/"), KEYS, NOW) is Refused.FORBIDDEN


@pytest.mark.parametrize(
    "file",
    [
        "../../../etc/passwd",
        "hls/../../x",
        "hls/./master.m3u8",
        ".hidden",
        "hls//master.m3u8",
        "hls/",
        "a\x00b",
        "a" * 256,
        "/".join(["a" * 200] * 6),
        "é.mp4",
    ],
)
def test_a_signed_prefix_opens_only_plain_relative_paths(file: str) -> None:
    assert verify(url(file=file), KEYS, NOW) is Refused.FORBIDDEN


def test_the_file_system_bounds_are_the_limits() -> None:
    assert plain_relative_path("a" * 255)
    assert not plain_relative_path("a" * 256)
    assert plain_relative_path("/".join(["a" * 200] * 5))  # 1004 bytes
    assert not plain_relative_path("/".join(["a" * 200] * 6))


@pytest.mark.parametrize(
    "path",
    [
        "/media/",
        "/media/k1",
        f"/media/k1/9JbFkuuIrbwme1Rq1Svr6g/1765000000/{PUBLISHED}",
        f"/media/k1/9JbFkuuIrbwme1Rq1Svr6g/1765000000/{PUBLISHED}/",
        f"/media/k1/9JbFkuuIrbwme1Rq1Svr6g==/1765000000/{PUBLISHED}/x",
        f"/media/K1/9JbFkuuIrbwme1Rq1Svr6g/1765000000/{PUBLISHED}/x",
        f"/media/k1/9JbFkuuIrbwme1Rq1Svr6g/-1765000000/{PUBLISHED}/x",
        "/media/k1/9JbFkuuIrbwme1Rq1Svr6g/1765000000/videos/42/x",
        "/media/k1/9JbFkuuIrbwme1Rq1Svr6g/1765000000/uploads/x/y",
        f"/media/k1/9JbFkuuIrbwme1Rq1Svr6g/1765000000/{PUBLISHED}x/y",
        f"/other/k1/9JbFkuuIrbwme1Rq1Svr6g/1765000000/{PUBLISHED}/x",
    ],
)
def test_a_malformed_path_is_forbidden(path: str) -> None:
    assert verify(path, KEYS, NOW) is Refused.FORBIDDEN


def test_a_url_of_one_file_set_never_opens_another() -> None:
    signed = url()
    for other in (f"videos/43/{LEASE}", f"videos/42/{OTHER_LEASE}", RUNNING, f"work/{OTHER_LEASE}"):
        assert verify(signed.replace(PUBLISHED, other), KEYS, NOW) is Refused.FORBIDDEN


FILESETS = st.builds(
    lambda content, lease, published: f"videos/{content}/{lease}" if published else f"work/{lease}",
    st.integers(0, 2**63 - 1),
    st.uuids(version=4).map(str),
    st.booleans(),
)
FILES = st.lists(
    st.text(string.ascii_letters + string.digits + "_-.", min_size=1, max_size=20).filter(
        lambda s: not s.startswith(".")
    ),
    min_size=1,
    max_size=4,
).map("/".join)


@given(FILESETS, FILESETS, FILES)
def test_a_signature_never_opens_a_different_file_set(a: str, b: str, file: str) -> None:
    signed = url(a, file)
    swapped = signed.replace(f"/{a}/", f"/{b}/", 1)
    expected = MediaFile(a, file) if a == b else Refused.FORBIDDEN
    assert verify(swapped, KEYS, NOW) == expected


@given(FILESETS, FILES, st.sampled_from(["kid", "sig", "expires", "fileset"]), st.data())
def test_changing_any_signed_character_is_forbidden(
    fileset: str, file: str, part: str, data: st.DataObject
) -> None:
    _, _, kid, sig, expires, _ = url(fileset, file).split("/", 5)
    parts = {"kid": kid, "sig": sig, "expires": expires, "fileset": fileset}
    text = parts[part]
    # The last base64 character of a 16-byte MD5 carries only 2 bits (nginx ignores the other
    # four), so tamper with the characters that are all signature.
    index = data.draw(st.integers(0, len(text) - (2 if part == "sig" else 1)), label="index")
    alphabet = string.ascii_letters + string.digits + "-_"
    replacement = data.draw(st.sampled_from(alphabet).filter(lambda c: c != text[index]))
    parts[part] = text[:index] + replacement + text[index + 1 :]
    tampered = "/media/{kid}/{sig}/{expires}/{fileset}/".format(**parts) + file
    # Forbidden, not expired, even where the change moves the expiry into the past.
    assert verify(tampered, KEYS, NOW) is Refused.FORBIDDEN


def test_expiry_is_at_least_a_ttl_away_and_rounded_up_to_a_window() -> None:
    assert expiry(1000.0, 14_400) == 16_200  # 15,400 rounded up to a 900 s window
    assert expiry(1000.0, 60) == 1065  # window 15 s: a quarter of the TTL
    assert expiry(1000.0, 14_400) == expiry(1700.0, 14_400)


@given(st.floats(0, 4e9), st.integers(60, 7 * 86_400))
def test_urls_handed_out_in_one_window_are_identical(now: float, ttl: int) -> None:
    expires = expiry(now, ttl)
    window = min(ttl // 4, 900)
    assert now + ttl <= expires < now + ttl + window
    assert expires % window == 0


def test_keys_are_read_first_signing_each_long_and_nginx_safe() -> None:
    a, b = "a" * 32, "0123456789abcdef" * 4
    assert parse_keys(f"k2:{a}, k1:{b}") == (MediaKey("k2", a), MediaKey("k1", b))
    for raw, problem in [
        ("k1", "kid:secret"),
        (f"K1:{a}", "kid:secret"),
        (f"{'k' * 17}:{a}", "kid:secret"),
        ("k1:short", "at least 32"),
        (f"k1:{a}$host", "may hold only"),
        (f"k1:{a} x", "may hold only"),
        (f"k1:{a},k1:{b}", "twice"),
    ]:
        with pytest.raises(ValueError, match=problem) as caught:
            parse_keys(raw)
        assert a not in str(caught.value)


def test_the_default_key_is_derived_from_the_secret_key_and_is_not_it() -> None:
    key = derived_key("s" * 40)
    assert key == derived_key("s" * 40)
    assert key.kid == "k0"
    assert "s" * 40 not in key.secret
    assert parse_keys(f"k0:{key.secret}") == (key,)  # acceptable as an explicit key too
    assert derived_key("t" * 40) != key
    assert SECRET not in repr(MediaKey("k1", SECRET))


def test_signing_needs_a_key_and_a_real_file_set() -> None:
    with pytest.raises(ValueError, match="at least one media key"):
        MediaUrls((), ttl=60)
    with pytest.raises(ValueError, match="not a file set"):
        URLS.fileset("uploads/x", EXPIRES)


def test_a_base_url_prefixes_the_signed_path() -> None:
    cdn = MediaUrls((KEY,), ttl=14_400, base_url="https://cdn.example.edu")
    assert (
        cdn.fileset(PUBLISHED, EXPIRES) == "https://cdn.example.edu" + url().rsplit("/hls/", 1)[0]
    )
