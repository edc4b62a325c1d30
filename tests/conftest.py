"""Test fixtures: one migrated throwaway database per run (SQLite, or MariaDB when asked), tables
emptied after each test, and small factories.

`STAGEPASS_TEST_DB=mariadb` runs the suite on a fresh MariaDB database (created here, dropped at
the end); otherwise on a SQLite file in a temporary folder. `make test` runs both.
"""

import os
import secrets
import tempfile
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from tests.support import PASSWORD, Factory, empty_tables, log_in

MARIADB_SERVER_URL = os.environ.get("TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306")
REDIS_SERVER_URL = os.environ.get("TEST_REDIS_SERVER_URL", "redis://127.0.0.1:6379")
# 0 is the default for development and holds the claims, 9 is the benchmarks'.
TEST_REDIS_DATABASES = [*range(10, 16), *range(1, 9)]
BACKEND = os.environ.get("STAGEPASS_TEST_DB", "sqlite")


def _create_database():
    if BACKEND == "mariadb":
        name = f"stagepass_test_{os.getpid()}_{secrets.token_hex(3)}"
        server = sa.create_engine(MARIADB_SERVER_URL, isolation_level="AUTOCOMMIT")
        with server.connect() as connection:
            connection.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
        server.dispose()

        def drop():
            server = sa.create_engine(MARIADB_SERVER_URL, isolation_level="AUTOCOMMIT")
            with server.connect() as connection:
                connection.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
            server.dispose()

        return f"{MARIADB_SERVER_URL}/{name}?charset=utf8mb4", drop
    if BACKEND != "sqlite":
        raise pytest.UsageError(f"STAGEPASS_TEST_DB must be sqlite or mariadb, not {BACKEND!r}")
    folder = tempfile.TemporaryDirectory(prefix="stagepass-test-")
    return f"sqlite:///{Path(folder.name) / 'test.sqlite'}", folder.cleanup


def _claim_redis_database():
    """A Redis database of its own for this run (TEST_REDIS_URL forces one).

    Tests empty their Redis database and listen to its channels; two runs on one machine (a
    developer's and CI's) sharing one would see each other's messages and wipe each other's jobs.
    The claims live in database 0. A claim whose process is gone (a run that was killed) is taken
    over at once; the expiry only covers a claim made on another host.
    """
    import redis

    if os.environ.get("TEST_REDIS_URL"):
        return os.environ["TEST_REDIS_URL"], lambda: None
    registry = redis.Redis.from_url(f"{REDIS_SERVER_URL}/0")
    claim = f"{os.getpid()}-{secrets.token_hex(3)}"
    for number in TEST_REDIS_DATABASES:
        key = f"stagepass:test-run-claims:db{number}"
        if _claimed_by_dead_process(registry.get(key)):
            registry.delete(key)
        if registry.set(key, claim, nx=True, ex=3 * 3600):

            def release(key=key):
                if registry.get(key) == claim.encode():
                    registry.delete(key)

            return f"{REDIS_SERVER_URL}/{number}", release
    raise pytest.UsageError(f"every test Redis database ({list(TEST_REDIS_DATABASES)}) is claimed by another run")


def _claimed_by_dead_process(claim: bytes | None) -> bool:
    if claim is None:
        return False
    try:
        os.kill(int(claim.split(b"-")[0]), 0)
    except ProcessLookupError:
        return True
    except (ValueError, PermissionError):
        return False
    return False


def pytest_report_header(config):
    return f"StagePass test database: {BACKEND}"


def pytest_collection_modifyitems(config, items):
    # MariaDB-only tests (row locks, KILL, 1213/1205) run in the MariaDB pass of `make test`.
    if BACKEND != "mariadb":
        deselected = [item for item in items if item.get_closest_marker("mariadb")]
        if deselected:
            config.hook.pytest_deselected(items=deselected)
            items[:] = [item for item in items if not item.get_closest_marker("mariadb")]


@pytest.fixture(scope="session")
def database_url():
    url, drop = _create_database()
    os.environ["TEST_DATABASE_URL"] = url
    yield url
    drop()


@pytest.fixture(scope="session")
def redis_url():
    import redis

    url, release = _claim_redis_database()
    database = redis.Redis.from_url(url)
    database.flushdb()  # what an earlier run left (counters, jobs) is not this run's
    yield url
    database.flushdb()
    release()


class FreshContextClient(FlaskClient):
    """A test client whose every request (and every redirect it follows) runs in its own app context.

    Tests hold an app context open for their own database work; a request pushed inside it would
    share its `g`, so Flask-Login's cached user and Flask-WTF's CSRF token would leak from one
    client's request into another's. Its own context also gives each request its own database
    session, as in production: objects the test loaded earlier must be re-read to see its changes.
    """

    def run_wsgi_app(self, environ, buffered=False):
        with self.application.app_context():
            return super().run_wsgi_app(environ, buffered=buffered)


@pytest.fixture(scope="session")
def app(database_url, redis_url):
    from flask_migrate import upgrade

    from app import create_app
    from config import TestConfig, engine_options_for

    class SessionTestConfig(TestConfig):
        SQLALCHEMY_DATABASE_URI = database_url
        SQLALCHEMY_ENGINE_OPTIONS = engine_options_for(database_url)
        REDIS_URL = RATELIMIT_STORAGE_URI = redis_url

    app = create_app(SessionTestConfig)
    app.test_client_class = FreshContextClient
    reset_rate_limiter(app)
    with app.app_context():
        upgrade()
    yield app
    with app.app_context():
        from app.extensions import db

        db.engine.dispose()


@pytest.fixture(autouse=True)
def app_context(app):
    """Each test runs in an app context and leaves every table empty behind it."""
    from app.services import live, seatmap

    saved_config = dict(app.config)
    seatmap.forget_rendered_maps()
    with app.app_context():
        live.forget_unsent()  # a change an earlier test could not publish must not reach this one
        yield
    app.config.clear()
    app.config.update(saved_config)
    reset_rate_limiter(app)
    with app.app_context():
        empty_tables()


def reset_rate_limiter(app):
    """Limits off, counting in the run's Redis and not failing open, whatever the last test did.

    The limiter is one object for every app: a test that builds another app (`simulate-booking`
    does) or points it at another storage rebinds it for all the tests after it.
    """
    from app.extensions import limiter

    limiter.init_app(app)
    limiter.enabled = False  # the rate-limit tests switch it on; others log in far more often


@pytest.fixture
def db_session(app):
    from app.extensions import db

    return db.session


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def redis_client(app):
    """The test Redis database, emptied before and after the test."""
    import redis

    client = redis.Redis.from_url(app.config["REDIS_URL"])
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def private_redis(tmp_path):
    """A redis-server of this test's own that it may stop and start again (see tests/redis_server.py)."""
    from tests.redis_server import PrivateRedis

    server = PrivateRedis(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def app_on_private_redis(app, private_redis, monkeypatch):
    """The app with its Redis (client, live channels and hub) on a private server the test may stop."""
    from app import extensions
    from app.services import live

    monkeypatch.setitem(app.config, "REDIS_URL", private_redis.url)
    monkeypatch.delitem(app.extensions, "stagepass_redis", raising=False)
    monkeypatch.setattr(extensions, "_redis_down_until", [0.0])
    yield private_redis
    live.forget_hub(private_redis.url)


@pytest.fixture
def factory(app):
    return Factory()


@pytest.fixture
def sandbox_provider(app, monkeypatch):
    """A fresh sandbox card provider for this test (its own Redis namespace), whose `charges` and
    `refunds` count the money it moved."""
    from app.services import payments_provider, payments_sandbox

    provider = payments_sandbox.SandboxCardProvider(
        app.config["REDIS_URL"], namespace=f"stagepass:test-sandbox:{secrets.token_hex(6)}"
    )
    monkeypatch.setitem(app.extensions, payments_provider.EXTENSION_KEY, provider)
    return provider


@pytest.fixture
def admin(factory, login):
    """A logged-in admin."""
    user = factory.admin()
    login(user)
    return user


@pytest.fixture
def login(client):
    """Log the test client in as a user: `login(user)`."""
    return lambda user, password=PASSWORD: log_in(client, user, password)
