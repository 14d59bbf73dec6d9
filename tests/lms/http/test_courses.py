import httpx

from tests.lms.http.conftest import Login, make_instructor


async def create_course(api: httpx.AsyncClient, owner: Login, title: str = "Optics") -> dict:
    response = await api.post(
        "/api/v1/courses", json={"title": title, "description": "Light"}, headers=owner.auth
    )
    assert response.status_code == 201, response.text
    return response.json()


async def test_an_instructor_creates_and_edits_their_course(
    api: httpx.AsyncClient, instructor: Login
) -> None:
    course = await create_course(api, instructor)
    assert course["owner_id"] == instructor.user_id
    assert course["completion_threshold"] == 0.9
    edited = await api.patch(
        f"/api/v1/courses/{course['id']}", json={"title": "Wave optics"}, headers=instructor.auth
    )
    assert edited.status_code == 200
    assert edited.json()["title"] == "Wave optics"
    assert edited.json()["description"] == "Light"


async def test_a_learner_can_neither_create_nor_edit_a_course(
    api: httpx.AsyncClient, instructor: Login, learner: Login
) -> None:
    created = await api.post("/api/v1/courses", json={"title": "Mine"}, headers=learner.auth)
    assert created.status_code == 403
    course = await create_course(api, instructor)
    for method, path, body in (
        ("PATCH", f"/api/v1/courses/{course['id']}", {"title": "Hacked"}),
        ("DELETE", f"/api/v1/courses/{course['id']}", None),
        ("POST", f"/api/v1/courses/{course['id']}/contents", {"title": "x", "kind": "text"}),
        ("POST", f"/api/v1/courses/{course['id']}/modules", {"title": "x"}),
    ):
        response = await api.request(method, path, json=body, headers=learner.auth)
        assert response.status_code == 403, (method, path)
        assert response.json()["error"]["code"] == "forbidden"
    unchanged = await api.get(f"/api/v1/courses/{course['id']}", headers=learner.auth)
    assert unchanged.json()["title"] == "Optics"


async def test_an_instructor_cannot_edit_another_instructors_course(
    api: httpx.AsyncClient, instructor: Login, admin: Login
) -> None:
    rival = await make_instructor(api, admin, "rival@test.lms")
    course = await create_course(api, instructor)
    response = await api.patch(
        f"/api/v1/courses/{course['id']}", json={"title": "Mine now"}, headers=rival.auth
    )
    assert response.status_code == 403
    by_admin = await api.patch(
        f"/api/v1/courses/{course['id']}", json={"title": "Fixed"}, headers=admin.auth
    )
    assert by_admin.status_code == 200


async def test_anonymous_callers_get_401_on_every_course_route(
    api: httpx.AsyncClient, instructor: Login
) -> None:
    course = await create_course(api, instructor)
    base = f"/api/v1/courses/{course['id']}"
    for method, path in (
        ("GET", "/api/v1/courses"),
        ("POST", "/api/v1/courses"),
        ("GET", base),
        ("PATCH", base),
        ("DELETE", base),
        ("GET", base + "/contents"),
        ("POST", base + "/enroll"),
    ):
        response = await api.request(method, path, json={"title": "x"})
        assert response.status_code == 401, (method, path)


async def test_modules_and_contents_are_ordered_and_editable_by_the_owner(
    api: httpx.AsyncClient, instructor: Login
) -> None:
    course = await create_course(api, instructor)
    base = f"/api/v1/courses/{course['id']}"
    module = (
        await api.post(base + "/modules", json={"title": "Week 1"}, headers=instructor.auth)
    ).json()
    second = await api.post(
        base + "/contents",
        json={"title": "Lecture", "kind": "video", "position": 2, "module_id": module["id"]},
        headers=instructor.auth,
    )
    first = await api.post(
        base + "/contents",
        json={"title": "Reading", "kind": "text", "position": 1, "body": "Chapter 1"},
        headers=instructor.auth,
    )
    assert second.status_code == first.status_code == 201
    listed = (await api.get(base + "/contents", headers=instructor.auth)).json()
    assert [c["title"] for c in listed] == ["Reading", "Lecture"]
    assert listed[1]["module_id"] == module["id"]

    content_id = first.json()["id"]
    moved = await api.patch(
        f"{base}/contents/{content_id}", json={"position": 3}, headers=instructor.auth
    )
    assert moved.json()["position"] == 3
    deleted = await api.delete(f"{base}/contents/{content_id}", headers=instructor.auth)
    assert deleted.status_code == 204
    gone = await api.get(f"{base}/contents/{content_id}", headers=instructor.auth)
    assert gone.status_code == 404


async def test_a_content_cannot_point_at_another_courses_module(
    api: httpx.AsyncClient, instructor: Login
) -> None:
    mine = await create_course(api, instructor, "One")
    other = await create_course(api, instructor, "Two")
    module = (
        await api.post(
            f"/api/v1/courses/{other['id']}/modules", json={"title": "M"}, headers=instructor.auth
        )
    ).json()
    response = await api.post(
        f"/api/v1/courses/{mine['id']}/contents",
        json={"title": "x", "kind": "text", "module_id": module["id"]},
        headers=instructor.auth,
    )
    assert response.status_code == 422
    assert "module" in response.json()["error"]["message"]


async def test_a_learner_enrols_to_see_contents_and_enrolling_twice_is_harmless(
    api: httpx.AsyncClient, instructor: Login, learner: Login
) -> None:
    course = await create_course(api, instructor)
    base = f"/api/v1/courses/{course['id']}"
    await api.post(base + "/contents", json={"title": "T", "kind": "text"}, headers=instructor.auth)
    assert (await api.get(base + "/contents", headers=learner.auth)).status_code == 403

    first = await api.post(base + "/enroll", headers=learner.auth)
    again = await api.post(base + "/enroll", headers=learner.auth)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["enrolled_at"] == again.json()["enrolled_at"]
    contents = await api.get(base + "/contents", headers=learner.auth)
    assert contents.status_code == 200
    assert [c["title"] for c in contents.json()] == ["T"]

    assert (await api.delete(base + "/enroll", headers=learner.auth)).status_code == 204
    assert (await api.get(base + "/contents", headers=learner.auth)).status_code == 403


async def test_missing_courses_and_items_are_404(api: httpx.AsyncClient, instructor: Login) -> None:
    assert (await api.get("/api/v1/courses/999999", headers=instructor.auth)).status_code == 404
    assert (
        await api.post("/api/v1/courses/999999/enroll", headers=instructor.auth)
    ).status_code == 404
    course = await create_course(api, instructor)
    missing = await api.patch(
        f"/api/v1/courses/{course['id']}/modules/424242",
        json={"title": "x"},
        headers=instructor.auth,
    )
    assert missing.status_code == 404
    assert (
        await api.delete(f"/api/v1/courses/{course['id']}", headers=instructor.auth)
    ).status_code == 204
    assert (
        await api.get(f"/api/v1/courses/{course['id']}", headers=instructor.auth)
    ).status_code == 404


async def test_the_catalogue_pages_through_courses(
    api: httpx.AsyncClient, instructor: Login, learner: Login
) -> None:
    for title in ("A", "B", "C"):
        await create_course(api, instructor, title)
    page = await api.get("/api/v1/courses?limit=2&offset=1", headers=learner.auth)
    assert [c["title"] for c in page.json()] == ["B", "C"]
    bad = await api.get("/api/v1/courses?limit=0", headers=learner.auth)
    assert bad.status_code == 422
    assert "limit" in bad.json()["error"]["message"]


async def test_a_video_content_takes_no_text_body(
    api: httpx.AsyncClient, instructor: Login
) -> None:
    course = await create_course(api, instructor)
    response = await api.post(
        f"/api/v1/courses/{course['id']}/contents",
        json={"title": "x", "kind": "video", "body": "text"},
        headers=instructor.auth,
    )
    assert response.status_code == 422
