"""A node: one trio program holding the bridge, the store, the actors and the HTTP server.

Things start in dependency order and stop in reverse: the asyncio bridge, then PostgreSQL (our
own embedded child when no URL is configured), migrations, Redis, the actors, and last the HTTP
server. A shutdown signal makes Hypercorn stop accepting and drain in-flight requests (within the
grace period); then the actors are cancelled and the pools closed. A core actor that the
supervisor gives up on drains the node the same way (the other actors keep serving the requests
in flight), and `serve` then raises, so the process exits non-zero.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import cast

import hypercorn.config
import hypercorn.trio
import structlog
import trio
from hypercorn.typing import ASGIFramework

from actors.bus import Bus
from actors.live_router import LiveRouter, RouterOptions
from actors.mailer import MailerHandle
from actors.progress_writer import ProgressWrites, start_progress_writer
from actors.runtime import Address, GiveUpHandler, Supervisor, SupervisorGaveUp
from actors.scheduler import Scheduler
from actors.transcoder import TranscodeFigures
from lms.accounts.password_reset import PasswordResets
from lms.accounts.service import Accounts
from lms.accounts.tokens import TokenIssuer
from lms.analytics.invalidations import EventInvalidations
from lms.analytics.service import Analytics
from lms.cache.cache import Cache
from lms.cache.redis_tier import RedisTier
from lms.catalog.service import Catalog
from lms.config import Settings
from lms.demo import Demo, seed_demo
from lms.domain.unsubscribe import derived_key as unsubscribe_key
from lms.health import NodeHealth, media_volume, transcode_workers
from lms.heap import settle_after_startup
from lms.http import media_app
from lms.http.app import create_app
from lms.http.asgi import ASGIApp
from lms.http.rate_limits import RateLimits, open_rate_limits
from lms.http.security_headers import SecurityHeaders, default_headers
from lms.http.unread_body import UnreadBodyGuard
from lms.http.wire import Services
from lms.http.worker_metrics import serve_metrics
from lms.jobs.pool import POOL_NAME, start_transcoder_pool
from lms.jobs.service import Jobs
from lms.jobs.videos import Videos
from lms.live.service import LiveService
from lms.mail.admin import OutboxAdmin
from lms.mail.mailer import mail_destination, mail_transport, start_node_mailer
from lms.mail.notifications import Notifications
from lms.mail.schedule import PostgresSchedule
from lms.observability.collectors import watch_node, watch_worker
from lms.observability.metrics import NodeMetrics
from lms.observability.requests import RequestObserver
from lms.observability.sentry import sentry_reporting
from lms.progress.service import ProgressService, group_committed
from lms.store import bridge
from lms.store import progress as progress_store
from lms.store.cache_tier import CacheTierStore
from lms.store.database import Database
from lms.store.deployment import deployment_id
from lms.store.embedded_postgres import EmbeddedPostgres, EmbeddedPostgresConfig
from lms.store.migrate import migrate
from lms.store.redis_bus import RedisTransport
from lms.store.redis_link import RedisLink
from lms.uploads.service import Uploads
from proto.api import ComponentHealth
from proto.events import EventSink
from proto.frames import MAX_FRAME_BYTES
from proto.jobs import PoolMessage, WorkerKind

log = structlog.get_logger()

# The longest any cached answer lives (and a tag's version in Redis); answers ask for less.
CACHE_MAX_TTL = 3600.0
# The largest request head (request line and headers) a node reads: browsers send a few KiB.
MAX_HEADER_BYTES = 16 * 1024
# The longest a starting node spends caching the busiest courses' analytics.
WARM_UP_BUDGET = 60.0


@dataclass(frozen=True)
class Store:
    db: Database
    redis: RedisLink | None
    embedded: EmbeddedPostgres | None


@asynccontextmanager
async def open_store(settings: Settings) -> AsyncIterator[Store]:
    """PostgreSQL (started here when embedded) migrated to this version, and Redis if configured.

    Must run inside `bridge.open_bridge()`. Everything opened here is closed on the way out.
    """
    async with trio.open_nursery() as nursery:
        embedded = None
        dsn = settings.database_url
        if dsn is None:
            embedded = EmbeddedPostgres(
                EmbeddedPostgresConfig(
                    root=settings.data_dir / "postgres", port=settings.embedded_pg_port
                )
            )
            dsn = await nursery.start(embedded.run)
        db = await Database.connect(
            dsn,
            min_size=settings.db_pool_min,
            max_size=settings.db_pool_max,
            slow_sql_ms=settings.slow_sql_ms,
        )
        redis = None
        try:
            applied = await migrate(db)
            if applied:
                log.info("migrated", applied=[f"{m.version:04d}_{m.name}" for m in applied])
            if settings.redis_url:
                redis = await RedisLink.connect(settings.redis_url)
            yield Store(db, redis, embedded)
        finally:
            with trio.CancelScope(shield=True):
                if redis is not None:
                    await redis.close()
                await db.close()
            nursery.cancel_scope.cancel()


def build_health(settings: Settings, store: Store, actors: Actors) -> NodeHealth:
    health = NodeHealth(settings.node_id)

    async def supervised() -> ComponentHealth:
        stats = actors.supervisor.statistics()
        detail = f"{len(stats.children)} actors, {stats.restarts} restarts"
        if not actors.given_up:
            return ComponentHealth("actors", True, "ok", detail)
        names = ", ".join(error.name for error in actors.given_up)
        return ComponentHealth("actors", False, "gave_up", f"{detail}; gave up on {names}")

    async def database() -> ComponentHealth:
        await store.db.ping()
        return ComponentHealth("database", True, "ok")

    health.register("database", database)
    health.register("actors", supervised)
    health.register("media", media_volume(settings.media_dir, settings.media_min_free_bytes))
    if actors.transcoder is not None:
        health.register(
            "transcoder",
            transcode_workers(
                actors.supervisor, POOL_NAME, actors.transcode_figures, settings.transcode_workers
            ),
        )
    if store.embedded is not None:
        embedded = store.embedded

        async def embedded_postgres() -> ComponentHealth:
            stats = embedded.statistics()
            detail = f"pid {stats.pid}, port {stats.port}, restarts {stats.restarts}"
            return ComponentHealth("embedded_postgres", stats.healthy, stats.state.value, detail)

        health.register("embedded_postgres", embedded_postgres)
    if store.redis is not None:
        redis = store.redis

        async def redis_ping() -> ComponentHealth:
            await redis.ping()
            return ComponentHealth("redis", True, "ok")

        health.register("redis", redis_ping)
    return health


async def serve(
    settings: Settings, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
) -> None:
    """Run a node until SIGINT or SIGTERM; `task_status.started(url)` once it takes requests.

    The first signal during start-up stops the start; once serving, it starts a graceful
    shutdown; a second signal stops at once. A core actor given up on starts the same graceful
    shutdown.

    Raises:
      SupervisorGaveUp: once the node has stopped, if it stopped because a core actor was given
          up on (the first one).
    """
    settings = settings.with_secret()
    # A process started in the background by make or CI inherits SIGINT as ignored; our own
    # receiver makes SIGINT and SIGTERM a clean shutdown in every case (and the embedded
    # PostgreSQL child is stopped, not orphaned). Errors go to Sentry when configured.
    with (
        sentry_reporting(settings),
        trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals,
    ):
        async with trio.open_nursery() as nursery:
            drain = trio.Event()
            serving = False
            given_up: Sequence[SupervisorGaveUp] = ()

            async def on_signals() -> None:
                async for signum in signals:
                    log.info("shutdown_requested", signal=signal.Signals(signum).name)
                    if drain.is_set() or not serving:
                        nursery.cancel_scope.cancel()
                    drain.set()

            nursery.start_soon(on_signals)
            async with (
                bridge.open_bridge(),
                open_store(settings) as store,
                open_actors(settings, store, drain) as actors,
                open_rate_limits(settings, store.db) as limits,
            ):
                given_up = actors.given_up
                services = _services(settings, store, actors, limits)
                # Signed media requests never reach Quart (lms/http/media_app.py); a body
                # nobody reads never stalls its connection (lms/http/unread_body.py); every
                # answer, media and 408s too, carries the security headers
                # (lms/http/security_headers.py); every request is logged and counted
                # (lms/observability/requests.py). Quart and Hypercorn type a scope as their
                # TypedDicts, these layers as the mutable mapping it is (lms/http/asgi.py): the
                # two casts join the same callables, typed two ways.
                app = RequestObserver(
                    SecurityHeaders(
                        UnreadBodyGuard(
                            media_app.wrap(
                                cast(
                                    ASGIApp,
                                    create_app(services, max_body_bytes=settings.max_body_bytes),
                                ),
                                settings,
                            ),
                            body_timeout=settings.body_timeout,
                        ),
                        default_headers(settings.media_base_url),
                    ),
                    access_log=settings.access_log,
                    metrics=settings.metrics_enabled,
                )
                if settings.metrics_enabled:
                    services.metrics.add(app.metrics)
                demo = await seed_demo(store.db, services.uploads) if settings.seed_demo else None
                async with trio.open_nursery() as http:
                    binds = await http.start(
                        partial(
                            hypercorn.trio.serve,
                            cast(ASGIFramework, app),
                            _hypercorn_config(settings),
                            shutdown_trigger=drain.wait,
                        )
                    )
                    serving = True
                    settle_after_startup()
                    _announce(binds[0], settings, store, demo)
                    task_status.started(binds[0])
                    http.start_soon(_warm_up, services.analytics, drain)
            log.info("node_stopped", node_id=settings.node_id)
            nursery.cancel_scope.cancel()
    if given_up:
        raise given_up[0]


async def work(
    settings: Settings, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """`lms worker`: transcode jobs from the shared queue until SIGINT or SIGTERM; no HTTP but
    its `/metrics` on LMS_METRICS_PORT, when set.

    Its job events go out on the Bus, so with Redis configured they reach every node's live
    layer. Stopping gives running jobs back to the queue for another worker. An actor given up
    on stops the worker the same way.

    Raises:
      SupervisorGaveUp: once the worker has stopped, if it stopped because an actor was given
          up on (the first one).
    """
    given_up: list[SupervisorGaveUp] = []
    stop = trio.Event()
    with (
        sentry_reporting(settings),
        trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals,
    ):
        async with (
            bridge.open_bridge(),
            open_store(settings) as store,
            trio.open_nursery() as nursery,
        ):

            async def on_signal() -> None:
                async for signum in signals:
                    log.info("shutdown_requested", signal=signal.Signals(signum).name)
                    stop.set()
                    return

            nursery.start_soon(on_signal)
            supervisor = Supervisor("worker", on_give_up=_stop_on_give_up(given_up, stop))
            await nursery.start(supervisor.run)
            live, _ = await _start_live(settings, supervisor, nursery)
            transcode_figures = TranscodeFigures()
            await start_transcoder_pool(
                supervisor, settings, store.db, live.publish, WorkerKind.WORKER, transcode_figures
            )
            if settings.metrics_port:
                metrics = NodeMetrics(settings.node_id, role="worker")
                watch_worker(
                    metrics, supervisor=supervisor, db=store.db, transcode=transcode_figures
                )
                binds = await nursery.start(
                    serve_metrics, metrics, settings.host, settings.metrics_port, stop.wait
                )
                print(f"LMS worker {settings.node_id} metrics at {binds[0]}/metrics", flush=True)
            slots = settings.transcode_workers
            print(f"LMS worker {settings.node_id} transcoding in {slots} slots", flush=True)
            task_status.started()
            await stop.wait()
            nursery.cancel_scope.cancel()
        log.info("worker_stopped", node_id=settings.node_id)
    if given_up:
        raise given_up[0]


def _log_give_up(error: SupervisorGaveUp) -> None:
    """A supervisor's `on_give_up` for the actors a node serves on without (their work waits in
    the store for another node, or a restart): logged, not restarted again."""
    log.error("actor_gave_up", actor=error.name, error=str(error))


def _stop_on_give_up(given_up: list[SupervisorGaveUp], stop: trio.Event) -> GiveUpHandler:
    """A supervisor's `on_give_up` for the actors a process cannot do without: the actor is not
    restarted again; it is logged, added to `given_up`, and `stop` is set, as a shutdown signal
    does, so the process stops in order and then fails."""

    def stop_process(error: SupervisorGaveUp) -> None:
        given_up.append(error)
        log.error("shutdown_requested", reason="actor_gave_up", actor=error.name, error=str(error))
        stop.set()

    return stop_process


@dataclass(frozen=True)
class Actors:
    """Addresses of the node's long-lived actors (never the actors themselves)."""

    supervisor: Supervisor
    # The core actors the supervisor gave up on, in order: readiness names them.
    given_up: Sequence[SupervisorGaveUp]
    # Where producers (progress writer, transcoder pool, job actions) publish events for the
    # live layer; the cache tags each event outdates are invalidated on the way.
    publish: EventSink
    # Group commit of progress updates (lms/progress/service.py records through it).
    progress: ProgressWrites
    # The live layer: course rooms, user sessions, the Bus (lms/http/ws.py talks to it).
    live: LiveRouter
    # Takes transcode jobs from the queue; None with LMS_TRANSCODE_WORKERS=0.
    transcoder: Address[PoolMessage] | None
    # What the pool's attempts did (/metrics), kept across its restarts.
    transcode_figures: TranscodeFigures
    # The node's two-tier cache (memory, then Redis when configured), tags invalidated on
    # every node through the Bus.
    cache: Cache
    # Sends the outbox's mail; `nudge()` after enqueueing sends it now, not at the next poll.
    mailer: MailerHandle


@asynccontextmanager
async def open_actors(settings: Settings, store: Store, drain: trio.Event) -> AsyncIterator[Actors]:
    """Start the node's actors under one supervisor. Leaving the block cancels them: the HTTP
    server has drained by then, so no edge is still waiting on a mailbox.

    A core actor given up on is not restarted again: it is logged, added to `given_up`, and
    `drain` is set, as a shutdown signal does; the other actors keep running for the requests
    still in flight until the block is left.
    """
    given_up: list[SupervisorGaveUp] = []
    async with trio.open_nursery() as nursery:
        supervisor = Supervisor("node", on_give_up=_stop_on_give_up(given_up, drain))
        await nursery.start(supervisor.run)
        live, bus = await _start_live(settings, supervisor, nursery)
        cache = await _start_cache(settings, store, bus, nursery)
        # One cache invalidation per committed progress batch, from its events, made before
        # its answers: a learner's next read after an acknowledged heartbeat is fresh here.
        invalidations = EventInvalidations(cache, live.publish)
        await nursery.start(invalidations.run)
        progress = await start_progress_writer(
            supervisor,
            # mypy's partial plugin counts a ParamSpec's *args as missing arguments.
            partial(store.db.kept_connection, progress_store.ProgressRows().apply_batch),  # type: ignore[call-arg]
            live.publish,
            before_answer=invalidations.settle,
        )
        transcode_figures = TranscodeFigures()
        transcoder = await start_transcoder_pool(
            supervisor,
            settings,
            store.db,
            invalidations.publish,
            WorkerKind.NODE,
            transcode_figures,
        )
        # Reminders and streak achievements. Not a core actor: given up on, it is logged and
        # the node serves on (every node runs one, and its mail only waits).
        reminder_after = timedelta(days=settings.reminder_days)
        await supervisor.start_child(
            "scheduler",
            lambda: Scheduler(PostgresSchedule(store.db), inactive=reminder_after),
            on_give_up=_log_give_up,
        )
        # Mail goes out over SMTP, or as .eml files in the data dir. Not a core actor: given up
        # on, it is logged and the node serves on (its mail waits in the outbox for a mailer).
        mailer = await start_node_mailer(
            supervisor,
            settings,
            store.db,
            mail_transport(settings),
            on_give_up=_log_give_up,
        )
        yield Actors(
            supervisor,
            given_up,
            publish=invalidations.publish,
            progress=progress,
            live=live,
            transcoder=transcoder,
            transcode_figures=transcode_figures,
            cache=cache,
            mailer=mailer,
        )
        nursery.cancel_scope.cancel()


async def _start_live(
    settings: Settings, supervisor: Supervisor, nursery: trio.Nursery
) -> tuple[LiveRouter, Bus]:
    """The Bus (over Redis when configured, else in memory) under the supervisor, which
    restarts it if its transport ever crashes, and the router with its rooms and sessions."""
    transport = None
    if settings.redis_url is not None:
        transport = RedisTransport(settings.redis_url, settings.node_id)
    bus = Bus(transport)
    await supervisor.start_child("bus", lambda: bus)
    router = LiveRouter(
        settings.node_id, bus, RouterOptions(max_sockets_per_user=settings.max_sockets_per_user)
    )
    await nursery.start(router.run)
    return router, bus


async def _start_cache(settings: Settings, store: Store, bus: Bus, nursery: trio.Nursery) -> Cache:
    """The node's cache, running in `nursery` (as long as the actors): its memory tier, the
    Redis tier when configured (keys namespaced by the deployment, so deployments or test
    databases sharing a Redis never read each other's entries), invalidations over `bus`."""
    redis = None
    if settings.redis_url is not None:
        namespace = await store.db.connection(deployment_id)
        redis = RedisTier(
            CacheTierStore.from_url(
                settings.redis_url, max_ttl=CACHE_MAX_TTL, namespace=f"{namespace}:"
            )
        )
    cache = Cache(max_bytes=settings.cache_max_bytes, bus=bus, redis=redis)
    await nursery.start(cache.run)
    return cache


async def _warm_up(analytics: Analytics, drain: trio.Event) -> None:
    """Cache the busiest courses' analytics, once the node serves (it never waits for them:
    they are computed beside its first requests); given up after `WARM_UP_BUDGET` or when the
    node drains."""

    async def stop_on_drain() -> None:
        await drain.wait()
        nursery.cancel_scope.cancel()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(stop_on_drain)
        with trio.move_on_after(WARM_UP_BUDGET):
            try:
                warmed = await analytics.warm()
            except Exception as exc:  # a node serves without its warm-up
                log.warning("cache_warm_up_failed", error=repr(exc))
            else:
                log.info("cache_warmed", courses=warmed)
        nursery.cancel_scope.cancel()


def _node_metrics(settings: Settings, store: Store, actors: Actors) -> NodeMetrics:
    metrics = NodeMetrics(settings.node_id)
    watch_node(
        metrics,
        supervisor=actors.supervisor,
        live=actors.live,
        progress=actors.progress,
        cache=actors.cache,
        mailer=actors.mailer,
        db=store.db,
        transcode=actors.transcode_figures,
    )
    return metrics


def _services(settings: Settings, store: Store, actors: Actors, limits: RateLimits) -> Services:
    issuer = TokenIssuer(
        settings.secret_key,
        access_ttl=settings.access_token_ttl,
        refresh_ttl=settings.refresh_token_ttl,
    )
    jobs = Jobs(
        store.db, actors.publish, actors.transcoder, lease_seconds=settings.job_lease_seconds
    )
    return Services(
        accounts=Accounts(store.db, issuer, actors.cache, actors.mailer.nudge),
        catalog=Catalog(store.db, actors.cache),
        health=build_health(settings, store, actors),
        live=LiveService(store.db, actors.live),
        jobs=jobs,
        uploads=Uploads.configured(settings, store.db, jobs),
        videos=Videos.configured(settings, store.db),
        progress=ProgressService(store.db, group_committed(actors.progress)),
        analytics=Analytics(store.db, actors.cache),
        cache=actors.cache,
        outbox=OutboxAdmin(store.db, actors.mailer.nudge),
        notifications=Notifications(
            store.db, unsubscribe_key(settings.secret_key), settings.public_origin
        ),
        password_resets=PasswordResets(store.db, actors.cache, actors.mailer.nudge),
        limits=limits,
        metrics=_node_metrics(settings, store, actors),
    )


def _hypercorn_config(settings: Settings) -> hypercorn.config.Config:
    config = hypercorn.config.Config()
    config.bind = [f"{settings.host}:{settings.port}"]
    # The default backlog of 100 drops connections when many players connect at once.
    config.backlog = 4096
    # A WebSocket frame larger than this is refused with close code 1009.
    config.websocket_max_message_size = MAX_FRAME_BYTES
    # A request's head (request line and headers) larger than this is answered 431 and the
    # connection closed (h11); HTTP/2 peers are told the same bound for their header lists.
    config.h11_max_incomplete_size = MAX_HEADER_BYTES
    config.h2_max_header_list_size = MAX_HEADER_BYTES
    config.graceful_timeout = settings.shutdown_grace
    config.accesslog = None
    config.errorlog = None
    return config


def _announce(url: str, settings: Settings, store: Store, demo: Demo | None) -> None:
    lines = [
        f"LMS node {settings.node_id} listening on {url}",
        f"  health:   {url}/health",
        f"  API docs: {url}/docs",
        f"  jobs:     {url}/admin/jobs",
        f"  mail:     {mail_destination(settings)}",
    ]
    if store.embedded is not None:
        # Not always under LMS_DATA_DIR: see lms/store/postgres_cluster.py `place_cluster`.
        data_dir = store.embedded.statistics().data_dir
        lines.append(f"  database: embedded PostgreSQL in {data_dir}")
    if demo is not None:
        lines.append(f"  demo logins: {demo.instructor} / {demo.learner}, password {demo.password}")
        if demo.lecture_id is not None:
            lines.append(f"  watch:    {url}/watch/{demo.lecture_id}  (the demo lecture)")
        if demo.course_id is not None:
            lines.append(f"  live:     {url}/live/{demo.course_id}  (the demo course's room)")
    print("\n".join(lines), flush=True)
