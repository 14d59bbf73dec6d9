"""What each `lms` command does, as trio functions (the parser lives in `lms.cli`)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TextIO

import msgspec

from actors.runtime import SupervisorGaveUp
from lms import node
from lms.accounts.password_rules import WeakPassword, refuse_weak
from lms.accounts.passwords import hash_password
from lms.config import Settings
from lms.store import bridge, users
from lms.store.database import StoreUnavailable
from lms.store.migrate import MigrationError
from lms.store.postgres_cluster import PostgresClusterError
from proto.api import AdminCreate
from proto.media import Probed, Progress, RenditionReady, WorkerFrame


class CommandFailed(Exception):
    """The command could not do its job; the message says why, for a person."""


# Failures a person can act on (start the database, fix the URL, upgrade the server, read the
# log of the actor given up on): they get one clear line instead of a traceback.
_EXPLAINED = (StoreUnavailable, MigrationError, PostgresClusterError, SupervisorGaveUp)


def _explained(error: BaseException) -> BaseException | None:
    """The explainable failure inside `error` (trio wraps errors in exception groups)."""
    if isinstance(error, _EXPLAINED):
        return error
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            if found := _explained(inner):
                return found
    return None


@asynccontextmanager
async def explained_failures() -> AsyncIterator[None]:
    try:
        yield
    except BaseException as error:
        found = _explained(error)
        if found is None:
            raise
        raise CommandFailed(str(found)) from error


async def serve(settings: Settings) -> int:
    async with explained_failures():
        await node.serve(settings)
    return 0


async def worker(settings: Settings) -> int:
    if settings.transcode_workers == 0:
        raise CommandFailed("LMS_TRANSCODE_WORKERS is 0: a worker without slots has nothing to do")
    async with explained_failures():
        await node.work(settings)
    return 0


async def migrate(settings: Settings) -> int:
    async with explained_failures(), bridge.open_bridge(), node.open_store(settings):
        print("database is up to date")
    return 0


async def create_admin(settings: Settings, email: str, password: str) -> int:
    try:
        admin = msgspec.convert({"email": email, "password": password}, AdminCreate)
        # An admin's password guards every course: the same rule as everyone's, at least.
        refuse_weak(admin.password, admin.email)
    except (msgspec.ValidationError, WeakPassword) as exc:
        raise CommandFailed(str(exc)) from exc
    password_hash = await hash_password(admin.password)
    async with explained_failures(), bridge.open_bridge(), node.open_store(settings) as store:
        user = await store.db.transaction(users.upsert_admin, admin.email, password_hash)
    print(f"admin {user.email} (id {user.id}) is ready")
    return 0


def transcode(source: str, outdir: str) -> int:
    """Run the media pipeline in this process: a progress bar on stderr, a summary on stdout.

    Synchronous on purpose: Ctrl-C raises KeyboardInterrupt straight into the pipeline, which
    stops its threads and removes what it wrote.
    """
    # Imported here: the other commands (a serving node) need not load PyAV and FFmpeg.
    from media.errors import MediaError
    from media.transcode import transcode as media_transcode

    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    bar = _TranscodeBar(sys.stderr)
    try:
        manifest = media_transcode(Path(source), out, bar)
    except MediaError as exc:
        raise CommandFailed(exc.reason) from exc
    finally:
        bar.close()
    for r in manifest.renditions:
        sources = "  ".join(p for p in (r.mp4, r.playlist) if p)
        print(f"{r.label:>6}  {r.width}x{r.height}  {r.bitrate / 1e6:5.2f} Mbit/s  {sources}")
    extras = [manifest.thumbnail, manifest.preview, manifest.hls_master]
    if manifest.storyboard:
        extras += [manifest.storyboard.image, manifest.storyboard.vtt]
    sound = "" if manifest.has_audio else ", no sound"
    print(f"{manifest.duration:.1f} s{sound}, in {out}: " + "  ".join(e for e in extras if e))
    return 0


class _TranscodeBar:
    """Transcode progress drawn on one line of a terminal; other news on lines of their own."""

    WIDTH = 30

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def __call__(self, frame: WorkerFrame) -> None:
        if isinstance(frame, Probed):
            turned = f", turned {frame.rotation} degrees" if frame.rotation else ""
            sound = "" if frame.has_audio else ", no sound"
            self._line(
                f"{frame.width}x{frame.height}, {frame.duration:.1f} s at {frame.fps:g} fps"
                f"{turned}{sound}"
            )
        elif isinstance(frame, Progress):
            done = round(frame.fraction * self.WIDTH)
            eta = "" if frame.eta_seconds is None else f", {frame.eta_seconds:.0f} s left"
            self._stream.write(
                f"\r[{'#' * done}{'.' * (self.WIDTH - done)}] {frame.fraction:4.0%} "
                f"{frame.stage}, {frame.fps:.0f} fps{eta}".ljust(79)
            )
        elif isinstance(frame, RenditionReady):
            rendition = frame.rendition
            self._line(f"{rendition.label} playable: {rendition.playlist or rendition.mp4}")
        self._stream.flush()

    def close(self) -> None:
        self._stream.write("\n")

    def _line(self, text: str) -> None:
        self._stream.write(f"\r{text:79}\n")
