"""RoomState without trio, without a clock: numbering, coalescing, replay and resync, and the
presence of this node's and other nodes' members, driven by plain calls with explicit times."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from actors.course_room_state import Delivery, RoomOptions, RoomState
from proto.events import JobChanged, ProgressChanged
from proto.frames import LearnerProgress, Member, Position
from proto.live import Announced, Joined, Left, Moved, PresenceSync

COURSE = 7
TICK = 0.1
REFRESH = 10.0
EPOCH = "a-0001"
TEACHER = Member("a/1", 100, "Teacher", "instructor")
LEARNER = Member("a/2", 200, "Learner", "learner")


def room(history: int = 8, learner_history: int = 4) -> RoomState:
    options = RoomOptions(
        tick=TICK, history=history, learner_history=learner_history, presence_refresh=REFRESH
    )
    return RoomState(COURSE, "a", EPOCH, options)


def frames(text: str | None) -> list[dict[str, Any]]:
    """The frames of one message, unpacking a batch."""
    assert text is not None
    frame = json.loads(text)
    return frame["frames"] if frame["type"] == "batch" else [frame]


def progress(user_id: int, position: float, content_id: int = 1) -> ProgressChanged:
    return ProgressChanged(
        user_id, COURSE, content_id, position, position, 100.0, position / 100, False, []
    )


def job(job_id: int, status: str) -> JobChanged:
    return JobChanged(job_id, COURSE, 1, 100, status, 0.5)


def announced(n: int) -> Announced:
    return Announced(COURSE, f"x{n}", 100, "Teacher", f"note {n}", 0.0, [])


def snapshot(state: RoomState, member: Member, now: float) -> dict[str, Any]:
    """What `member` is answered when it joins afresh."""
    [[frame]] = [frames(text) for text in state.join(member, None, now).answer]
    assert frame["type"] == "snapshot"
    return frame


def flushed(state: RoomState) -> list[dict[str, Any]]:
    delivery = state.flush()
    assert delivery is not None
    return frames(delivery.instructors)


def test_events_wait_for_the_tick_set_by_the_first_one_and_a_join_goes_at_once() -> None:
    state = room()
    state.join(TEACHER, None, now=0.0)
    assert (state.pending, state.flush_at) == (0, math.inf)  # the teacher's join, answered
    assert state.heard(job(9, "queued"), now=1.0) is None
    assert state.heard(job(10, "queued"), now=1.05) is None
    assert (state.pending, state.flush_at) == (2, 1.0 + TICK)
    admitted = state.join(LEARNER, None, now=1.06)
    assert admitted.joined == Joined(COURSE, "a", LEARNER)
    assert admitted.delivery is not None
    assert [f["type"] for f in frames(admitted.delivery.instructors)] == ["job", "job", "presence"]
    assert admitted.delivery.learners is None  # nothing for learners, none here before this one
    assert (state.pending, state.flush_at) == (0, math.inf)


def test_a_learners_progress_on_a_content_is_coalesced_to_its_latest_value_in_event_order() -> None:
    state = room()
    state.join(TEACHER, None, now=0.0)
    for position in (10.0, 20.0, 30.0):
        state.heard(progress(200, position), now=1.0)
    state.heard(job(9, "queued"), now=1.0)
    state.heard(progress(200, 40.0, content_id=2), now=1.0)
    state.heard(job(9, "transcoding"), now=1.0)  # a job keeps its place
    state.heard(progress(200, 50.0), now=1.0)  # the newest progress goes last
    tick = flushed(state)
    assert [(f["type"], f.get("position"), f.get("job", {}).get("status")) for f in tick] == [
        ("job", None, "transcoding"),
        ("progress", 40.0, None),
        ("progress", 50.0, None),
    ]
    assert [f["seq"] for f in tick] == [2, 3, 4]  # the teacher's join was 1
    assert {f["epoch"] for f in tick} == {EPOCH}


def test_learners_get_announcements_at_once_and_nobody_elses_progress() -> None:
    state = room()
    state.join(LEARNER, None, now=0.0)
    state.heard(progress(300, 50.0), now=1.0)
    delivery = state.heard(announced(1), now=1.0)
    assert isinstance(delivery, Delivery)
    assert delivery.instructors is None  # no instructor here
    [note] = frames(delivery.learners)
    assert (note["type"], note["text"], note["seq"]) == ("announcement", "note 1", 3)
    assert state.flush_at == math.inf  # the progress went with it, to instructors only
    assert snapshot(state, Member("a/3", 201, "Other", "learner"), now=2.0)["learners"] == []


def test_a_client_that_comes_back_gets_exactly_the_events_it_missed() -> None:
    state = room()
    first = snapshot(state, TEACHER, now=0.0)
    state.leave(TEACHER.conn, now=1.0)
    for n in range(3):
        state.heard(job(n, "queued"), now=1.0)
    state.flush()
    admitted = state.join(TEACHER, Position(EPOCH, first["seq"]), now=2.0)
    [missed] = [frames(text) for text in admitted.answer]
    assert [(f["type"], f["seq"]) for f in missed] == [
        ("presence", 2),  # its own leave
        ("job", 3),
        ("job", 4),
        ("job", 5),
        ("presence", 6),  # and its join again
    ]
    assert state.join(TEACHER, Position(EPOCH, state.seq), now=3.0).answer == []  # up to date


def test_a_client_is_told_to_resync_when_the_history_no_longer_reaches_back() -> None:
    state = room(history=8, learner_history=4)
    state.join(LEARNER, None, now=0.0)
    for n in range(5):  # one more than the learners keep
        state.heard(announced(n), now=1.0)
    late = Member("a/3", 201, "Late", "learner")
    resync, fresh = [frames(text) for text in state.join(late, Position(EPOCH, 1), now=2.0).answer]
    assert [(f["type"], f.get("reason")) for f in resync + fresh] == [
        ("resync", "history"),
        ("snapshot", None),
    ]
    assert resync[0]["seq"] == fresh[0]["seq"] == state.seq
    # Instructors keep more: the same position still replays for them.
    assert state.replay(Position(EPOCH, 1), instructor=True) is not None
    assert state.replay(Position(EPOCH, 1), instructor=False) is None


def test_a_position_of_another_epoch_or_from_the_future_is_resynced() -> None:
    state = room()
    other = state.join(TEACHER, Position("b-0002", 0), now=0.0).answer
    assert [frames(text)[0].get("reason") for text in other] == ["epoch", None]
    assert state.replay(Position(EPOCH, state.seq + 1), instructor=True) is None
    ahead = state.join(LEARNER, Position(EPOCH, state.seq + 5), now=1.0).answer
    assert [frames(text)[0].get("reason") for text in ahead] == ["history", None]


def test_after_the_link_to_other_nodes_comes_back_every_member_resyncs_in_a_new_epoch() -> None:
    state = room()
    state.join(TEACHER, None, now=0.0)
    state.join(LEARNER, None, now=0.0)
    before = state.seq
    state.heard(job(1, "queued"), now=1.0)  # pending: goes out before the resync
    delivery = state.relink("a-0002")
    teacher, learner = frames(delivery.instructors), frames(delivery.learners)
    assert [(f["type"], f.get("reason")) for f in teacher] == [
        ("job", None),
        ("resync", "link"),
        ("snapshot", None),
    ]
    assert [f["type"] for f in learner] == ["resync", "snapshot"]
    assert teacher[1]["epoch"] == teacher[2]["epoch"] == state.epoch == "a-0002"
    assert teacher[1]["seq"] == before + 1 == state.seq
    assert {m["conn"] for m in teacher[2]["online"]} == {TEACHER.conn, LEARNER.conn}
    # A position from before the outage cannot be trusted to replay everything any more.
    assert state.replay(Position(EPOCH, before), instructor=True) is None
    state.heard(job(1, "running"), now=2.0)
    assert [(f["epoch"], f["seq"]) for f in flushed(state)] == [("a-0002", before + 2)]


def test_other_nodes_members_are_merged_with_this_nodes_in_the_snapshot() -> None:
    state = room()
    state.join(TEACHER, None, now=0.0)
    b1 = Member("b/1", 300, "On b", "learner", 1)
    c1 = Member("c/1", 400, "On c", "learner")
    c2 = Member("c/2", 401, "Also on c", "instructor")
    state.heard(Joined(COURSE, "b", b1), now=1.0)
    state.heard(PresenceSync(COURSE, "c", [c1, c2]), now=1.0)
    state.heard(Joined(COURSE, "a", LEARNER), now=1.0)  # this node's own, heard back: ignored
    assert [(f["event"], f["member"]["conn"]) for f in flushed(state)] == [
        ("join", "b/1"),
        ("join", "c/1"),
        ("join", "c/2"),
    ]
    assert state.remote_members == 3
    online = snapshot(state, LEARNER, now=2.0)  # a learner sees nobody
    assert online["online"] == []
    online = snapshot(state, Member("a/3", 101, "Teacher 2", "instructor"), now=2.0)
    assert [m["conn"] for m in online["online"]] == ["a/1", "a/3", "a/2", "b/1", "c/1", "c/2"]


def test_a_nodes_presence_sync_replaces_what_was_known_of_it_and_the_differences_are_events() -> (
    None
):
    state = room()
    state.join(TEACHER, None, now=0.0)
    b1 = Member("b/1", 300, "One", "learner")
    b2 = Member("b/2", 301, "Two", "learner")
    state.heard(PresenceSync(COURSE, "b", [b1, b2]), now=1.0)
    state.flush()
    moved = Member("b/2", 301, "Two", "learner", 5)
    b3 = Member("b/3", 302, "Three", "learner")
    state.heard(PresenceSync(COURSE, "b", [moved, b3]), now=2.0)
    assert [(f["event"], f["member"]["conn"]) for f in flushed(state)] == [
        ("leave", "b/1"),
        ("watch", "b/2"),
        ("join", "b/3"),
    ]
    state.heard(Left(COURSE, "b", b3), now=3.0)
    state.heard(Left(COURSE, "b", b3), now=3.0)  # twice: one leave
    state.heard(Moved(COURSE, "b", Member("b/2", 301, "Two", "learner", 6)), now=3.0)
    assert [(f["event"], f["member"]["conn"]) for f in flushed(state)] == [
        ("leave", "b/3"),
        ("watch", "b/2"),
    ]
    assert state.remote_members == 1


def test_a_presence_query_is_answered_with_members_and_the_learners_progress() -> None:
    state = room()
    assert state.heard(PresenceSync(COURSE, "b", [], query=True), now=0.0) is None  # empty room
    state.join(LEARNER, None, now=1.0)
    state.heard(progress(200, 30.0), now=1.0)
    answer = state.heard(PresenceSync(COURSE, "b", [], query=True), now=2.0)
    assert isinstance(answer, PresenceSync)
    assert (answer.node, answer.query, answer.members) == ("a", False, [LEARNER])
    assert [learner.position for learner in answer.learners] == [30.0]
    query = state.query()
    assert (query.query, query.members, query.learners) == (True, [LEARNER], [])


def test_progress_learned_from_another_nodes_sync_does_not_replace_what_the_room_heard() -> None:
    state = room()
    state.join(TEACHER, None, now=0.0)
    state.heard(progress(200, 30.0), now=1.0)
    stale = LearnerProgress(200, 1, 5.0, 5.0, 0.05, False, 100.0)
    unknown = LearnerProgress(201, 1, 7.0, 7.0, 0.07, False, 100.0)
    state.heard(PresenceSync(COURSE, "b", [], learners=[stale, unknown]), now=1.0)
    assert [(f["user_id"], f["position"]) for f in flushed(state)] == [(200, 30.0), (201, 7.0)]
    learners = snapshot(state, Member("a/3", 101, "Teacher 2", "instructor"), now=2.0)["learners"]
    assert [(p["user_id"], p["position"]) for p in learners] == [(200, 30.0), (201, 7.0)]


def test_presence_is_repeated_every_period_and_a_silent_node_is_forgotten() -> None:
    state = room()
    state.join(TEACHER, None, now=0.0)
    assert state.refresh_at == REFRESH
    b1 = Member("b/1", 300, "On b", "learner")
    state.heard(Joined(COURSE, "b", b1), now=1.0)
    state.flush()
    repeat = state.refresh(now=REFRESH)
    assert repeat == PresenceSync(COURSE, "a", [TEACHER])
    assert (state.refresh_at, state.pending) == (2 * REFRESH, 0)
    state.refresh(now=1.0 + 3 * REFRESH)  # b silent for exactly three periods: kept
    assert state.remote_members == 1
    state.refresh(now=1.1 + 3 * REFRESH)
    assert state.remote_members == 0
    assert [(f["event"], f["member"]["conn"]) for f in flushed(state)] == [("leave", "b/1")]
    state.leave(TEACHER.conn, now=50.0)
    assert state.refresh(now=60.0) is None  # nobody here: nothing to repeat, no next refresh
    assert state.refresh_at == math.inf


def test_a_connection_that_joins_twice_is_announced_once_and_keeps_what_it_watches() -> None:
    state = room()
    state.join(TEACHER, None, now=0.0)
    assert state.watch(TEACHER.conn, 3, now=1.0) == Moved(
        COURSE, "a", Member("a/1", 100, "Teacher", "instructor", 3)
    )
    assert state.watch(TEACHER.conn, 3, now=1.0) is None  # no change, no event
    assert state.watch("a/9", 3, now=1.0) is None  # not here
    again = state.join(TEACHER, None, now=2.0)
    assert again.joined is None
    [[frame]] = [frames(text) for text in again.answer]
    assert [(m["conn"], m["content_id"]) for m in frame["online"]] == [("a/1", 3)]
    assert state.members == 1
    assert state.leave(TEACHER.conn, now=3.0) is not None
    assert state.leave(TEACHER.conn, now=3.0) is None


# --- properties -----------------------------------------------------------------------------------

Step = tuple[str, int]
steps = st.lists(
    st.one_of(
        st.tuples(st.just("progress"), st.integers(1, 3)),
        st.tuples(st.just("job"), st.integers(1, 3)),
        st.tuples(st.just("announce"), st.integers(0, 100)),
        st.tuples(st.just("remote_join"), st.integers(1, 3)),
        st.tuples(st.just("remote_leave"), st.integers(1, 3)),
        st.tuples(st.just("flush"), st.just(0)),
    ),
    max_size=60,
)


def play(state: RoomState, step: Step, now: float) -> Delivery | None:
    kind, n = step
    match kind:
        case "progress":
            out = state.heard(progress(200 + n, now), now)
        case "job":
            out = state.heard(job(n, f"at {now}"), now)
        case "announce":
            out = state.heard(announced(n), now)
        case "remote_join":
            out = state.heard(Joined(COURSE, "b", Member(f"b/{n}", n, "b", "learner")), now)
        case "remote_leave":
            out = state.heard(Left(COURSE, "b", Member(f"b/{n}", n, "b", "learner")), now)
        case _:
            out = state.flush()
    assert out is None or isinstance(out, Delivery)
    return out


@given(steps)
def test_an_instructor_who_stays_gets_every_event_once_numbered_one_by_one(
    script: list[Step],
) -> None:
    state = room()
    seen = [f["seq"] for text in state.join(TEACHER, None, 0.0).answer for f in frames(text)]
    for i, step in enumerate(script):
        delivery = play(state, step, now=float(i))
        if delivery is not None:
            seen += [f["seq"] for f in frames(delivery.instructors)]
    last = state.flush()
    if last is not None:
        seen += [f["seq"] for f in frames(last.instructors)]
    assert seen == list(range(1, state.seq + 1))  # strictly increasing, none skipped


@given(steps, st.integers(1, 12), st.integers(0, 80))
def test_replay_gives_exactly_the_events_after_a_position_while_the_history_reaches_back(
    script: list[Step], history: int, since: int
) -> None:
    state = room(history=history, learner_history=history)
    for i, step in enumerate(script):
        play(state, step, now=float(i))
    state.flush()
    missed = state.replay(Position(EPOCH, since), instructor=True)
    if since > state.seq or since < state.seq - history:
        assert missed is None
    else:
        assert missed is not None
        assert [f["seq"] for text in missed for f in frames(text)] == list(
            range(since + 1, state.seq + 1)
        )
