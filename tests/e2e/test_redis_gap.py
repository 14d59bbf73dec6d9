"""A Redis outage with room events in flight, on two real nodes: what one node's clients could
not hear of the other's while the link was down is never passed over in silence. The room's
own numbering cannot show the hole (it counts this node's events, 22 then 23), so after the
link comes back every member is told to `resync`."""

from __future__ import annotations

import pytest
import trio

from tests.e2e.test_live_two_nodes import Cluster, cluster, subscribed
from tests.live_client import LiveClient, live_socket, progress_path
from tests.redis_restart import restart_redis

pytestmark = pytest.mark.e2e

__all__ = ["cluster"]  # the fixture, shared with the other two-node live tests


async def announce(teacher: LiveClient, n: int) -> None:
    await teacher.send({"type": "announcement", "text": f"note {n}", "id": n})
    await teacher.expect("ack", id=n)


async def test_after_a_redis_outage_the_far_nodes_client_is_told_to_resync_not_left_with_a_gap(
    cluster: Cluster,
) -> None:
    c, room = cluster, progress_path(cluster.course.id)
    async with (
        live_socket(c.a.url, room, c.instructor.access_token) as near,
        live_socket(c.b.url, room, c.instructor.access_token) as far,
    ):
        await subscribed(near)
        first = await subscribed(far)
        await far.expect("presence", event="join", wait=5)  # `near`, from node a
        await announce(near, 1)
        before = await far.expect("announcement", text="note 1", wait=5)
        assert before["epoch"] == first["epoch"]

        await trio.to_thread.run_sync(c.redis.stop)
        for n in (2, 3):  # node a takes them, node b cannot hear of them now
            await announce(near, n)
        c.redis = await trio.to_thread.run_sync(restart_redis, c.redis)

        far.seen.clear()
        resync = await far.expect("resync", wait=15)
        # Whatever reached the far client before the resync still followed on from what it
        # had: only the resync may break the old numbering.
        old = [f for f in far.seen if f.get("epoch") == first["epoch"]]
        assert [f["seq"] for f in old] == list(
            range(before["seq"] + 1, before["seq"] + 1 + len(old))
        )
        assert resync["reason"] == "link"
        assert resync["epoch"] != first["epoch"]
        snapshot = await far.expect("snapshot", wait=1)
        assert (snapshot["epoch"], snapshot["seq"]) == (resync["epoch"], resync["seq"])

        # And the rooms are linked again: the next announcement reaches b in the new epoch.
        await announce(near, 4)
        after = await far.expect("announcement", text="note 4", wait=5)
        assert after["epoch"] == resync["epoch"]
        assert after["seq"] > resync["seq"]
