import httpx
import trio

from lms.accounts.service import REFRESH_REUSE_GRACE
from tests.lms.http.conftest import PASSWORD, Login, log_in, sign_up
from tests.sql import sql

REFRESH = "/api/v1/auth/refresh"


async def past_the_grace(dsn: str) -> None:
    """Every rotation so far happened longer ago than the reuse grace."""
    await sql(
        dsn,
        "UPDATE refresh_tokens SET rotated_at = rotated_at - make_interval(secs => $1)",
        REFRESH_REUSE_GRACE + 1,
    )


async def live_tokens(dsn: str, user_id: int) -> int:
    [row] = await sql(
        dsn,
        "SELECT count(*) AS n FROM refresh_tokens WHERE user_id = $1 AND revoked_at IS NULL",
        user_id,
    )
    return row["n"]


async def test_login_returns_a_bearer_pair_that_opens_the_api(api: httpx.AsyncClient) -> None:
    await sign_up(api, "bob@example.org")
    response = await api.post(
        "/api/v1/auth/login", json={"email": "BOB@example.org", "password": PASSWORD}
    )
    assert response.status_code == 200
    tokens = response.json()
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == 900
    me = await api.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert me.status_code == 200
    assert me.json()["email"] == "bob@example.org"


async def test_wrong_password_and_unknown_email_get_the_same_answer(
    api: httpx.AsyncClient,
) -> None:
    await sign_up(api, "carol@example.org")
    wrong = await api.post(
        "/api/v1/auth/login", json={"email": "carol@example.org", "password": "nope-nope"}
    )
    unknown = await api.post(
        "/api/v1/auth/login", json={"email": "nobody@example.org", "password": "nope-nope"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()


async def test_refresh_rotates_and_a_replayed_refresh_token_revokes_its_family(
    api: httpx.AsyncClient, database_url: str
) -> None:
    login = await sign_up(api, "dave@example.org")
    first = await api.post("/api/v1/auth/refresh", json={"refresh_token": login.refresh_token})
    assert first.status_code == 200
    rotated = first.json()
    assert rotated["refresh_token"] != login.refresh_token
    me = await api.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {rotated['access_token']}"}
    )
    assert me.status_code == 200

    await past_the_grace(database_url)
    replay = await api.post("/api/v1/auth/refresh", json={"refresh_token": login.refresh_token})
    assert replay.status_code == 401
    # The thief's replay also cost the legitimate holder the successor: log in again.
    successor = await api.post(
        "/api/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]}
    )
    assert successor.status_code == 401
    assert (await log_in(api, "dave@example.org")).access_token


async def test_a_replayed_refresh_token_also_revokes_the_access_tokens_of_its_user(
    api: httpx.AsyncClient, database_url: str
) -> None:
    login = await sign_up(api, "fay@example.org")
    stolen = login.refresh_token
    rotated = (await api.post("/api/v1/auth/refresh", json={"refresh_token": stolen})).json()
    bought = {"Authorization": f"Bearer {rotated['access_token']}"}
    assert (await api.get("/api/v1/users/me", headers=bought)).status_code == 200

    await past_the_grace(database_url)
    assert (
        await api.post("/api/v1/auth/refresh", json={"refresh_token": stolen})
    ).status_code == 401
    for headers in (bought, login.auth):
        refused = await api.get("/api/v1/users/me", headers=headers)
        assert refused.status_code == 401
        assert "revoked" in refused.json()["error"]["message"]
    fresh = await log_in(api, "fay@example.org")
    assert (await api.get("/api/v1/users/me", headers=fresh.auth)).status_code == 200


async def test_a_refresh_token_spent_again_within_the_grace_gets_the_same_successor(
    api: httpx.AsyncClient, database_url: str
) -> None:
    # A page left while its refresh was in flight: the server rotated the pair, the page never
    # stored the answer, and the next page spends the old refresh token again.
    login = await sign_up(api, "iris@example.org")
    lost = await api.post(REFRESH, json={"refresh_token": login.refresh_token})
    assert lost.status_code == 200
    again = await api.post(REFRESH, json={"refresh_token": login.refresh_token})
    assert again.status_code == 200, again.text
    assert again.json()["refresh_token"] == lost.json()["refresh_token"]
    assert again.json()["access_token"]
    for pair in (lost.json(), again.json()):
        headers = {"Authorization": f"Bearer {pair['access_token']}"}
        assert (await api.get("/api/v1/users/me", headers=headers)).status_code == 200
    assert await live_tokens(database_url, login.user_id) == 1

    # Either answer carries on: the successor rotates as any refresh token does.
    onwards = await api.post(REFRESH, json={"refresh_token": again.json()["refresh_token"]})
    assert onwards.status_code == 200, onwards.text
    me = await api.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {onwards.json()['access_token']}"}
    )
    assert me.status_code == 200
    assert await live_tokens(database_url, login.user_id) == 1


async def test_one_refresh_token_spent_twice_at_once_gives_both_the_same_successor(
    api: httpx.AsyncClient, database_url: str
) -> None:
    login = await sign_up(api, "jay@example.org")
    answers: list[httpx.Response] = []

    async def spend() -> None:
        answers.append(await api.post(REFRESH, json={"refresh_token": login.refresh_token}))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(spend)
        nursery.start_soon(spend)
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    assert answers[0].json()["refresh_token"] == answers[1].json()["refresh_token"]
    assert await live_tokens(database_url, login.user_id) == 1


async def test_a_refresh_token_spent_again_after_the_grace_revokes_everything(
    api: httpx.AsyncClient, database_url: str
) -> None:
    login = await sign_up(api, "kim@example.org")
    rotated = (await api.post(REFRESH, json={"refresh_token": login.refresh_token})).json()
    [before] = await sql(
        database_url, "SELECT token_generation FROM users WHERE id = $1", login.user_id
    )
    await past_the_grace(database_url)

    replay = await api.post(REFRESH, json={"refresh_token": login.refresh_token})
    assert replay.status_code == 401
    assert (
        await api.post(REFRESH, json={"refresh_token": rotated["refresh_token"]})
    ).status_code == 401
    assert await live_tokens(database_url, login.user_id) == 0
    [after] = await sql(
        database_url, "SELECT token_generation FROM users WHERE id = $1", login.user_id
    )
    assert after["token_generation"] == before["token_generation"] + 1
    headers = {"Authorization": f"Bearer {rotated['access_token']}"}
    assert (await api.get("/api/v1/users/me", headers=headers)).status_code == 401


async def test_after_a_logout_a_refresh_token_spent_within_the_grace_gets_nothing(
    api: httpx.AsyncClient, database_url: str
) -> None:
    login = await sign_up(api, "lee@example.org")
    rotated = (await api.post(REFRESH, json={"refresh_token": login.refresh_token})).json()
    headers = {"Authorization": f"Bearer {rotated['access_token']}"}
    assert (await api.post("/api/v1/auth/logout", headers=headers)).status_code == 204

    for token in (login.refresh_token, rotated["refresh_token"]):
        assert (await api.post(REFRESH, json={"refresh_token": token})).status_code == 401
    assert await live_tokens(database_url, login.user_id) == 0
    assert (await api.get("/api/v1/users/me", headers=headers)).status_code == 401


async def test_logout_ends_every_session_of_the_user_at_once(api: httpx.AsyncClient) -> None:
    phone = await sign_up(api, "gus@example.org")
    laptop = await log_in(api, "gus@example.org")
    other = await sign_up(api, "hal@example.org")

    response = await api.post("/api/v1/auth/logout", headers=phone.auth)
    assert response.status_code == 204
    for device in (phone, laptop):
        me = await api.get("/api/v1/users/me", headers=device.auth)
        assert me.status_code == 401
        assert me.headers["WWW-Authenticate"] == "Bearer"
        refresh = await api.post(
            "/api/v1/auth/refresh", json={"refresh_token": device.refresh_token}
        )
        assert refresh.status_code == 401
    # Another user's sessions are theirs.
    assert (await api.get("/api/v1/users/me", headers=other.auth)).status_code == 200
    again = await log_in(api, "gus@example.org")
    assert (await api.get("/api/v1/users/me", headers=again.auth)).status_code == 200


async def test_logout_needs_a_valid_access_token(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/v1/auth/logout")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"


async def test_an_access_token_cannot_be_used_to_refresh(api: httpx.AsyncClient) -> None:
    login = await sign_up(api, "erin@example.org")
    response = await api.post("/api/v1/auth/refresh", json={"refresh_token": login.access_token})
    assert response.status_code == 401


async def test_anonymous_and_forged_callers_get_401_with_a_bearer_challenge(
    api: httpx.AsyncClient, learner: Login
) -> None:
    for headers in ({}, {"Authorization": "Bearer not.a.jwt"}, {"Authorization": "Basic abc"}):
        response = await api.get("/api/v1/users/me", headers=headers)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert response.json()["error"]["code"] == "unauthenticated"
    forged = learner.access_token[:-4] + (
        "AAAA" if not learner.access_token.endswith("AAAA") else "BBBB"
    )
    response = await api.get("/api/v1/users/me", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401
