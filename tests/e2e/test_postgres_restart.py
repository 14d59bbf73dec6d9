"""A real node whose external PostgreSQL is stopped (fast shutdown) under a load of heartbeats
and reads, then started again: while it is down every request gets a quick JSON 503 (no hang,
no 500, no dropped connection), the node serves again by itself once it is back, and every
heartbeat acknowledged with a 200, before or after, is in the progress rows."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import trio

from tests.e2e.nodes import SECRET, NodeProcess, node_env, start_node
from tests.honest_player import Playhead, covered
from tests.lms.http.conftest import Login, log_in, sign_up
from tests.lms.http.test_progress import PROGRESS, Course, enrol, make_course
from tests.polling import eventually
from tests.postgres_restart import restart_postgres
from tests.services import RunningPostgres, own_postgres
from tests.sql import sql

pytestmark = pytest.mark.e2e

PLAYERS = 8
# Heartbeats acknowledged before the outage, and again after it, before the load stops.
ACKNOWLEDGED_EACH_SIDE = 100
# How long PostgreSQL stays down once the node has started answering 503: the fault itself.
OUTAGE = 2.0
# A refusal must come at once: a client (or nginx) waiting seconds on it is a hang.
QUICK_ANSWER = 2.0
# From PostgreSQL accepting connections again to the first heartbeat acknowledged.
RECOVERY = 5.0
# A client's pause before it retries a refused heartbeat, as a player would.
RETRY_PAUSE = 0.05


@dataclass
class Ledger:
    """What the clients saw: each answer's phase, status and time, and each player's playhead
    (its acknowledged segments)."""

    phase: str = "before"
    answers: list[tuple[str, str, int, float]] = field(default_factory=list)
    refusals: list[dict] = field(default_factory=list)
    players: dict[int, Playhead] = field(default_factory=dict)
    done: bool = False

    def seen(self, phase: str, kind: str, status: int) -> int:
        return sum(1 for p, k, s, _ in self.answers if (p, k, s) == (phase, kind, status))


@pytest.fixture
def postgres(postgres_template: Path) -> Iterator[RunningPostgres]:
    with own_postgres(postgres_template, "lms-e2e-pg-restart-") as running:
        yield running


@asynccontextmanager
async def running_node(dsn: str, tmp_path: Path) -> AsyncIterator[NodeProcess]:
    env = node_env(tmp_path, LMS_DATABASE_URL=dsn, LMS_SECRET_KEY=SECRET)
    node = await start_node(env, tmp_path / "node.log")
    try:
        yield node
    finally:
        with trio.CancelScope(shield=True):
            await node.stop()


async def ask(ledger: Ledger, kind: str, request: httpx.Request, api: httpx.AsyncClient) -> int:
    """Send `request`, note its answer; a 503 must be the JSON error of an outage."""
    phase, started = ledger.phase, time.monotonic()
    response = await api.send(request)
    ledger.answers.append((phase, kind, response.status_code, time.monotonic() - started))
    if response.status_code == 503:
        assert response.headers["content-type"] == "application/json"
        ledger.refusals.append(response.json())
    else:
        assert response.status_code == 200, response.text
    return response.status_code


async def play(api: httpx.AsyncClient, ledger: Ledger, player: Login, video: int) -> None:
    """Heartbeat back to back what played since; after a refusal, pause, then claim again."""
    playhead = ledger.players[player.user_id] = Playhead()
    while not ledger.done:
        body = await playhead.next_heartbeat(video)
        request = api.build_request("POST", PROGRESS, json=body, headers=player.auth)
        if await ask(ledger, "heartbeat", request, api) == 200:
            playhead.acknowledge(body)
        else:
            await trio.sleep(RETRY_PAUSE)


async def read(api: httpx.AsyncClient, ledger: Ledger, player: Login, course: Course) -> None:
    while not ledger.done:
        for path in (f"{PROGRESS}/course/{course.id}", f"{PROGRESS}/my/summary"):
            request = api.build_request("GET", path, headers=player.auth)
            if await ask(ledger, "read", request, api) == 503:
                await trio.sleep(RETRY_PAUSE)


async def stored_segments(dsn: str, video: int) -> dict[int, list[tuple[float, float]]]:
    rows = await sql(dsn, "SELECT user_id, played FROM progress WHERE content_id = $1", video)
    return {r["user_id"]: list(zip(r["played"][::2], r["played"][1::2], strict=True)) for r in rows}


async def until(condition: Callable[[], object]) -> None:
    """Return once `condition()` holds (the clients' tasks change what it reads)."""
    await eventually(trio.lowlevel.checkpoint, lambda _: bool(condition()))


async def test_requests_get_a_quick_503_while_postgres_restarts_and_no_acknowledged_beat_is_lost(
    postgres: RunningPostgres, tmp_path: Path
) -> None:
    ledger = Ledger()
    async with (
        running_node(postgres.dsn, tmp_path) as node,
        httpx.AsyncClient(base_url=node.url, timeout=30) as api,
    ):
        await sign_up(api, "owner@test.lms")
        await sql(postgres.dsn, "UPDATE users SET role = 'instructor'")
        owner = await log_in(api, "owner@test.lms")
        course = await make_course(api, postgres.dsn, owner, videos=1)
        players = [await sign_up(api, f"player{i}@test.lms") for i in range(PLAYERS)]
        for player in players:
            await enrol(api, player, course)

        def acknowledged(phase: str) -> int:
            return ledger.seen(phase, "heartbeat", 200)

        restarted = postgres
        try:
            async with trio.open_nursery() as nursery:
                for player in players:
                    nursery.start_soon(play, api, ledger, player, course.videos[0])
                for player in players[:2]:
                    nursery.start_soon(read, api, ledger, player, course)
                await until(lambda: acknowledged("before") >= ACKNOWLEDGED_EACH_SIDE)

                ledger.phase = "down"
                await trio.to_thread.run_sync(postgres.stop)
                await until(
                    lambda: (
                        ledger.seen("down", "heartbeat", 503) and ledger.seen("down", "read", 503)
                    )
                )
                await trio.sleep(OUTAGE)
                restarted = await trio.to_thread.run_sync(restart_postgres, postgres)
                ledger.phase, back = "after", time.monotonic()
                await until(lambda: acknowledged("after"))
                recovery = time.monotonic() - back
                await until(lambda: acknowledged("after") >= ACKNOWLEDGED_EACH_SIDE)
                ledger.done = True

            # The node is ready again as a whole, without a restart of its own.
            ready = await eventually(
                lambda: api.get("/api/v1/monitoring/health"), lambda r: r.status_code == 200
            )
            assert ready.json()["status"] == "ok"
            stored = await stored_segments(restarted.dsn, course.videos[0])
        finally:
            restarted.stop()

    statuses = Counter((phase, kind, status) for phase, kind, status, _ in ledger.answers)
    assert {status for _, _, status in statuses} <= {200, 503}
    assert {(kind, status) for phase, kind, status in statuses if phase == "down"} >= {
        ("heartbeat", 503),
        ("read", 503),
    }
    slowest_refusal = max(t for _, _, status, t in ledger.answers if status == 503)
    assert slowest_refusal < QUICK_ANSWER
    assert recovery < RECOVERY
    assert {r["error"]["code"] for r in ledger.refusals} <= {"unavailable", "database_unavailable"}
    for player in players:
        mine = ledger.players[player.user_id].acknowledged
        assert [s for s in mine if not covered(s, stored[player.user_id])] == []
