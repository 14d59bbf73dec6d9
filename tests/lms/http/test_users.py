import httpx

from tests.lms.http.conftest import Login, log_in


async def test_an_admin_promotes_a_learner_who_then_creates_courses(
    api: httpx.AsyncClient, admin: Login, learner: Login
) -> None:
    promoted = await api.patch(
        f"/api/v1/users/{learner.user_id}", json={"role": "instructor"}, headers=admin.auth
    )
    assert promoted.status_code == 200
    assert promoted.json()["role"] == "instructor"
    # The refreshed token carries the new role.
    refreshed = await api.post(
        "/api/v1/auth/refresh", json={"refresh_token": learner.refresh_token}
    )
    token = refreshed.json()["access_token"]
    course = await api.post(
        "/api/v1/courses", json={"title": "New"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert course.status_code == 201


async def test_a_learner_renames_themselves_but_cannot_change_roles(
    api: httpx.AsyncClient, learner: Login, admin: Login
) -> None:
    renamed = await api.patch(
        f"/api/v1/users/{learner.user_id}", json={"name": "Lea"}, headers=learner.auth
    )
    assert renamed.json()["name"] == "Lea"
    for user_id, body in ((learner.user_id, {"role": "admin"}), (admin.user_id, {"name": "x"})):
        response = await api.patch(f"/api/v1/users/{user_id}", json=body, headers=learner.auth)
        assert response.status_code == 403
    me = await log_in(api, learner.email)
    assert (await api.get("/api/v1/users/me", headers=me.auth)).json()["role"] == "learner"


async def test_an_unknown_role_or_user_is_rejected(api: httpx.AsyncClient, admin: Login) -> None:
    bad_role = await api.patch(
        f"/api/v1/users/{admin.user_id}", json={"role": "superuser"}, headers=admin.auth
    )
    assert bad_role.status_code == 422
    missing = await api.patch("/api/v1/users/987654", json={"name": "x"}, headers=admin.auth)
    assert missing.status_code == 404
