"""The task rate limit in Redis (REDIS_URL): one budget across app instances, no key material, outages tolerated.

Uses the test run's own redis-server (tests/redis_fixtures.py). The apps here mount only what the limit needs
(auth, the limit, the envelope and a stand-in for POST /api/tasks): the limiter is the part under test.
"""

from __future__ import annotations

import uuid

import pytest
import redis
from flask import Flask

from alex.errors import register_errorhandlers
from alex.security import register_auth
from alex.security.limits import rate_limited, register_limits
from tests.e2e.server import free_port

KEY = "redis-test-key-0123456789"


@pytest.fixture
def redis_client(redis_url):
    """A client of the test run's Redis."""
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=2)
    yield client
    client.close()


@pytest.fixture
def key_prefix(redis_client):
    """A prefix of this test's own; its keys are deleted afterwards."""
    prefix = f"alex-test-{uuid.uuid4().hex}"
    yield prefix
    for key in redis_client.scan_iter(match=f"*{prefix}*"):
        redis_client.delete(key)


@pytest.fixture
def make_limited_app(make_config):
    """Apps whose POST /api/tasks is rate limited as in alex; their limiter connections are closed afterwards."""
    apps: list[Flask] = []

    def make(key_prefix: str, **settings: str) -> Flask:
        config = make_config(**settings)
        app = Flask("limits-redis-test")
        register_auth(app, config)
        app.add_url_rule("/api/tasks", "tasks.create_task", rate_limited(accept_task), methods=["POST"])
        register_limits(app, config, key_prefix=key_prefix)
        register_errorhandlers(app)
        apps.append(app)
        return app

    yield make
    for app in apps:
        for limiter in app.extensions.get("limiter", ()):
            limiter.storage.storage.close()


def accept_task():
    """Stands in for the task endpoint: what is limited is reaching it."""
    return {"status": "accepted"}, 202


def post_task(app, key: str | None = None):
    """POST /api/tasks through a new test client."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return app.test_client().post("/api/tasks", json={"task": "say hi"}, headers=headers)


def test_two_app_instances_share_one_budget_in_redis(make_limited_app, key_prefix, redis_url):
    first = make_limited_app(key_prefix, REDIS_URL=redis_url, ALEX_RATE_LIMIT="3/minute")
    second = make_limited_app(key_prefix, REDIS_URL=redis_url, ALEX_RATE_LIMIT="3/minute")
    assert [post_task(first).status_code, post_task(first).status_code, post_task(second).status_code] == [202] * 3
    for app in (second, first):
        response = post_task(app)
        assert response.status_code == 429
        assert response.get_json()["error"]["code"] == "rate_limited"
        assert 1 <= int(response.headers["Retry-After"]) <= 60


def test_another_prefix_is_another_budget(make_limited_app, key_prefix, redis_client, redis_url):
    other_prefix = f"{key_prefix}-other"
    first = make_limited_app(key_prefix, REDIS_URL=redis_url, ALEX_RATE_LIMIT="1/minute")
    other = make_limited_app(other_prefix, REDIS_URL=redis_url, ALEX_RATE_LIMIT="1/minute")
    assert post_task(first).status_code == 202
    assert post_task(first).status_code == 429
    assert post_task(other).status_code == 202


def test_redis_keys_name_the_owner_id_never_the_api_key_and_expire(make_limited_app, key_prefix, redis_client,
                                                                   redis_url):
    app = make_limited_app(key_prefix, REDIS_URL=redis_url, ALEX_RATE_LIMIT="1/minute", ALEX_API_KEYS=KEY)
    assert post_task(app, KEY).status_code == 202
    assert post_task(app, KEY).status_code == 429
    keys = [key.decode() for key in redis_client.scan_iter(match=f"*{key_prefix}*")]
    assert keys and all("owner:key-" in key for key in keys), keys
    assert not any(KEY in key for key in keys)
    assert all(0 < redis_client.ttl(key) <= 60 for key in keys)


def test_a_redis_outage_neither_fails_submissions_nor_lifts_the_limit(make_limited_app, key_prefix):
    down = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    app = make_limited_app(key_prefix, REDIS_URL=down, ALEX_RATE_LIMIT="2/minute")
    assert [post_task(app).status_code for _ in range(2)] == [202, 202]
    response = post_task(app)
    assert response.status_code == 429  # counted in this process's memory meanwhile
    assert response.get_json()["error"]["code"] == "rate_limited"
    assert 1 <= int(response.headers["Retry-After"]) <= 60
