"""The node's figures for `/metrics`, read from the `statistics()` snapshots their owners keep.

Each collector holds an owner's handle and turns its snapshot into metric families when
Prometheus scrapes (`collect()`), so nothing here runs on a request's path and no owner knows
about Prometheus. The one figure that needs a query (jobs by state) is read by `JobStates`
before a scrape, at most once per `JOB_STATES_TTL`.

Metric names are the contract of issue 23 (the Grafana dashboard and docs/ use them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import structlog
import trio
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from actors.live_router import LiveRouter
from actors.mailer import MailerHandle
from actors.progress_writer import ProgressWrites
from actors.runtime import Supervisor
from actors.transcoder import TranscodeFigures
from lms.cache.cache import Cache
from lms.observability.metrics import NodeMetrics, histogram_family
from lms.store import bridge
from lms.store import jobs as job_store
from lms.store.database import Database, StoreUnavailable
from proto.jobs import JobState

log = structlog.get_logger()

# How long the jobs-by-state figures are reused: a scrape every 5 s costs at most one query.
JOB_STATES_TTL = 4.0


class ActorFigures(Collector):
    """Each supervised actor's mailbox and restarts; the live layer's keyed actors (one per
    course or user) counted by their registry, not one series each."""

    def __init__(self, supervisor: Supervisor, live: LiveRouter | None = None) -> None:
        self._supervisor = supervisor
        self._live = live

    def collect(self) -> Iterable[Metric]:
        depth = GaugeMetricFamily(
            "lms_actor_mailbox_depth", "Messages waiting in the actor's mailbox.", labels=["actor"]
        )
        capacity = GaugeMetricFamily(
            "lms_actor_mailbox_capacity", "Room in the actor's mailbox.", labels=["actor"]
        )
        restarts = CounterMetricFamily(
            "lms_actor_restarts_total",
            "Restarts of the actor after a crash, over the life of the process.",
            labels=["actor"],
        )
        mailboxes: dict[str, tuple[int, int]] = {}
        restarted: dict[str, int] = {}
        for child in self._supervisor.statistics().children:
            restarted[child.name] = restarted.get(child.name, 0) + child.restarts
            mailbox = child.mailbox
            if mailbox is not None:
                queued, room = mailboxes.get(child.name, (0, 0))
                mailboxes[child.name] = (queued + mailbox.depth, room + mailbox.capacity)
        if self._live is not None:
            live = self._live.statistics()
            for registry in (live.rooms, live.sessions):
                restarted[registry.name] = registry.restarts
        for name, (queued, room) in mailboxes.items():
            depth.add_metric([name], queued)
            capacity.add_metric([name], room)
        for name, count in restarted.items():
            restarts.add_metric([name], count)
        yield from (depth, capacity, restarts)


class LiveFigures(Collector):
    def __init__(self, live: LiveRouter) -> None:
        self._live = live

    def collect(self) -> Iterable[Metric]:
        stats = self._live.statistics()
        yield GaugeMetricFamily(
            "lms_live_rooms", "Course rooms running on this node.", value=stats.rooms.live
        )
        yield GaugeMetricFamily(
            "lms_live_sessions", "User sessions running on this node.", value=stats.sessions.live
        )


class ProgressFigures(Collector):
    def __init__(self, writes: ProgressWrites) -> None:
        self._writes = writes

    def collect(self) -> Iterable[Metric]:
        stats = self._writes.statistics()
        yield CounterMetricFamily(
            "lms_progress_updates_total",
            "Progress updates committed (stored or refused), over the life of the node.",
            value=stats.updates,
        )
        yield histogram_family(
            "lms_progress_batch_size",
            "Progress updates per committed batch.",
            [],
            [([], stats.batch_size)],
        )
        yield histogram_family(
            "lms_progress_commit_seconds",
            "How long each batch of progress updates took to commit.",
            [],
            [([], stats.commit_seconds)],
        )


class CacheFigures(Collector):
    def __init__(self, cache: Cache) -> None:
        self._cache = cache

    def collect(self) -> Iterable[Metric]:
        stats = self._cache.statistics()
        hits = CounterMetricFamily(
            "lms_cache_hits_total", "Cache lookups answered by the tier.", labels=["tier"]
        )
        misses = CounterMetricFamily(
            "lms_cache_misses_total", "Cache lookups the tier could not answer.", labels=["tier"]
        )
        hits.add_metric(["memory"], stats.memory.hits)
        misses.add_metric(["memory"], stats.memory.misses)
        if stats.redis is not None:
            hits.add_metric(["redis"], stats.redis.hits)
            misses.add_metric(["redis"], stats.redis.misses)
        yield from (hits, misses)


class MailFigures(Collector):
    def __init__(self, mailer: MailerHandle) -> None:
        self._mailer = mailer

    def collect(self) -> Iterable[Metric]:
        stats = self._mailer.statistics()
        yield CounterMetricFamily(
            "lms_mail_sent_total", "Messages the mail transport took.", value=stats.sent
        )
        yield CounterMetricFamily(
            "lms_mail_retried_total",
            "Failed sends put back to be tried again later.",
            value=stats.retried,
        )
        yield CounterMetricFamily(
            "lms_mail_dead_total",
            "Messages given up on after their last attempt.",
            value=stats.dead,
        )


class DatabaseFigures(Collector):
    """The pool's connections, and the units of work slower than LMS_SLOW_SQL_MS by store
    function (`Database.statistics()['slow_calls']`)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def collect(self) -> Iterable[Metric]:
        stats = self._db.statistics()
        connections = GaugeMetricFamily(
            "lms_db_pool_connections",
            "PostgreSQL connections open, in use (kept by a hot caller included) or idle.",
            labels=["state"],
        )
        connections.add_metric(["in_use"], stats["size"] - stats["idle"])
        connections.add_metric(["idle"], stats["idle"])
        yield connections
        yield GaugeMetricFamily(
            "lms_db_pool_max", "The most connections the pool opens.", value=stats["max_size"]
        )
        slow = CounterMetricFamily(
            "lms_slow_queries_total",
            "Units of database work slower than LMS_SLOW_SQL_MS, by store function.",
            labels=["function"],
        )
        for function, count in stats["slow_calls"].items():
            slow.add_metric([function], count)
        yield slow


class BridgeFigures(Collector):
    def collect(self) -> Iterable[Metric]:
        yield histogram_family(
            "lms_bridge_call_seconds",
            "Calls from trio into asyncio (asyncpg, Redis, SMTP): both crossings and the work.",
            [],
            [([], bridge.call_seconds())],
        )


class TranscodeAttemptFigures(Collector):
    """The transcoder pool's attempts in this process."""

    def __init__(self, figures: TranscodeFigures) -> None:
        self._figures = figures

    def collect(self) -> Iterable[Metric]:
        stats = self._figures.statistics()
        yield histogram_family(
            "lms_transcode_job_duration_seconds",
            "Wall seconds from claim to completion of each successful transcode attempt.",
            [],
            [([], stats.job_seconds)],
        )
        yield histogram_family(
            "lms_transcode_realtime_ratio",
            "Media seconds transcoded per wall second, per successful attempt.",
            [],
            [([], stats.realtime_ratio)],
        )
        failures = CounterMetricFamily(
            "lms_transcode_failures_total",
            "Failed transcode attempts: final=false put the job back in the queue, "
            "final=true failed it for good.",
            labels=["final"],
        )
        failures.add_metric(["false"], stats.retried)
        failures.add_metric(["true"], stats.failed)
        yield failures
        yield histogram_family(
            "lms_time_to_playable_seconds",
            "Seconds from an upload's end to its video's first playable rendition.",
            [],
            [([], stats.time_to_playable)],
        )


@dataclass
class _Counted:
    counts: dict[JobState, int]
    read_at: float


class JobStates(Collector):
    """The job queue by state: a query, read by `refresh` (register it with
    `NodeMetrics.add_refresh`) and reused for `ttl` seconds; concurrent scrapes share one read.
    While PostgreSQL is unreachable the last figures are kept (none before the first read)."""

    def __init__(
        self,
        db: Database,
        *,
        ttl: float = JOB_STATES_TTL,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        self._db = db
        self._ttl = ttl
        self._clock = clock
        self._counted: _Counted | None = None
        self._reading = trio.Lock()

    async def refresh(self) -> None:
        async with self._reading:
            if self._counted is not None and self._clock() - self._counted.read_at < self._ttl:
                return
            try:
                counts = await self._db.connection(job_store.count_by_state)
            except StoreUnavailable as exc:
                log.warning("metrics_job_states_unavailable", error=str(exc))
                return
            self._counted = _Counted(counts, self._clock())

    def collect(self) -> Iterable[Metric]:
        jobs = GaugeMetricFamily(
            "lms_transcode_jobs", "Transcode jobs in the queue by state.", labels=["state"]
        )
        if self._counted is not None:
            for state, count in self._counted.counts.items():
                jobs.add_metric([state.value], count)
        yield jobs


def watch_node(
    metrics: NodeMetrics,
    *,
    supervisor: Supervisor,
    live: LiveRouter,
    progress: ProgressWrites,
    cache: Cache,
    mailer: MailerHandle,
    db: Database,
    transcode: TranscodeFigures,
) -> None:
    """Register a node's figures with its registry (the queue by state read before a scrape)."""
    job_states = JobStates(db)
    for collector in (
        ActorFigures(supervisor, live),
        LiveFigures(live),
        ProgressFigures(progress),
        CacheFigures(cache),
        MailFigures(mailer),
        DatabaseFigures(db),
        BridgeFigures(),
        TranscodeAttemptFigures(transcode),
        job_states,
    ):
        metrics.add(collector)
    metrics.add_refresh(job_states.refresh)


def watch_worker(
    metrics: NodeMetrics, *, supervisor: Supervisor, db: Database, transcode: TranscodeFigures
) -> None:
    """Register an `lms worker`'s figures: its actors (the pool, the Bus), its transcodes, its
    database pool and bridge. The queue by state is left to the nodes (one query each is
    enough for a dashboard)."""
    for collector in (
        ActorFigures(supervisor),
        DatabaseFigures(db),
        BridgeFigures(),
        TranscodeAttemptFigures(transcode),
    ):
        metrics.add(collector)
