"""Redis for trio code: a redis.asyncio client behind the bridge.

Redis carries what several nodes share (room events across nodes, the shared cache tier); with
no `LMS_REDIS_URL` a single node runs without it.
"""

from __future__ import annotations

import redis.asyncio
import redis.exceptions

from lms.store import bridge


class RedisUnavailable(Exception):
    """Redis could not be reached."""


class RedisLink:
    def __init__(self, client: redis.asyncio.Redis) -> None:
        self.client = client

    @classmethod
    async def connect(cls, url: str) -> RedisLink:
        client = redis.asyncio.Redis.from_url(
            url, socket_connect_timeout=5, health_check_interval=30
        )
        link = cls(client)
        await link.ping()
        return link

    async def ping(self) -> None:
        try:
            await bridge.call(self.client.ping)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
            raise RedisUnavailable(f"Redis is unavailable: {exc}") from exc

    async def close(self) -> None:
        await bridge.call(self.client.aclose)
