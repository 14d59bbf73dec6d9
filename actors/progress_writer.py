"""The progress writer: group commit for learners' progress.

Theory of operation
-------------------
Every progress update in the node is an ask to one `ProgressWriter`. The writer takes the first
waiting ask and everything else already in its mailbox (up to `max_batch`), hands the batch to
`commit` (read, merge, and one atomic write: `lms/store/progress.py`), and only once that returns
answers each asker with its outcome. So an answer always means "committed": a node killed with
`kill -9` right after answering loses nothing it acknowledged (with PostgreSQL's default
`synchronous_commit`). While one batch commits the next one gathers in the mailbox, so the batch
grows with the load and the cost of a commit is shared by everyone in it: latency is bounded by
about one batch, and throughput grows with the load.

At light load that alone would commit nearly every update on its own, each paying a whole
batch's round trips: a batch's fixed cost (its statements through the bridge, ~0.4-0.6 ms of
the node's CPU) is many times one row's (~25 us). So, as a Kafka producer lingers, a batch starts
`gather` seconds after the previous one started, or as soon as `enough` updates wait, whichever
comes first: an update that finds the writer idle for longer is taken at once; the ones arriving
within `gather` of the last start wait for the next and share its commit, unless there are
already enough of them to make it worth its cost. At 1,000 heartbeats/s that is a batch of
~25 every 25 ms; under a burst, or with players waiting on each answer, batches start back to
back; and when a commit takes longer than `gather` the window adds nothing.

A batch's commit is mostly waiting: on PostgreSQL's statement and its flush to disk, which take
as long as the merging that precedes them. So up to `in_flight` batches commit at once, each on
a connection of its own, and while one waits the next is merged and sent. Under a load that
queues enough for several batches, what waits is shared evenly between the batches that can
start (never one below `enough`), so the writer alternates between cohorts of players instead
of one batch taking everyone; at light load a batch still takes all that waits. Batches in
flight never share a row: a batch holding a row that one in flight writes waits for it, so a
row's writes are committed, answered and published in the order they were sent.

What a batch does with each write (refuse it, or merge it) is decided inside `commit` against
what is stored, so one bad write is refused on its own and the rest of the batch is stored. A
batch whose commit raises fails every asker in it with `BatchFailed` (nothing of it was stored,
and an update may be sent again: merging is idempotent); the writer goes on with the next batch.

Between the commit and the answers, the writer awaits its `before_answer` hook once with the
batch's `ProgressChanged` events (the node invalidates the cached answers they outdate there),
so a client's next read after an answer is never served from before the write. The hook is
bounded: past `before_answer_budget`, or if it raises, the writer logs it and answers anyway
(what was cached then expires by its TTL). After the answers, the writer publishes one
`ProgressChanged` per row the batch changed to its `EventSink`, so the live layer can show the
change on the learner's other devices and to instructors. Events are a courtesy, not a record:
see `ProgressWriter` for the sink's contract.

The writer imports no storage: `commit` is passed in (the node passes
``functools.partial(db.kept_connection, lms.store.progress.ProgressRows().apply_batch)``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

import structlog
import trio

from actors.runtime import ActorError, Address, Inbox, MailboxStatistics, Reply, Supervisor
from lms.domain.histogram import Histogram, HistogramSnapshot
from lms.domain.progress import Refused, Written, changes
from proto.events import Event, EventSink
from proto.progress import ProgressWrite

log = structlog.get_logger()

Outcome = Written | Refused
Commit = Callable[[list[ProgressWrite]], Awaitable[list[Outcome]]]
# Awaited once per committed batch that changed rows, with their events, before any answer.
BeforeAnswer = Callable[[Sequence[Event]], Awaitable[None]]

# A batch this large commits in a few milliseconds; larger ones only delay their first answer.
MAX_BATCH = 256
# The longest a batch waits for company after the previous one started (seconds): the most it
# adds to an answer, small beside a heartbeat's period.
GATHER = 0.025
# Updates waiting that make a batch worth starting at once (its fixed cost is then a few percent).
ENOUGH = 64
# Batches committing at once, on connections of their own: while one waits on PostgreSQL (its
# statement and the commit's flush to disk, ~4 ms for 200 rows here) the next is merged and sent.
IN_FLIGHT = 2
# Room for a few batches while one commits; beyond that, senders wait (back-pressure).
CAPACITY = 1024
# Buckets of the batch size histogram: powers of two up to MAX_BATCH.
BATCH_SIZE_BOUNDS = tuple(2**n for n in range(9))
# The longest the writer waits on the event sink per batch before dropping the rest.
PUBLISH_BUDGET = 1.0
# The longest answers wait on the `before_answer` hook (a cache invalidation is a Redis round
# trip, well under a millisecond; this bounds an outage, not the usual case).
BEFORE_ANSWER_BUDGET = 0.5


@dataclass(frozen=True, slots=True)
class Record:
    """Ask: store `write`. The answer, sent once committed, is `Written` or `Refused`."""

    write: ProgressWrite
    reply: Reply[Outcome]


class BatchFailed(ActorError):
    """The batch holding this update could not be committed; nothing of it was stored.

    ``__cause__`` is the commit's exception (e.g. the database being unavailable).
    """

    def __init__(self, name: str, cause: Exception) -> None:
        super().__init__(name, f"could not commit the batch: {cause!r}")
        self.__cause__ = cause


@dataclass(frozen=True, slots=True)
class ProgressWriterStatistics:
    """A snapshot of the writer, over the life of the node (restarts included).

    Attributes:
      batches: batches committed (each one atomic write).
      updates: updates in those batches, stored or refused.
      failed_batches: batches whose commit raised.
      mean_batch_size: updates per committed batch.
      largest_batch: the most updates one batch held.
      events_published / events_dropped: `ProgressChanged` handed to the sink, and those dropped
          because the sink failed or was too slow.
      hooks_late: batches answered without their `before_answer` hook having finished (it
          raised, or outlasted its budget).
      batch_size: updates per committed batch, as a distribution.
      commit_seconds: how long each committed batch's `commit` took (wall clock).
      mailbox: the mailbox, whose depth is the backlog.
    """

    batches: int
    updates: int
    failed_batches: int
    mean_batch_size: float
    largest_batch: int
    events_published: int
    events_dropped: int
    hooks_late: int
    batch_size: HistogramSnapshot
    commit_seconds: HistogramSnapshot
    mailbox: MailboxStatistics


@dataclass
class _Tally:
    """Counters that outlive one incarnation of the writer."""

    batches: int = 0
    updates: int = 0
    failed_batches: int = 0
    largest_batch: int = 0
    events_published: int = 0
    events_dropped: int = 0
    hooks_late: int = 0
    # Updated once per committed batch, never per update.
    batch_size: Histogram = field(default_factory=lambda: Histogram(BATCH_SIZE_BOUNDS))
    commit_seconds: Histogram = field(default_factory=Histogram)


@dataclass(frozen=True, slots=True)
class _Flight:
    """A batch committing: the (user, content) rows it writes, and its end."""

    rows: frozenset[tuple[int, int]]
    done: trio.Event = field(default_factory=trio.Event)


class ProgressWriter:
    """Stores progress updates in batches, one atomic write per batch, and answers after commit.

    Mailbox full-policy: back-pressure. Senders wait for room (an `ask` waits within its
    timeout); an update is never dropped, because an acknowledged update must be stored and an
    unacknowledged one must be reported to its sender.

    The event sink's contract: `publish` is awaited once per event, after the batch's askers
    have been answered, and should only hand the event on (the live layer puts it in bounded
    mailboxes without waiting). The writer waits on it at most `publish_budget` seconds per
    batch; events not handed on by then, or whose `publish` raised, are dropped, counted and
    logged. Nothing is lost by that: the progress is committed, and a client that missed an
    event reads the state back (`GET /api/v1/progress/course/{id}`).

    The `before_answer` hook's contract: awaited once per batch whose commit changed rows, with
    their events, before the batch's askers are answered; it holds every answer of the batch,
    so it should do one bounded thing. After `before_answer_budget` seconds it is cancelled;
    then, or if it raised, the writer logs it, counts it and answers.
    """

    def __init__(
        self,
        inbox: Inbox[Record],
        commit: Commit,
        publish: EventSink,
        *,
        before_answer: BeforeAnswer | None = None,
        max_batch: int = MAX_BATCH,
        gather: float = GATHER,
        enough: int = ENOUGH,
        in_flight: int = IN_FLIGHT,
        publish_budget: float = PUBLISH_BUDGET,
        before_answer_budget: float = BEFORE_ANSWER_BUDGET,
        tally: _Tally | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, not {max_batch}")
        if not 1 <= enough <= max_batch:
            raise ValueError(f"enough must be from 1 to max_batch ({max_batch}), not {enough}")
        if in_flight < 1:
            raise ValueError(f"in_flight must be >= 1, not {in_flight}")
        if not gather >= 0:
            raise ValueError(f"gather must be >= 0 seconds, not {gather!r}")
        self._inbox = inbox
        self._commit = commit
        self._publish = publish
        self._max_batch = max_batch
        self._gather = gather
        self._enough = enough
        self._publish_budget = publish_budget
        self._before_answer = before_answer
        self._before_answer_budget = before_answer_budget
        self._slots = trio.Semaphore(in_flight)
        self._flying: list[_Flight] = []
        self._tally = _Tally() if tally is None else tally
        self._log = structlog.get_logger().bind(actor=inbox.name)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        started_at = -math.inf
        async with trio.open_nursery() as nursery:
            async for first in self._inbox:
                with trio.move_on_at(started_at + self._gather):
                    await self._inbox.wait_queued(self._enough - 1)  # besides `first`
                await self._slots.acquire()  # what arrives meanwhile joins this batch
                batch = self._take(first)
                flight = _Flight(frozenset((r.write.user_id, r.write.content_id) for r in batch))
                for other in list(self._flying):
                    if not other.rows.isdisjoint(flight.rows):
                        await other.done.wait()  # a row's writes commit in the order sent
                started_at = trio.current_time()
                self._flying.append(flight)
                nursery.start_soon(self._fly, batch, flight)

    def _take(self, first: Record) -> list[Record]:
        """`first` and the updates queued behind it, shared evenly with the batches that could
        start while this one commits (each at least `enough`, none above `max_batch`)."""
        waiting = 1 + self._inbox.queued
        # This batch and those the free slots could start, as many as `enough` each fills.
        batches = max(1, min(1 + self._slots.value, waiting // self._enough))
        size = min(self._max_batch, math.ceil(waiting / batches))
        batch = [first]
        while len(batch) < size:
            try:
                batch.append(self._inbox.receive_nowait())
            except (trio.WouldBlock, trio.ClosedResourceError):
                break  # a closed inbox failed what it held; commit what is here
        return batch

    async def _fly(self, batch: list[Record], flight: _Flight) -> None:
        try:
            await self._write(batch)
        finally:
            self._flying.remove(flight)
            flight.done.set()
            self._slots.release()

    async def _write(self, batch: list[Record]) -> None:
        writes = [record.write for record in batch]
        started = time.perf_counter()
        try:
            outcomes = await self._commit(writes)
        except Exception as exc:
            self._tally.failed_batches += 1
            self._log.warning("progress_batch_failed", size=len(batch), error=repr(exc))
            for record in batch:
                record.reply.fail(BatchFailed(self._inbox.name, exc))
            return
        tally = self._tally
        tally.commit_seconds.observe(time.perf_counter() - started)
        tally.batches += 1
        tally.updates += len(batch)
        tally.largest_batch = max(tally.largest_batch, len(batch))
        tally.batch_size.observe(len(batch))
        events = changes(writes, outcomes)
        if events and self._before_answer is not None:
            await self._settle(self._before_answer, events)
        for record, outcome in zip(batch, outcomes, strict=True):
            record.reply.send(outcome)
        published = await publish_events(self._publish, events, budget=self._publish_budget)
        tally.events_published += published
        tally.events_dropped += len(events) - published

    async def _settle(self, before_answer: BeforeAnswer, events: Sequence[Event]) -> None:
        """Await the hook within its budget; a failure or a timeout is logged, not raised."""
        with trio.move_on_after(self._before_answer_budget) as scope:
            try:
                await before_answer(events)
            except Exception as exc:
                self._tally.hooks_late += 1
                self._log.warning("progress_before_answer_failed", error=repr(exc))
        if scope.cancelled_caught:
            self._tally.hooks_late += 1
            self._log.warning("progress_before_answer_late", budget=self._before_answer_budget)


async def publish_events(publish: EventSink, events: Sequence[Event], *, budget: float) -> int:
    """Hand `events` to `publish` in order within `budget` seconds; return how many were handed
    on. A failing sink is logged, never raised: the events' progress is already committed."""
    published = 0
    with trio.move_on_after(budget) as scope:
        for event in events:
            try:
                await publish(event)
            except Exception:
                log.exception("progress_event_failed", event=type(event).__name__)
            else:
                published += 1
    if scope.cancelled_caught:
        log.warning("progress_events_dropped", dropped=len(events) - published, budget=budget)
    return published


class ProgressWrites:
    """The handle the rest of the node holds: the writer's address and its statistics."""

    def __init__(self, address: Address[Record], tally: _Tally) -> None:
        self._address = address
        self._tally = tally

    async def record(self, write: ProgressWrite, *, timeout: float) -> Outcome:  # noqa: ASYNC109
        """Store `write`; return once committed (or refused).

        Raises:
          AskTimeout: no answer within `timeout` seconds (the write may still be stored).
          BatchFailed: its batch could not be committed.
          ActorStopped: the writer is not running.
        """
        return await self._address.ask(partial(Record, write), timeout=timeout)

    def statistics(self) -> ProgressWriterStatistics:
        tally = self._tally
        return ProgressWriterStatistics(
            batches=tally.batches,
            updates=tally.updates,
            failed_batches=tally.failed_batches,
            mean_batch_size=tally.updates / tally.batches if tally.batches else 0.0,
            largest_batch=tally.largest_batch,
            events_published=tally.events_published,
            events_dropped=tally.events_dropped,
            hooks_late=tally.hooks_late,
            batch_size=tally.batch_size.snapshot(),
            commit_seconds=tally.commit_seconds.snapshot(),
            mailbox=self._address.statistics(),
        )


async def start_progress_writer(
    supervisor: Supervisor,
    commit: Commit,
    publish: EventSink,
    *,
    before_answer: BeforeAnswer | None = None,
    name: str = "progress_writer",
    capacity: int = CAPACITY,
    max_batch: int = MAX_BATCH,
    gather: float = GATHER,
    enough: int = ENOUGH,
    in_flight: int = IN_FLIGHT,
    publish_budget: float = PUBLISH_BUDGET,
    before_answer_budget: float = BEFORE_ANSWER_BUDGET,
) -> ProgressWrites:
    """Start a writer under `supervisor` (restarted on the same mailbox if it crashes)."""
    tally = _Tally()
    address = await supervisor.start(
        name,
        partial(
            ProgressWriter,
            commit=commit,
            publish=publish,
            before_answer=before_answer,
            max_batch=max_batch,
            gather=gather,
            enough=enough,
            in_flight=in_flight,
            publish_budget=publish_budget,
            before_answer_budget=before_answer_budget,
            tally=tally,
        ),
        capacity=capacity,
    )
    return ProgressWrites(address, tally)
