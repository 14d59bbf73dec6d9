import httpx


async def test_a_healthy_node_reports_its_database_and_redis(api: httpx.AsyncClient) -> None:
    for path in ("/health", "/api/v1/monitoring/health"):
        response = await api.get(path)
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "ok"
        assert {c["name"]: c["ok"] for c in body["components"]} == {
            "database": True,
            "actors": True,
            "redis": True,
        }
    assert response.headers["X-Request-ID"]
