"""A busy Redis connection pool is not a dead Redis: one request goes without, the rest go on."""

import redis

from app import extensions


def test_a_busy_pool_costs_one_request_not_seconds_of_everyones(app, redis_client, monkeypatch):
    monkeypatch.setattr(extensions, "_redis_down_until", [0.0])
    pool = redis.BlockingConnectionPool.from_url(app.config["REDIS_URL"], max_connections=1, timeout=0.05)
    monkeypatch.setitem(app.extensions, "stagepass_redis", redis.Redis(connection_pool=pool))
    taken = pool.get_connection()
    try:
        assert extensions.redis_call(lambda client: client.ping(), default="without") == "without"
        assert extensions._redis_down_until[0] == 0.0  # not taken for an outage
    finally:
        pool.release(taken)
    assert extensions.redis_call(lambda client: client.ping(), default="without") is True


def test_an_unreachable_redis_is_left_alone_for_a_while(app, monkeypatch):
    monkeypatch.setattr(extensions, "_redis_down_until", [0.0])  # the next tests' Redis is up
    pool = redis.BlockingConnectionPool.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    monkeypatch.setitem(app.extensions, "stagepass_redis", redis.Redis(connection_pool=pool))
    assert extensions.redis_call(lambda client: client.ping(), default="without") == "without"
    assert extensions._redis_down_until[0] > 0.0
