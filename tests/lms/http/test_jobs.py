"""The jobs view over real HTTP: who sees which jobs, cancel and retry, the manifest following
a job, and the admin page. No transcoder runs here, so every job stays where the test puts it."""

from __future__ import annotations

import dataclasses

import httpx
import pytest

from lms.config import Settings
from tests.lms.http.conftest import Login, make_instructor


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, transcode_workers=0)


async def queued_job(api: httpx.AsyncClient, owner: Login) -> dict:
    """A video content with an uploaded (not yet transcoded) file; its job."""
    course = (await api.post("/api/v1/courses", json={"title": "C"}, headers=owner.auth)).json()
    content = (
        await api.post(
            f"/api/v1/courses/{course['id']}/contents",
            json={"title": "V", "kind": "video"},
            headers=owner.auth,
        )
    ).json()
    response = await api.post(
        f"/api/v1/courses/{course['id']}/contents/{content['id']}/video",
        files={"file": ("v.mp4", b"bytes of a video")},
        headers=owner.auth,
    )
    assert response.status_code == 202, response.text
    return response.json()


async def test_admins_see_every_job_instructors_their_own_and_learners_none(
    api: httpx.AsyncClient, admin: Login, instructor: Login, learner: Login
) -> None:
    rival = await make_instructor(api, admin, "rival@test.lms")
    mine = await queued_job(api, instructor)
    theirs = await queued_job(api, rival)
    everything = await api.get("/api/v1/jobs", headers=admin.auth)
    assert [j["id"] for j in everything.json()] == [theirs["id"], mine["id"]]
    only_mine = await api.get("/api/v1/jobs", headers=instructor.auth)
    assert [j["id"] for j in only_mine.json()] == [mine["id"]]
    job = only_mine.json()[0]
    assert (job["state"], job["status"], job["attempts"], job["max_attempts"]) == (
        "queued",
        "queued",
        0,
        3,
    )
    assert (await api.get("/api/v1/jobs", headers=learner.auth)).status_code == 403
    assert (
        await api.get(f"/api/v1/jobs/{theirs['id']}", headers=instructor.auth)
    ).status_code == 403
    assert (await api.get(f"/api/v1/jobs/{theirs['id']}", headers=admin.auth)).status_code == 200
    assert (await api.get("/api/v1/jobs/999999", headers=admin.auth)).status_code == 404
    assert (await api.get("/api/v1/jobs")).status_code == 401


async def test_jobs_are_filtered_by_state_and_a_bad_state_is_a_422(
    api: httpx.AsyncClient, admin: Login
) -> None:
    job = await queued_job(api, admin)
    queued = await api.get("/api/v1/jobs?state=queued", headers=admin.auth)
    assert [j["id"] for j in queued.json()] == [job["id"]]
    assert (await api.get("/api/v1/jobs?state=done", headers=admin.auth)).json() == []
    bad = await api.get("/api/v1/jobs?state=sideways", headers=admin.auth)
    assert bad.status_code == 422
    assert "queued" in bad.json()["error"]["message"]


async def test_a_job_is_cancelled_then_retried_and_the_manifest_follows(
    api: httpx.AsyncClient, instructor: Login, admin: Login
) -> None:
    job = await queued_job(api, instructor)
    manifest_url = f"/api/v1/stream/video/{job['content_id']}/manifest"
    manifest = (await api.get(manifest_url, headers=instructor.auth)).json()
    assert (manifest["status"], manifest["progress"], manifest["renditions"]) == ("queued", 0, [])

    rival = await make_instructor(api, admin, "rival@test.lms")
    forbidden = await api.post(f"/api/v1/jobs/{job['id']}/cancel", headers=rival.auth)
    assert forbidden.status_code == 403

    cancelled = await api.post(f"/api/v1/jobs/{job['id']}/cancel", headers=instructor.auth)
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["finished_at"] is not None
    again = await api.post(f"/api/v1/jobs/{job['id']}/cancel", headers=instructor.auth)
    assert again.status_code == 409
    assert "cancelled" in again.json()["error"]["message"]
    manifest = (await api.get(manifest_url, headers=instructor.auth)).json()
    assert manifest["status"] == "cancelled"

    retried = await api.post(f"/api/v1/jobs/{job['id']}/retry", headers=admin.auth)
    assert (retried.status_code, retried.json()["status"]) == (200, "queued")
    twice = await api.post(f"/api/v1/jobs/{job['id']}/retry", headers=admin.auth)
    assert twice.status_code == 409
    unknown = await api.post("/api/v1/jobs/999999/retry", headers=admin.auth)
    assert unknown.status_code == 404


async def test_a_new_upload_replaces_the_contents_unfinished_job(
    api: httpx.AsyncClient, instructor: Login
) -> None:
    first = await queued_job(api, instructor)
    second = await api.post(
        f"/api/v1/courses/{first['course_id']}/contents/{first['content_id']}/video",
        files={"file": ("v2.mp4", b"a better take")},
        headers=instructor.auth,
    )
    jobs = {j["id"]: j for j in (await api.get("/api/v1/jobs", headers=instructor.auth)).json()}
    assert jobs[first["id"]]["status"] == "cancelled"
    assert jobs[first["id"]]["error"] == "replaced by a newer upload"
    assert jobs[second.json()["id"]]["status"] == "queued"


async def test_the_admin_page_is_served(api: httpx.AsyncClient) -> None:
    page = await api.get("/admin/jobs")
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert b'src="/static/admin_jobs.js"' in page.content
