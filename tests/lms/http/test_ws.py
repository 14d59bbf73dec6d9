"""The live WebSocket edges against a real node (PostgreSQL, Redis), with trio-websocket clients."""

from __future__ import annotations

import json

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected, open_websocket_url

from tests.live_client import NOTIFICATIONS, live_socket, progress_path, ws_url
from tests.live_setup import Course, make_course
from tests.lms.http.conftest import Login, log_in, sign_up


@pytest.fixture
async def course(
    api: httpx.AsyncClient, database_url: str, instructor: Login, learner: Login
) -> Course:
    return await make_course(api, database_url, instructor, learner)


async def refused(node: str, path: str, first: str | bytes) -> tuple[dict, int]:
    """Send `first` as the first frame; return the error frame and the close code."""
    async with open_websocket_url(ws_url(node, path)) as ws:
        await ws.send_message(first)
        error = json.loads(await ws.get_message())
        with pytest.raises(ConnectionClosed) as closed:
            await ws.get_message()
    return error, closed.value.reason.code


# --- admission --------------------------------------------------------------------------------


async def test_a_socket_must_authenticate_first(node: str, course: Course) -> None:
    error, code = await refused(node, progress_path(course.id), '{"type": "subscribe"}')
    assert (error["type"], error["code"], code) == ("error", "auth_required", 1008)


async def test_a_forged_token_is_refused_without_echoing_it(node: str) -> None:
    token = "forged.token.value"
    error, code = await refused(node, NOTIFICATIONS, json.dumps({"type": "auth", "token": token}))
    assert (error["code"], code) == ("unauthenticated", 1008)
    assert token not in json.dumps(error)


async def test_only_members_of_a_course_enter_its_room(
    node: str, api: httpx.AsyncClient, course: Course, learner: Login, admin: Login
) -> None:
    outsider = await sign_up(api, "outsider@test.lms")
    auth = json.dumps({"type": "auth", "token": outsider.access_token})
    error, code = await refused(node, progress_path(course.id), auth)
    assert (error["code"], code) == ("forbidden", 1008)
    error, code = await refused(node, progress_path(course.id + 1000), auth)
    assert (error["code"], code) == ("not_found", 1008)

    async with live_socket(node, progress_path(course.id), learner.access_token) as sock:
        assert sock.welcome["role"] == "learner"
        assert sock.welcome["v"] == 1
    async with live_socket(node, progress_path(course.id), admin.access_token) as sock:
        assert sock.welcome["role"] == "instructor"


async def test_a_binary_auth_frame_is_refused_with_1003(node: str, learner: Login) -> None:
    auth = json.dumps({"type": "auth", "token": learner.access_token}).encode()
    error, code = await refused(node, NOTIFICATIONS, auth)
    assert (error["code"], code) == ("binary_frame", 1003)


async def test_a_revoked_token_cannot_open_a_socket(
    node: str, api: httpx.AsyncClient, learner: Login
) -> None:
    assert (await api.post("/api/v1/auth/logout", headers=learner.auth)).status_code == 204
    auth = json.dumps({"type": "auth", "token": learner.access_token})
    error, code = await refused(node, NOTIFICATIONS, auth)
    assert (error["code"], code) == ("unauthenticated", 1008)
    assert "revoked" in error["message"]


@pytest.mark.parametrize("course_id", ["abc", "-1", str(2**63), "9" * 400])
async def test_a_progress_socket_for_a_course_id_that_cannot_exist_is_a_404(
    node: str, course_id: str
) -> None:
    with pytest.raises(ConnectionRejected) as rejected:
        async with open_websocket_url(ws_url(node, f"/api/v1/ws/progress/{course_id}")):
            pass
    assert rejected.value.status_code == 404
    assert json.loads(rejected.value.body)["error"]["code"] == "not_found"


async def test_an_admin_demoted_while_connected_can_no_longer_announce(
    node: str, api: httpx.AsyncClient, course: Course, admin: Login
) -> None:
    deputy = await sign_up(api, "deputy@test.lms")
    promoted = await api.patch(
        f"/api/v1/users/{deputy.user_id}", json={"role": "admin"}, headers=admin.auth
    )
    assert promoted.status_code == 200
    deputy = await log_in(api, deputy.email)
    async with live_socket(node, progress_path(course.id), deputy.access_token) as sock:
        await sock.send({"type": "announcement", "text": "as admin", "id": 1})
        assert (await sock.expect("ack", id=1))["type"] == "ack"
        demoted = await api.patch(
            f"/api/v1/users/{deputy.user_id}", json={"role": "learner"}, headers=admin.auth
        )
        assert demoted.status_code == 200
        await sock.send({"type": "announcement", "text": "no longer", "id": 2})
        assert (await sock.expect("error", id=2))["code"] == "forbidden"


# --- bad frames ---------------------------------------------------------------------------------


async def test_bad_frames_get_error_frames_and_the_socket_stays_open(
    node: str, learner: Login
) -> None:
    async with live_socket(node, NOTIFICATIONS, learner.access_token) as sock:
        await sock.ws.send_message("{not json")
        assert (await sock.expect("error"))["code"] == "bad_json"
        await sock.send({"type": "teleport"})
        assert (await sock.expect("error"))["code"] == "invalid_frame"
        await sock.send({"type": "subscribe"})  # a room's frame, on the notification socket
        assert (await sock.expect("error"))["code"] == "not_here"
        await sock.send({"type": "ping", "t": 7})
        assert (await sock.expect("pong"))["t"] == 7


async def test_too_many_bad_frames_close_the_socket_with_1008(node: str, learner: Login) -> None:
    async with live_socket(node, NOTIFICATIONS, learner.access_token) as sock:
        for _ in range(20):
            await sock.ws.send_message("[]")
        with pytest.raises(ConnectionClosed) as closed:
            await sock.expect("never")
    assert closed.value.reason.code == 1008


async def test_a_binary_frame_closes_with_1003(node: str, learner: Login) -> None:
    async with live_socket(node, NOTIFICATIONS, learner.access_token) as sock:
        await sock.ws.send_message(b"\x00\x01")
        with pytest.raises(ConnectionClosed) as closed:
            await sock.expect("never")
    assert closed.value.reason.code == 1003


async def test_an_oversized_frame_closes_with_1009(node: str, learner: Login) -> None:
    async with live_socket(node, NOTIFICATIONS, learner.access_token) as sock:
        await sock.send({"type": "ping", "t": 1, "pad": "x" * 70_000})
        with pytest.raises(ConnectionClosed) as closed:
            await sock.expect("never")
    assert closed.value.reason.code == 1009


async def test_a_silent_client_is_pinged_then_closed_with_1011(node: str, learner: Login) -> None:
    async with live_socket(
        node, NOTIFICATIONS, learner.access_token, keepalive=1, answer_pings=False
    ) as sock:
        with trio.fail_after(5):
            await sock.expect("ping")
            with pytest.raises(ConnectionClosed) as closed:
                await sock.expect("never")
    assert closed.value.reason.code == 1011


async def test_a_client_answering_pings_stays_connected(node: str, learner: Login) -> None:
    async with live_socket(node, NOTIFICATIONS, learner.access_token, keepalive=1) as sock:
        for _ in range(3):
            await sock.expect("ping", wait=3)  # answered by the client each time
        await sock.send({"type": "ping", "t": 1})
        await sock.expect("pong")


# --- progress, presence, device sync ---------------------------------------------------------


async def test_a_heartbeat_is_acked_with_the_stored_state(
    node: str, course: Course, learner: Login
) -> None:
    async with live_socket(node, progress_path(course.id), learner.access_token) as sock:
        ack = await sock.heartbeat(1, content_id=course.video_id, position=30.0, played=[[0, 30]])
        assert ack["type"] == "ack"
        assert ack["state"]["watched_seconds"] == pytest.approx(30.0)
        refused_ = await sock.heartbeat(2, content_id=course.video_id + 999, position=1.0)
        assert (refused_["type"], refused_["code"]) == ("error", "not_found")


async def test_the_instructor_sees_presence_and_progress_live(
    node: str, course: Course, instructor: Login, learner: Login
) -> None:
    room = progress_path(course.id)
    async with live_socket(node, room, instructor.access_token) as teacher:
        await teacher.send({"type": "subscribe"})
        snapshot = await teacher.expect("snapshot")
        assert [m["user_id"] for m in snapshot["online"]] == [instructor.user_id]
        async with live_socket(node, room, learner.access_token) as student:
            await student.send({"type": "subscribe"})
            mine = await student.expect("snapshot")
            assert mine["online"] == []
            assert mine["learners"] == []
            joined = await teacher.expect("presence", event="join")
            assert joined["member"]["user_id"] == learner.user_id
            await student.send({"type": "presence", "content_id": course.video_id})
            watching = await teacher.expect("presence", event="watch")
            assert watching["member"]["content_id"] == course.video_id
            await student.heartbeat(1, content_id=course.video_id, position=60.0, played=[[0, 60]])
            progress = await teacher.expect("progress", user_id=learner.user_id)
            assert progress["coverage"] == pytest.approx(0.1)
            assert progress["seq"] > joined["seq"] > snapshot["seq"]
        left = await teacher.expect("presence", event="leave")
        assert left["member"]["user_id"] == learner.user_id


async def test_progress_reaches_the_users_other_devices_but_not_the_sender(
    node: str, course: Course, learner: Login
) -> None:
    token = learner.access_token
    async with (
        live_socket(node, progress_path(course.id), token, device_id="laptop") as laptop,
        live_socket(node, progress_path(course.id), token, device_id="phone") as phone,
        live_socket(node, NOTIFICATIONS, token, device_id="tablet") as tablet,
    ):
        await laptop.heartbeat(1, content_id=course.video_id, position=95.0, played=[[0, 95]])
        for device in (phone, tablet):
            pushed = await device.expect("progress", content_id=course.video_id)
            assert pushed["position"] == 95.0  # resume here
            assert pushed["device_id"] == "laptop"
        # The phone's own heartbeat comes back to the laptop, and the laptop saw none of its own.
        await phone.heartbeat(2, content_id=course.video_id, position=120.0, played=[[95, 120]])
        pushed = await laptop.expect("progress", content_id=course.video_id)
        assert pushed["position"] == 120.0
        assert all(f["type"] != "progress" for f in laptop.seen[:-1])


# --- announcements, recovery -----------------------------------------------------------------


async def test_an_announcement_reaches_the_room_and_the_courses_other_sockets(
    node: str, api: httpx.AsyncClient, course: Course, instructor: Login, learner: Login
) -> None:
    async with (
        live_socket(node, progress_path(course.id), learner.access_token) as in_room,
        live_socket(node, NOTIFICATIONS, learner.access_token) as elsewhere,
    ):
        await in_room.send({"type": "subscribe"})
        await in_room.expect("snapshot")
        posted = await api.post(
            f"/api/v1/courses/{course.id}/announcements",
            json={"text": "Exam moved to Friday"},
            headers=instructor.auth,
        )
        assert posted.status_code == 201, posted.text
        heard = await in_room.expect("announcement")
        assert (heard["text"], heard["id"]) == ("Exam moved to Friday", posted.json()["id"])
        notified = await elsewhere.expect("notification")
        assert notified["announcement"]["id"] == posted.json()["id"]

        await in_room.send({"type": "announcement", "text": "me too", "id": 5})
        assert (await in_room.expect("error", id=5))["code"] == "forbidden"
    by_learner = await api.post(
        f"/api/v1/courses/{course.id}/announcements", json={"text": "hi"}, headers=learner.auth
    )
    assert by_learner.status_code == 403


async def test_a_reconnecting_client_gets_what_it_missed_or_a_resync(
    node: str, course: Course, instructor: Login, learner: Login
) -> None:
    room = progress_path(course.id)
    async with live_socket(node, room, learner.access_token) as student:
        await student.send({"type": "subscribe"})
        snapshot = await student.expect("snapshot")
    since = {"epoch": snapshot["epoch"], "seq": snapshot["seq"]}
    async with live_socket(node, room, instructor.access_token) as teacher:
        for n in range(3):
            await teacher.send({"type": "announcement", "text": f"note {n}", "id": n})
            await teacher.expect("ack", id=n)
    async with live_socket(node, room, learner.access_token) as student:
        await student.send({"type": "subscribe", "since": since})
        missed = [await student.expect("announcement") for _ in range(3)]
        assert [a["text"] for a in missed] == ["note 0", "note 1", "note 2"]
        assert [a["seq"] for a in missed] == sorted(a["seq"] for a in missed)
        assert all(f["type"] != "snapshot" for f in student.seen)
        await student.send({"type": "subscribe", "since": {"epoch": "elsewhere", "seq": 3}})
        resync = await student.expect("resync")
        assert resync["reason"] == "epoch"
        assert (await student.expect("snapshot"))["seq"] == resync["seq"]
