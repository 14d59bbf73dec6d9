"""`deploy.sh backup` and `restore` straight against PostgreSQL and a media directory
(DEPLOY_MODE=local; the compose path runs the same steps inside the containers): a backup of a
database with accounts, a course, an enrolment, progress and a transcoded video, restored into
another PostgreSQL and another media directory, holds the same rows and bytes, and a node
started on it plays the video; retention keeps the newest BACKUP_KEEP; a restore refuses a
database or media directory that is not empty."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trio

from lms import commands
from lms.config import Settings
from lms.node import serve
from lms.store.migrate import load_migrations
from lms.store.postgres_cluster import find_postgres_binaries
from tests.deploy.deploy_files import DEPLOY
from tests.lms.http.conftest import PASSWORD, SECRET, Login, log_in, sign_up
from tests.lms.http.test_streaming import publish_clip
from tests.services import RunningPostgres, own_postgres
from tests.sql import sql

DEPLOY_SH = DEPLOY / "deploy.sh"
# Tables a backup must carry for the restored site to be the same site.
MAIN_TABLES = ("users", "courses", "contents", "enrollments", "progress", "jobs", "videos")
SCRIPT_DEADLINE = 60.0


def node_settings(database_url: str, data_dir: Path) -> Settings:
    """A lone node, without Redis: nothing it serves can come from a cache another node filled."""
    return Settings.from_env(
        {
            "LMS_DATABASE_URL": database_url,
            "LMS_SECRET_KEY": SECRET,
            "LMS_PORT": "0",
            "LMS_DATA_DIR": str(data_dir),
            "LMS_SEED_DEMO": "false",
            "LMS_DB_POOL_MIN": "1",
            "LMS_DB_POOL_MAX": "4",
            "LMS_TRANSCODE_WORKERS": "1",
        }
    )


async def deploy_sh(
    *args: str, database_url: str, media_dir: Path, **env: str
) -> subprocess.CompletedProcess[bytes]:
    """Run deploy.sh as an operator without Docker would; its output is kept for the asserts."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("LMS_", "BACKUP_"))}
    environment.update(
        DEPLOY_MODE="local",
        LMS_DATABASE_URL=database_url,
        LMS_MEDIA_DIR=str(media_dir),
        # pg_dump must be as new as the server: the tests' server's own programs are.
        PG_BIN=str(find_postgres_binaries(os.environ)),
        **env,
    )
    with trio.fail_after(SCRIPT_DEADLINE):
        return await trio.run_process(
            [str(DEPLOY_SH), *args],
            env=environment,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )


def succeeded(result: subprocess.CompletedProcess[bytes]) -> str:
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


def backups(root: Path) -> list[Path]:
    return sorted(path for path in root.iterdir() if path.name.startswith("lms-backup-"))


def file_digests(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in root.rglob("*")
        if path.is_file()
    }


async def database_contents(dsn: str) -> dict[str, list[str]]:
    """Every table's rows (as text, sorted) and every sequence's position, by name."""
    tables = [
        r["tablename"]
        for r in await sql(dsn, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    ]
    contents = {
        table: sorted(r["row"] for r in await sql(dsn, f'SELECT t::text AS row FROM "{table}" t'))  # noqa: S608 - table names from pg_tables, quoted
        for table in tables
    }
    for r in await sql(dsn, "SELECT sequencename, last_value FROM pg_sequences"):
        contents[f"sequence {r['sequencename']}"] = [str(r["last_value"])]
    return contents


@dataclasses.dataclass(frozen=True)
class Site:
    """What the source site holds: a learner halfway through a transcoded video."""

    learner: str
    content_id: int
    position: float


async def build_site(settings: Settings, clip: Path) -> Site:
    """A node on `settings` makes the site, then stops, so nothing writes during the backup."""
    async with trio.open_nursery() as nursery:
        url = await nursery.start(serve, settings)
        async with httpx.AsyncClient(base_url=url, timeout=10) as api:
            await commands.create_admin(settings, "admin@test.lms", PASSWORD)
            admin = await log_in(api, "admin@test.lms")
            video = await publish_clip(api, admin, clip)
            learner = await sign_up(api, "learner@test.lms")
            enrolled = await api.post(
                f"/api/v1/courses/{video.course_id}/enroll", headers=learner.auth
            )
            assert enrolled.status_code == 201, enrolled.text
            recorded = await api.post(
                "/api/v1/progress",
                json={"content_id": video.content_id, "position": 0.5, "played": [[0, 0.5]]},
                headers=learner.auth,
            )
            assert recorded.status_code == 200, recorded.text
        nursery.cancel_scope.cancel()
    return Site(learner.email, video.content_id, 0.5)


async def played_back(settings: Settings, site: Site) -> tuple[dict, bytes]:
    """The learner's manifest from a node on `settings`, and its first rendition's bytes."""
    async with trio.open_nursery() as nursery:
        url = await nursery.start(serve, settings)
        async with httpx.AsyncClient(base_url=url, timeout=10) as api:
            learner: Login = await log_in(api, site.learner)
            response = await api.get(
                f"/api/v1/stream/video/{site.content_id}/manifest", headers=learner.auth
            )
            assert response.status_code == 200, response.text
            manifest = response.json()
            rendition = await api.get(manifest["renditions"][0]["url"])
            assert rendition.status_code == 200
        nursery.cancel_scope.cancel()
    return manifest, rendition.content


@pytest.fixture
def other_postgres(postgres_template: Path) -> Iterator[RunningPostgres]:
    """Another PostgreSQL server, as on the machine a backup is restored to."""
    with own_postgres(postgres_template, "lms-test-restore-") as running:
        yield running


async def test_a_restored_backup_is_the_same_site_and_plays_the_video(
    database_url: str,
    other_postgres: RunningPostgres,
    small_clip: Path,
    tmp_path: Path,
) -> None:
    source = node_settings(database_url, tmp_path / "source")
    site = await build_site(source, small_clip)

    said = succeeded(
        await deploy_sh(
            "backup",
            str(tmp_path / "backups"),
            database_url=database_url,
            media_dir=source.media_dir,
        )
    )
    [backup] = backups(tmp_path / "backups")
    assert f"backup: {backup}" in said
    manifest = (backup / "manifest.txt").read_text()
    assert f"schema_version={load_migrations()[-1].version}\n" in manifest
    for name in ("db.dump", "media.tar"):
        assert f"{(backup / name).stat().st_size} {name}" in manifest

    restored = node_settings(other_postgres.dsn, tmp_path / "restored")
    succeeded(
        await deploy_sh(
            "restore",
            str(backup),
            database_url=other_postgres.dsn,
            media_dir=restored.media_dir,
        )
    )

    before = await database_contents(database_url)
    after = await database_contents(other_postgres.dsn)
    for table in MAIN_TABLES:
        assert before[table], f"the source site has no {table}: the test proves nothing"
    assert after == before
    media = file_digests(source.media_dir)
    assert any(name.endswith(".mp4") for name in media)
    assert file_digests(restored.media_dir) == media

    played, rendition = await played_back(restored, site)
    assert (played["status"], played["resume_at"]) == ("ready", site.position)
    assert hashlib.sha256(rendition).hexdigest() in media.values()


async def test_backups_beyond_backup_keep_are_removed_oldest_first(
    database_url: str, tmp_path: Path
) -> None:
    root, media = tmp_path / "backups", tmp_path / "media"
    media.mkdir()
    (media / "poster.jpg").write_bytes(b"\xff\xd8jpeg")
    root.mkdir()
    unrelated = root / "notes.txt"
    unrelated.write_text("kept: not a backup")
    made = []
    for _ in range(3):
        succeeded(
            await deploy_sh(
                "backup", str(root), database_url=database_url, media_dir=media, BACKUP_KEEP="2"
            )
        )
        made.append(backups(root)[-1])
    assert backups(root) == made[1:]
    assert unrelated.exists()


async def test_a_restore_refuses_a_database_that_has_tables_unless_forced(
    database_url: str, tmp_path: Path
) -> None:
    media = tmp_path / "media"
    media.mkdir()
    (media / "poster.jpg").write_bytes(b"\xff\xd8jpeg")
    succeeded(
        await deploy_sh(
            "backup", str(tmp_path / "backups"), database_url=database_url, media_dir=media
        )
    )
    [backup] = backups(tmp_path / "backups")
    await sql(
        database_url,
        "INSERT INTO users (email, name, password_hash) VALUES ('later@test.lms', 'Later', 'x')",
    )
    target = tmp_path / "target"

    refused = await deploy_sh("restore", str(backup), database_url=database_url, media_dir=target)
    assert refused.returncode != 0
    assert b"the target database has" in refused.stderr
    assert await sql(database_url, "SELECT 1 FROM users WHERE email = 'later@test.lms'")
    assert not target.exists()

    succeeded(
        await deploy_sh(
            "restore", str(backup), "--force", database_url=database_url, media_dir=target
        )
    )
    assert not await sql(database_url, "SELECT 1 FROM users WHERE email = 'later@test.lms'")
    assert (target / "poster.jpg").read_bytes() == b"\xff\xd8jpeg"


async def test_a_restore_refuses_a_damaged_backup(database_url: str, tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    succeeded(
        await deploy_sh(
            "backup", str(tmp_path / "backups"), database_url=database_url, media_dir=media
        )
    )
    [backup] = backups(tmp_path / "backups")
    with (backup / "db.dump").open("ab") as dump:
        dump.write(b"x")
    refused = await deploy_sh(
        "restore", str(backup), "--force", database_url=database_url, media_dir=media
    )
    assert refused.returncode != 0
    assert b"does not match its SHA256SUMS" in refused.stderr
