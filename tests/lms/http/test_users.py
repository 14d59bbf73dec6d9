import asyncio

import asyncpg
import httpx
import trio

from tests.lms.http.conftest import PASSWORD, Login, log_in, make_instructor, register, sign_up
from tests.sql import sql


async def refreshed(api: httpx.AsyncClient, login: Login) -> Login:
    """`login` after trading its refresh token for a new pair, as a client does on a 401."""
    response = await api.post("/api/v1/auth/refresh", json={"refresh_token": login.refresh_token})
    assert response.status_code == 200, response.text
    tokens = response.json()
    return Login(login.user_id, login.email, tokens["access_token"], tokens["refresh_token"])


async def set_role_in_database(database_url: str, user_id: int, role: str) -> None:
    async def update() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute("UPDATE users SET role = $2 WHERE id = $1", user_id, role)
        finally:
            await conn.close()

    # The node under test runs an asyncio loop in this thread (trio-asyncio); use another.
    await trio.to_thread.run_sync(asyncio.run, update())


async def set_role(api: httpx.AsyncClient, admin: Login, user: Login, role: str) -> None:
    response = await api.patch(
        f"/api/v1/users/{user.user_id}", json={"role": role}, headers=admin.auth
    )
    assert response.status_code == 200, response.text


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


async def test_a_demoted_admin_is_refused_at_once_and_cannot_make_themselves_admin_again(
    api: httpx.AsyncClient, admin: Login
) -> None:
    deputy = await sign_up(api, "deputy@test.lms")
    await set_role(api, admin, deputy, "admin")
    deputy = await log_in(api, deputy.email)
    await set_role(api, admin, deputy, "learner")

    # The token still within its 15 minutes was revoked with the role change...
    again = await api.patch(
        f"/api/v1/users/{deputy.user_id}", json={"role": "admin"}, headers=deputy.auth
    )
    assert again.status_code == 401
    # ...and the next one carries what the account is now.
    deputy = await refreshed(api, deputy)
    again = await api.patch(
        f"/api/v1/users/{deputy.user_id}", json={"role": "admin"}, headers=deputy.auth
    )
    assert again.status_code == 403
    me = await api.get("/api/v1/users/me", headers=deputy.auth)
    assert me.json()["role"] == "learner"


async def test_a_demoted_instructor_can_no_longer_create_courses(
    api: httpx.AsyncClient, admin: Login
) -> None:
    teacher = await make_instructor(api, admin, "teacher@test.lms")
    created = await api.post("/api/v1/courses", json={"title": "Before"}, headers=teacher.auth)
    assert created.status_code == 201
    await set_role(api, admin, teacher, "learner")

    for login in (teacher, await refreshed(api, teacher)):
        refused = await api.post("/api/v1/courses", json={"title": "After"}, headers=login.auth)
        assert refused.status_code in (401, 403), refused.text
    listed = await api.get("/api/v1/courses", headers=admin.auth)
    assert [c["title"] for c in listed.json() if c["owner_id"] == teacher.user_id] == ["Before"]


async def test_rights_follow_the_role_the_account_has_now_not_the_one_in_the_token(
    api: httpx.AsyncClient, admin: Login, database_url: str
) -> None:
    await register(api, "lee@test.lms", "Lee")
    [lee] = await sql(database_url, "SELECT id FROM users WHERE email = 'lee@test.lms'")
    tokens = (
        await api.post("/api/v1/auth/login", json={"email": "lee@test.lms", "password": PASSWORD})
    ).json()
    # A role changed behind the API's back (no token revoked) before the token's first use: its
    # first request sees it. (Once the account's standing is cached, such a change is seen
    # within `ACCOUNT_TTL` or from the next sign-in; changes through the API at once.)
    await set_role_in_database(database_url, lee["id"], "instructor")
    created = await api.post(
        "/api/v1/courses",
        json={"title": "T"},
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    )
    assert created.status_code == 201, created.text


async def test_renaming_yourself_keeps_your_session(api: httpx.AsyncClient, learner: Login) -> None:
    renamed = await api.patch(
        f"/api/v1/users/{learner.user_id}", json={"name": "Lea"}, headers=learner.auth
    )
    assert renamed.status_code == 200
    assert (await api.get("/api/v1/users/me", headers=learner.auth)).status_code == 200


async def test_a_new_user_counts_days_in_utc_until_they_set_their_time_zone(
    api: httpx.AsyncClient, learner: Login
) -> None:
    me = await api.get("/api/v1/users/me", headers=learner.auth)
    assert me.json()["time_zone"] == "UTC"

    changed = await api.patch(
        "/api/v1/users/me", json={"time_zone": "America/Sao_Paulo"}, headers=learner.auth
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["time_zone"] == "America/Sao_Paulo"
    me = await api.get("/api/v1/users/me", headers=learner.auth)
    assert (me.json()["time_zone"], me.json()["name"]) == ("America/Sao_Paulo", "Test User")


async def test_a_time_zone_that_is_not_an_iana_name_is_refused_naming_the_field(
    api: httpx.AsyncClient, learner: Login
) -> None:
    for bad in ("Mars/Olympus_Mons", "utc", "localtime", "../../etc/passwd", "", "x" * 65, 5):
        response = await api.patch(
            "/api/v1/users/me", json={"time_zone": bad}, headers=learner.auth
        )
        assert response.status_code == 422, (bad, response.text)
        assert "time_zone" in response.json()["error"]["message"], bad
    me = await api.get("/api/v1/users/me", headers=learner.auth)
    assert me.json()["time_zone"] == "UTC"


async def test_patching_yourself_renames_you_but_cannot_change_your_role(
    api: httpx.AsyncClient, learner: Login
) -> None:
    renamed = await api.patch(
        "/api/v1/users/me", json={"name": "Lea", "time_zone": "Asia/Kolkata"}, headers=learner.auth
    )
    assert (renamed.json()["name"], renamed.json()["time_zone"]) == ("Lea", "Asia/Kolkata")
    promoted = await api.patch("/api/v1/users/me", json={"role": "admin"}, headers=learner.auth)
    assert promoted.status_code == 403
    unauthenticated = await api.patch("/api/v1/users/me", json={"time_zone": "UTC"})
    assert unauthenticated.status_code == 401
