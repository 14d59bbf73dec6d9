"""Bad input gets a clear JSON error with the right status, never a 500 or a traceback."""

import httpx
import pytest

from tests.lms.http.conftest import PASSWORD, Login

REGISTER = "/api/v1/auth/register"


def assert_error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == code
    assert "Traceback" not in response.text
    return error["message"]


async def test_malformed_json_is_a_400(api: httpx.AsyncClient) -> None:
    response = await api.post(
        REGISTER, content=b'{"email": ', headers={"Content-Type": "application/json"}
    )
    assert "not valid JSON" in assert_error(response, 400, "bad_json")


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ({"email": 5, "password": PASSWORD, "name": "A"}, "$.email"),
        ({"email": "a@b.co", "password": PASSWORD}, "name"),
        ({"email": "a@b.co", "password": PASSWORD, "name": "A", "admin": True}, "admin"),
        ({"email": "not-an-address", "password": PASSWORD, "name": "A"}, "$.email"),
        ({"email": "a@b.co", "password": "short", "name": "A"}, "$.password"),
        ([1, 2, 3], "object"),
    ],
)
async def test_a_body_of_the_wrong_shape_is_a_422_naming_the_field(
    api: httpx.AsyncClient, body: object, names: str
) -> None:
    response = await api.post(REGISTER, json=body)
    assert names in assert_error(response, 422, "invalid")


async def test_numbers_are_not_coerced_from_strings(
    api: httpx.AsyncClient, instructor: Login
) -> None:
    response = await api.post(
        "/api/v1/courses",
        json={"title": "T", "completion_threshold": "0.5"},
        headers=instructor.auth,
    )
    assert_error(response, 422, "invalid")


async def test_an_oversized_body_is_a_413(api: httpx.AsyncClient) -> None:
    body = b'{"email": "' + b"a" * 200_000 + b'"}'
    response = await api.post(REGISTER, content=body, headers={"Content-Type": "application/json"})
    assert_error(response, 413, "request_entity_too_large")


async def test_a_non_json_body_is_a_415(api: httpx.AsyncClient) -> None:
    response = await api.post(REGISTER, content=b"email=a", headers={"Content-Type": "text/plain"})
    assert_error(response, 415, "unsupported_media_type")


async def test_unknown_routes_and_methods_answer_in_json(api: httpx.AsyncClient) -> None:
    assert_error(await api.get("/api/v1/nothing-here"), 404, "not_found")
    assert_error(await api.delete("/api/v1/auth/login"), 405, "method_not_allowed")


async def test_one_connection_survives_errors_raised_before_the_body_was_read(
    api: httpx.AsyncClient, learner: Login
) -> None:
    # 401s and 413s are answered without the handler reading the body; the keep-alive connection
    # must still serve the next request (a hang here was seen on this stack, see STACK.md).
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(base_url=str(api.base_url), limits=limits, timeout=5) as one:
        for _ in range(3):
            unauth = await one.post("/api/v1/courses", json={"title": "x" * 5000})
            assert unauth.status_code == 401
            big = await one.post(
                REGISTER, content=b"x" * 100_000, headers={"Content-Type": "application/json"}
            )
            assert big.status_code == 413
            me = await one.get("/api/v1/users/me", headers=learner.auth)
            assert me.status_code == 200


async def test_the_api_is_described_by_openapi_and_browsable(api: httpx.AsyncClient) -> None:
    spec = (await api.get("/openapi.json")).json()
    paths = spec["paths"]
    for path in (
        "/api/v1/auth/register",
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/courses",
        "/api/v1/courses/{course_id}/contents",
        "/api/v1/courses/{course_id}/enroll",
        "/api/v1/users/me",
        "/api/v1/users/{user_id}",
        "/health",
    ):
        assert path in paths, path
    register = paths["/api/v1/auth/register"]["post"]
    schema = register["requestBody"]["content"]["application/json"]["schema"]
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"email", "password", "name"}
    docs = await api.get("/docs")
    assert docs.status_code == 200
    assert "openapi.json" in docs.text
