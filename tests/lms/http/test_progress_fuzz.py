"""`POST /api/v1/progress` fed any JSON (hypothesis) on a real node: a 4xx with a JSON error
naming the problem, never a 5xx; and whatever it accepts keeps the stored progress consistent
(played time only grows, coverage stays in 0..1, a completion is never undone, and the answer
is what a later read finds)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.live_setup import Course, make_course
from tests.lms.http.conftest import Login
from tests.lms.http.test_errors import answered_without_a_5xx, holds_for_every_example

PROGRESS = "/api/v1/progress"

NUMBERS = st.one_of(
    st.floats(),  # NaN and infinities too: JSON has no such numbers, so the body is malformed
    st.integers(),
    st.floats(min_value=-10.0, max_value=700.0),
)
JSON = st.recursive(
    st.none() | st.booleans() | NUMBERS | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
SEGMENTS = st.lists(st.lists(NUMBERS, min_size=0, max_size=3), max_size=70) | JSON


def heartbeats(course: Course) -> st.SearchStrategy[Any]:
    """Heartbeats, bodies near their shape (each field valid or not), and any JSON."""
    near = st.fixed_dictionaries(
        {"content_id": st.sampled_from([course.video_id, course.text_id]) | JSON},
        optional={
            "position": NUMBERS | JSON,
            "played": SEGMENTS,
            "completed": st.booleans() | JSON,
            "playback_rate": NUMBERS | JSON,
            "client_ts": st.datetimes(timezones=st.timezones()).map(str) | st.text(max_size=30),
            "device": JSON,
        },
    )
    seconds = st.floats(min_value=0.0, max_value=700.0)
    valid = st.fixed_dictionaries(
        {"content_id": st.sampled_from([course.video_id, course.text_id])},
        optional={
            "position": seconds,
            "played": st.lists(st.tuples(seconds, seconds).map(sorted), max_size=5),
            "completed": st.booleans(),
            "playback_rate": st.floats(min_value=0.25, max_value=16.0),
        },
    )
    return valid | near | JSON


@pytest.fixture
async def course(
    api: httpx.AsyncClient, database_url: str, instructor: Login, learner: Login
) -> Course:
    return await make_course(api, database_url, instructor, learner)


async def test_any_body_gets_a_4xx_naming_the_problem_or_a_consistent_stored_state(
    api: httpx.AsyncClient, learner: Login, course: Course
) -> None:
    last: dict[int, dict[str, Any]] = {}
    accepted = 0

    @settings(max_examples=200, deadline=None, database=None)
    @given(heartbeats(course))
    def check(body: Any) -> None:
        nonlocal accepted
        sent = json.dumps(body, allow_nan=True)
        headers = {**learner.auth, "Content-Type": "application/json"}
        response = client.post(PROGRESS, content=sent, headers=headers)
        answered_without_a_5xx(response, sent)
        if response.status_code >= 400:
            assert response.json()["error"]["message"], sent
            return
        assert response.status_code == 200, response.text
        accepted += 1
        state = response.json()
        assert 0.0 <= state["coverage"] <= 1.0, state
        ends = [point for segment in state["played"] for point in segment]
        assert ends == sorted(ends), state  # a union: sorted and disjoint
        before = last.get(state["content_id"])
        if before is not None:
            assert state["watched_seconds"] >= before["watched_seconds"], (before, state)
            assert state["completed"] or not before["completed"], (before, state)
        last[state["content_id"]] = state

    with httpx.Client(base_url=str(api.base_url), timeout=10) as client:
        await holds_for_every_example(check)

    assert accepted > 10  # the near-valid bodies reach the store, not only the parser
    stored = await api.get(f"/api/v1/progress/course/{course.id}", headers=learner.auth)
    for content in stored.json()["contents"]:
        if content["content_id"] in last:
            answered = last[content["content_id"]]
            assert content["watched_seconds"] == pytest.approx(answered["watched_seconds"])
            assert content["completed"] == answered["completed"]
