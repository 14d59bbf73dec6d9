"""Production's media path: a real nginx from deploy/nginx/lms.conf in front of a real node.

Signed media paths are served by nginx straight from the media volume (the node may be down),
refused as the node refuses them, and Bearer downloads are answered by the node with
X-Accel-Redirect and sent by nginx, byte for byte the file on disk.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
import trio

from lms.domain.media_types import CONTENT_TYPES, content_type
from lms.domain.media_urls import MediaFile, key_map, parse_keys, signature, verify
from lms.domain.ranges import MAX_RANGES
from media.synthetic import write_clip
from tests.e2e.admins import Admin, create_admin, signed_in
from tests.e2e.nodes import NodeProcess, database_node_env, start_node
from tests.nginx import LMS_CONF, Nginx, render_lms_conf, start_nginx, write_media_keys
from tests.services import scratch_dir

pytestmark = pytest.mark.e2e

# Two keys, as during a rotation: the first signs, both are accepted.
MEDIA_KEYS = f"k2:{'n' * 40},k1:{'o' * 40}"
KEYS = key_map(parse_keys(MEDIA_KEYS))


@dataclass
class Offload:
    node: NodeProcess
    nginx: Nginx
    media: Path
    admin: Admin  # signed in through nginx
    content_id: int
    manifest: dict

    def on_disk(self, url: str) -> MediaFile:
        opened = verify(urlsplit(url).path, KEYS, time.time())
        assert isinstance(opened, MediaFile), (url, opened)
        return opened

    async def bytes_of(self, url: str) -> bytes:
        return await trio.Path(self.media / self.on_disk(url).path).read_bytes()

    def best(self) -> dict:
        return max(self.manifest["renditions"], key=lambda r: r["height"])


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clips") / "clip.mp4", seconds=1.0)


@pytest.fixture
async def offload(database_url: str, tmp_path: Path, clip: Path) -> AsyncIterator[Offload]:
    """A node with a transcoded video, and nginx in front of it serving its media volume. The
    volume and nginx's files are in a scratch dir: nginx's workers run as nobody."""
    with scratch_dir("lms-e2e-nginx-") as root:
        media = root / "media"
        env = database_node_env(
            tmp_path,
            database_url,
            LMS_TRANSCODE_WORKERS="1",
            LMS_MEDIA_DIR=str(media),
            LMS_MEDIA_KEYS=MEDIA_KEYS,
            LMS_ACCEL_REDIRECT="/_media/",
        )
        async with trio.open_nursery() as nursery:
            nursery.start_soon(create_admin, env)
            node = await start_node(env, tmp_path / "node.log")
        conf_dir = root / "nginx"
        conf_dir.mkdir()
        keys_file = conf_dir / "media_keys.conf"
        await write_media_keys(MEDIA_KEYS, keys_file)
        upstream = urlsplit(node.url).netloc

        def conf(port: int) -> str:
            return render_lms_conf(
                port=port, upstreams=[upstream], media_root=media, keys_file=keys_file
            )

        nginx = await start_nginx(conf_dir, conf)
        try:
            # Signed in and uploading through nginx, as a browser would (tus, unbuffered there).
            async with signed_in(nginx.url) as admin:
                content_id, manifest = await admin.publish(clip)
                yield Offload(node, nginx, media, admin, content_id, manifest)
        finally:
            with trio.CancelScope(shield=True):
                await nginx.stop()
                if node.process.returncode is None:
                    assert await node.stop() == 0


async def test_a_signed_range_is_served_by_nginx_while_the_node_is_down(
    offload: Offload,
) -> None:
    url = offload.best()["url"]
    assert url.startswith("/media/k2/"), url  # relative: the node's origin, i.e. nginx here
    whole = await offload.bytes_of(url)
    assert await offload.node.stop() == 0

    client = offload.admin.client  # nginx; no Authorization: the URL carries it
    last = len(whole) // 2
    ranged = await client.get(url, headers={"Range": f"bytes=100-{last}"})
    assert ranged.status_code == 206
    assert ranged.content == whole[100 : last + 1]
    assert ranged.headers["content-range"] == f"bytes 100-{last}/{len(whole)}"
    assert ranged.headers["content-type"] == "video/mp4"
    assert ranged.headers["cache-control"] == "public, max-age=31536000, immutable"

    # A playlist's relative URIs resolve under the same signed prefix, so nginx serves them too.
    master = await client.get(offload.manifest["hls_master"])
    assert master.status_code == 200
    assert master.headers["content-type"] == "application/vnd.apple.mpegurl"
    variant = next(line for line in master.text.splitlines() if line and line[0] != "#")
    playlist = await client.get(urljoin(offload.manifest["hls_master"], variant))
    assert playlist.status_code == 200
    assert playlist.text.startswith("#EXTM3U")


async def test_a_tampered_or_foreign_signature_is_refused_by_nginx_as_the_node_refuses_it(
    offload: Offload,
) -> None:
    url = offload.best()["url"]
    kid, sig, expires, fileset_and_file = url.removeprefix("/media/").split("/", 3)
    middle = len(sig) // 2  # the last character of base64 MD5 carries only 2 bits
    flipped = sig[:middle] + ("A" if sig[middle] != "A" else "B") + sig[middle + 1 :]
    fileset = offload.on_disk(url).fileset
    other_content = fileset.replace(f"videos/{offload.content_id}/", "videos/999999/")
    refused = [
        f"/media/{kid}/{flipped}/{expires}/{fileset_and_file}",
        # The expiry moved on: the signature no longer covers it.
        f"/media/{kid}/{sig}/{int(expires) + 3600}/{fileset_and_file}",
        # The same signature for another file set.
        url.replace(fileset, other_content),
        # An unknown key id, signed with the empty secret nginx's map gives it.
        f"/media/k9/{signature('', expires, fileset)}/{expires}/{fileset_and_file}",
        # Not a signed path at all.
        f"/media/{fileset_and_file}",
    ]
    async with httpx.AsyncClient(base_url=offload.node.url) as node:
        for path in refused:
            by_nginx = await offload.admin.client.get(path)
            assert by_nginx.status_code == 403, path
            assert by_nginx.headers["content-type"] == "application/json"
            assert by_nginx.json()["error"]["code"] == "forbidden_signature"
            by_node = await node.get(path)
            assert (by_node.status_code, by_node.json()["error"]["code"]) == (
                403,
                "forbidden_signature",
            ), path


async def test_an_expired_url_is_gone_at_nginx_as_at_the_node(offload: Offload) -> None:
    media_file = offload.on_disk(offload.best()["url"])
    expired = int(time.time()) - 60
    sig = signature(KEYS["k1"], str(expired), media_file.fileset)  # the older key: still valid
    path = f"/media/k1/{sig}/{expired}/{media_file.path}"
    by_nginx = await offload.admin.client.get(path)
    assert by_nginx.status_code == 410
    assert by_nginx.json()["error"]["code"] == "url_expired"
    async with httpx.AsyncClient(base_url=offload.node.url) as node:
        by_node = await node.get(path)
    assert (by_node.status_code, by_node.json()["error"]["code"]) == (410, "url_expired")


async def test_a_bearer_download_through_nginx_is_the_file_on_disk_to_the_byte(
    offload: Offload,
) -> None:
    rendition = offload.best()
    media_file = offload.on_disk(rendition["url"])
    whole = await offload.bytes_of(rendition["url"])
    download = f"/api/v1/stream/video/{offload.content_id}?quality={rendition['label']}"
    auth = offload.admin.auth

    # The node checks access and hands the bytes to nginx.
    async with httpx.AsyncClient(base_url=offload.node.url) as node:
        handed = await node.get(download, headers=auth)
    assert handed.status_code == 200
    assert handed.headers["x-accel-redirect"] == f"/_media/{media_file.path}"
    assert handed.content == b""

    client = offload.admin.client
    full = await client.get(download, headers=auth)
    assert full.status_code == 200
    assert full.content == whole
    assert full.headers["content-type"] == "video/mp4"
    assert "x-accel-redirect" not in full.headers
    ranged = await client.get(download, headers={**auth, "Range": f"bytes={len(whole) - 1000}-"})
    assert ranged.status_code == 206
    assert ranged.content == whole[-1000:]
    assert (await client.get(download)).status_code == 401  # the Bearer path still checks

    # nginx's internal location is not a way around the check.
    assert (await client.get(f"/_media/{media_file.path}")).status_code == 404


def test_nginx_names_media_types_and_caps_ranges_as_the_node_does() -> None:
    conf = LMS_CONF.read_text()
    [block] = re.findall(r"\n    types \{\n(.*?)\n    \}", conf, re.DOTALL)
    types = {}
    for mime, extensions in re.findall(r'^ *("[^"]*"|\S+) +([^;"]+);$', block, re.MULTILINE):
        types.update({f".{extension}": mime.strip('"') for extension in extensions.split()})
    for extension in [*CONTENT_TYPES, ".jpg"]:
        assert types[extension] == content_type(f"file{extension}"), extension
    assert re.findall(r"\bmax_ranges (\d+);", conf) == [str(MAX_RANGES)]
