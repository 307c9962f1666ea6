"""The shared-breaker tests use the limits tests' private redis-server fixtures."""
from tests.limits.conftest import redis_server, redis_url  # noqa: F401
