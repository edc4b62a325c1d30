"""Helpers the tests share: factories, logging in, emptying tables, other apps and app servers.

Fixtures live in the conftest.py of the folder that needs them; these are plain functions and
classes a test imports.
"""

import contextlib
import functools
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

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


def empty_tables():
    from app.extensions import db
    from app.services.audit import APPEND_ONLY_BYPASS

    db.session.remove()
    # The audit trail is append-only; emptying the whole test database is the one named exception.
    with db.engine.begin() as connection:
        connection = connection.execution_options(**APPEND_ONLY_BYPASS)
        for table in reversed(db.metadata.sorted_tables):
            connection.execute(table.delete())


@contextlib.contextmanager
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
    servers, urls = [], []
    with contextlib.ExitStack() as logs:
        try:
            yield from _serve(servers, urls, count, env, log_folder, logs)
        finally:
            for server in servers:
                server.terminate()
                server.wait(timeout=10)


def _serve(servers, urls, count, env, log_folder, logs):
    for number in range(count):
        port = free_port()
        log_path = Path(log_folder) / f"server-{number}.log" if log_folder else None
        log = logs.enter_context(open(log_path, "wb")) if log_path else None  # noqa: SIM115 (the stack closes it)
        command = [sys.executable, "-m", "flask", "run", "--host", "127.0.0.1", "--port", str(port)]
        command += ["--with-threads", "--no-reload"]
        servers.append(
            subprocess.Popen(command, cwd=ROOT, env=env, stdout=log or subprocess.DEVNULL, stderr=subprocess.STDOUT)
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
