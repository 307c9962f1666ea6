"""A private redis-server for the shared-breaker tests (see tests/limits/redis_server.py)."""
from __future__ import annotations

import pytest
import redis

from tests.limits.redis_server import RedisServer


@pytest.fixture(scope="module")
def redis_server():
    server = RedisServer()
    server.start()
    yield server
    server.close()


@pytest.fixture
def redis_url(redis_server):
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushall()
    return redis_server.url
