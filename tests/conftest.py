"""Test fixtures: one migrated throwaway database per run (SQLite, or MariaDB when asked), tables
emptied after each test, and small factories.

`STAGEPASS_TEST_DB=mariadb` runs the suite on a fresh MariaDB database (created here, dropped at
the end); otherwise on a SQLite file in a temporary folder. `make test` runs both.
"""

import contextlib
import functools
import os
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

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
    live.forget_unsent()  # a change an earlier test could not publish must not reach this one
    with app.app_context():
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


def empty_tables():
    from app.extensions import db

    db.session.remove()
    with db.engine.begin() as connection:
        for table in reversed(db.metadata.sorted_tables):
            connection.execute(table.delete())


@contextmanager
def app_with(app, **settings):
    """A second app on the same databases with some settings changed: its own engine and pool."""
    from app import create_app
    from app.extensions import db

    config = {key: value for key, value in app.config.items() if key.isupper()}
    other = create_app(type("ChangedConfig", (), {**config, **settings}))
    try:
        yield other
    finally:
        with other.app_context():
            db.engine.dispose()


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


# --- factories -----------------------------------------------------------------------------

PASSWORD = "correct-horse-battery"


@functools.cache
def password_hash(password):
    from werkzeug.security import generate_password_hash

    return generate_password_hash(password)


class Factory:
    def __init__(self):
        self.counter = 0

    def _next(self):
        self.counter += 1
        return self.counter

    def user(self, email=None, name=None, admin=False, password=PASSWORD):
        """A committed account. Its password hash is computed once per password and run: scrypt
        costs 0.1 s, and the suite creates hundreds of users (tests of accounts use the service)."""
        from app.extensions import db
        from app.models import User
        from app.services import accounts

        n = self._next()
        user = User(
            email=accounts.checked_email(email or f"user{n}-{secrets.token_hex(2)}@example.com"),
            name=name or f"User {n}",
            is_admin=admin,
            password_hash=password_hash(password),
        )
        db.session.add(user)
        db.session.commit()
        return user

    def admin(self, **kwargs):
        return self.user(admin=True, **kwargs)

    def event(
        self,
        name=None,
        rows=3,
        columns=4,
        status="published",
        days_ahead=30,
        categories=None,
        venue="Main Hall",
    ):
        from app.models import utcnow
        from app.services import events

        categories = categories or [events.CategorySpec("Standard", Decimal("25.00"))]
        event = events.create_event(
            name=name or f"Event {self._next()}",
            date=utcnow().replace(microsecond=0) + timedelta(days=days_ahead),
            rows=rows,
            columns=columns,
            categories=categories,
            venue=venue,
        )
        if status == "published":
            events.publish_event(event)
        elif status != "draft":
            from app.extensions import db

            event.status = status
            db.session.commit()
        return event


@pytest.fixture
def factory(app):
    return Factory()


@pytest.fixture
def sandbox_provider(monkeypatch):
    """A fresh sandbox card provider for this test, whose `charges` and `refunds` count the money it moved."""
    from app.services import payments

    provider = payments.SandboxCardProvider()
    monkeypatch.setattr(payments, "card_provider", provider)
    return provider


CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def csrf_token(client, path="/auth/login"):
    """The CSRF token of the client's session, read from a page's meta tag."""
    page = client.get(path)
    match = CSRF_META.search(page.get_data(as_text=True))
    assert match, f"no csrf meta tag on {path} ({page.status_code})"
    return match.group(1)


def log_in(client, user, password=PASSWORD):
    response = client.post(
        "/auth/login",
        data={"email": user.email, "password": password, "csrf_token": csrf_token(client)},
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    return response


@pytest.fixture
def login(client):
    """Log the test client in as a user: `login(user)`."""
    return lambda user, password=PASSWORD: log_in(client, user, password)


# --- real browser (Playwright driving Debian's Chromium) -------------------------------------

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "screenshots"


@pytest.fixture
def live_server(app):
    """The app served on a fresh free port from a thread, for the length of one test."""
    import threading

    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def app_servers(app, count, log_folder=None, **environment):
    """`count` separate app server processes (`flask run`, threaded) on free ports, sharing this
    test's database and Redis; yields their base URLs. With a log folder, each server's output is
    kept there as server-<n>.log."""
    env = dict(
        os.environ,
        DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
        REDIS_URL=app.config["REDIS_URL"],
        STAGEPASS_ENV="development",
        FLASK_APP="wsgi",
        FLASK_DEBUG="0",
        **environment,
    )
    servers, urls, logs = [], [], []
    try:
        for number in range(count):
            port = free_port()
            log = open(Path(log_folder) / f"server-{number}.log", "wb") if log_folder else subprocess.DEVNULL
            if log_folder:
                logs.append(log)
            servers.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "flask",
                        "run",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                        "--with-threads",
                        "--no-reload",
                    ],
                    cwd=ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
            urls.append(f"http://127.0.0.1:{port}")
        deadline = time.time() + 20
        for url in urls:
            while True:
                try:
                    socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=0.5).close()
                    break
                except OSError:
                    if time.time() > deadline:
                        pytest.fail(f"server {url} did not start")
                    time.sleep(0.1)
        yield urls
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=10)
        for log in logs:
            log.close()


@pytest.fixture
def two_servers(app):
    """Two app server processes on two ports, sharing this test's database and Redis."""
    with app_servers(app, 2) as urls:
        yield urls


@pytest.fixture(scope="session")
def chromium():
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: run `bash scripts/ensure-services.sh --browser` (installs Debian's chromium)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def new_page(chromium, live_server, request):
    """Open pages in fresh browser contexts (separate cookies, like separate people)."""
    contexts = []

    def open_page(base=None):
        context = chromium.new_context(viewport={"width": 1280, "height": 900})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.errors = []
        page.on("pageerror", lambda error: page.errors.append(str(error)))
        page.on(
            "console",
            lambda message: (
                page.errors.append(message.text)
                if message.type == "error" and "Content Security Policy" in message.text
                else None
            ),
        )
        page.base = base or live_server
        return page

    request.node.browser_contexts = contexts
    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_page):
    return new_page()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    for number, context in enumerate(getattr(item, "browser_contexts", [])):
        for index, page in enumerate(context.pages):
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            name = re.sub(r"[^\w.-]+", "_", item.nodeid) + f"-{number}-{index}"
            try:
                page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
                (ARTIFACTS / f"{name}.html").write_text(page.content())
            except Exception as error:  # a dead page must not hide the test's own failure
                print(f"could not save a screenshot of {name}: {error}")
                continue
            print(f"\nscreenshot of the failing page: {ARTIFACTS / name}.png")
            report.sections.append(("screenshot", str(ARTIFACTS / f"{name}.png")))
