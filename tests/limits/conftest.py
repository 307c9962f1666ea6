"""Fixtures for the limits tests: a private redis-server, a manual clock, exchange builders."""
from __future__ import annotations

import pytest
import redis

from proxy.limits.clock import ManualClock

from .redis_server import RedisServer


@pytest.fixture(scope="session")
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


@pytest.fixture
def private_redis():
    """A server of the test's own, to kill and restart."""
    server = RedisServer()
    server.start()
    yield server
    server.close()


@pytest.fixture
def clock():
    return ManualClock()
