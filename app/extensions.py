"""Extension objects, created unbound and initialised by the app factory."""

import logging
import threading
import time

import flask_limiter
import redis
import sqlalchemy as sa
from flask import current_app, has_app_context
from flask_babel import Babel
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_mailman import Mail
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from pymysql.constants import SERVER_STATUS
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    # Named constraints keep migrations portable: SQLite batch mode and MariaDB both need names.
    metadata = sa.MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


log = logging.getLogger(__name__)


def redacted_url(url: str) -> str:
    """A storage URL fit for logs and health pages: the password masked."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL is shown by its scheme only
        return url.split(":", 1)[0] + "://..."


class _StorageStateWatcher(logging.Handler):
    """Follows Flask-Limiter's own reports, on its public `flask-limiter` logger, of falling back to
    in-memory limits and of its storage recovering: the only public signal of either."""

    FAILED = "falling back to in-memory storage"
    RECOVERED = "storage recovered"

    def __init__(self, limiter):
        super().__init__(level=logging.INFO)
        self.limiter = limiter

    def emit(self, record):
        message = record.getMessage()
        if self.FAILED in message:
            self.limiter._storage_state_changed(failing_open=True)
        elif self.RECOVERED in message:
            self.limiter._storage_state_changed(failing_open=False)


class Limiter(flask_limiter.Limiter):
    """Flask-Limiter that says, once per outage, when its storage fails and when it is back."""

    def __init__(self, *args, **kwargs):
        self._failing_open = False
        self._state_lock = threading.Lock()
        self._watcher = _StorageStateWatcher(self)
        super().__init__(*args, **kwargs)

    def _storage_state_changed(self, *, failing_open: bool) -> None:
        with self._state_lock:
            if failing_open != self._failing_open:
                self._log_change(failing_open)
            self._failing_open = failing_open

    @property
    def failing_open(self) -> bool:
        """Whether this process limits in memory because the shared storage stopped answering."""
        return self._failing_open

    def init_app(self, app):
        """Bind to the app's storage, which is taken to answer until it fails."""
        self._failing_open = False
        _wait_for_redis_connections(app)
        super().init_app(app)
        limiter_log = self.logger
        if self._watcher not in limiter_log.handlers:
            limiter_log.addHandler(self._watcher)
        if limiter_log.getEffectiveLevel() > logging.INFO:
            limiter_log.setLevel(logging.INFO)

    @staticmethod
    def _log_change(dead: bool) -> None:
        where = redacted_url(current_app.config["RATELIMIT_STORAGE_URI"]) if has_app_context() else "its storage"
        if dead:
            log.warning(
                "Rate limits failing open: %s is unreachable, so each process limits in memory "
                "(limits are no longer shared between app servers) until it answers again.",
                where,
            )
        else:
            log.info("Rate limits shared again: %s answers.", where)


def _wait_for_redis_connections(app) -> None:
    """Give a Redis storage of the limits a pool whose callers wait for a free connection.

    The pool redis-py makes by itself refuses a 101st connection ("Too many connections"), which
    Flask-Limiter takes for a dead Redis: in the 1,000-buyer rush the limits went to per-process
    memory. Made again at every init_app, for the storage URI the app has then.
    """
    uri = app.config.get("RATELIMIT_STORAGE_URI") or ""
    if not uri.startswith(("redis://", "rediss://", "unix://")):
        return
    options = {
        key: value for key, value in app.config.get("RATELIMIT_STORAGE_OPTIONS", {}).items() if key != "connection_pool"
    }
    pool = redis.BlockingConnectionPool.from_url(
        uri, max_connections=app.config["REDIS_MAX_CONNECTIONS"], timeout=2, **options
    )
    app.config["RATELIMIT_STORAGE_OPTIONS"] = {**options, "connection_pool": pool}


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
# Per-IP by default; the views that act for an account add a per-user limit (app/limits.py).
limiter = Limiter(key_func=get_remote_address)


def configure_engines(app):
    """Session settings every new MySQL/MariaDB connection of the app's engines starts with, and
    how a connection is reset when it goes back to the pool."""
    seconds = int(app.config["DB_LOCK_WAIT_SECONDS"])

    def set_lock_wait(dbapi_connection, _connection_record):
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f"SET SESSION innodb_lock_wait_timeout = {seconds}")

    with app.app_context():
        engines = list(db.engines.values())
    for engine in engines:
        if engine.dialect.name in ("mysql", "mariadb"):
            sa.event.listen(engine, "connect", set_lock_wait)
            sa.event.listen(engine, "reset", roll_back_if_in_transaction)
            ping_after_idle(engine, float(app.config.get("DB_PING_AFTER_IDLE_SECONDS", 30)))


def ping_after_idle(engine, idle_seconds: float) -> None:
    """Check a pooled connection at checkout only if it sat idle for more than `idle_seconds`.

    pool_pre_ping costs a round trip on every checkout, i.e. every request. A connection in steady
    use cannot have timed out, so only one that waited in the pool is pinged; a dead one is replaced
    before the request sees it. A connection that dies while in use (a server restart in the middle
    of the traffic) fails its statement: units of work run again on a fresh connection, and the
    engine invalidates the rest of the pool, so the other requests get fresh connections too.
    """

    def note_idle_since(_dbapi_connection, connection_record):
        connection_record.info["idle_since"] = time.monotonic()

    def ping_if_it_was_idle(dbapi_connection, connection_record, _connection_proxy):
        idle_since = connection_record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since <= idle_seconds:
            return
        try:
            dbapi_connection.ping(reconnect=False)
        except Exception as error:  # any failure: the pool drops it and checks out another
            raise sa.exc.DisconnectionError(f"idle connection gone: {error}") from error

    sa.event.listen(engine, "checkin", note_idle_since)
    sa.event.listen(engine, "checkout", ping_if_it_was_idle)


def roll_back_if_in_transaction(dbapi_connection, _connection_record, reset_state):
    """Pool reset for MySQL/MariaDB (the engines run with pool_reset_on_return=None).

    SQLAlchemy's own reset sends ROLLBACK even after a commit: a round trip on every request that
    wrote. The server says in each reply whether a transaction is open; roll back only then.
    """
    if reset_state.terminate_only:
        return
    if dbapi_connection.server_status & SERVER_STATUS.SERVER_STATUS_IN_TRANS:
        dbapi_connection.rollback()


def get_redis():
    """The app's Redis client (one connection pool per process, created on first use)."""
    client = current_app.extensions.get("stagepass_redis")
    if client is None:
        # A blocking pool: under a rush (hundreds of gevent requests at once) callers wait a
        # moment for a connection instead of failing with "too many connections".
        pool = redis.BlockingConnectionPool.from_url(
            current_app.config["REDIS_URL"],
            max_connections=current_app.config["REDIS_MAX_CONNECTIONS"],
            timeout=2,
            socket_connect_timeout=1,
            socket_timeout=2,
        )
        client = redis.Redis(connection_pool=pool)
        current_app.extensions["stagepass_redis"] = client
    return client


REDIS_RETRY_AFTER_SECONDS = 5.0
_redis_down_until = [0.0]


def redis_call(operation, default=None):
    """Run `operation(client)` against Redis, or return `default` if Redis is unreachable.

    After a failure Redis is left alone for a few seconds, so a dead Redis costs requests nothing
    instead of a connect timeout each: nothing that sells tickets depends on it.
    """
    if time.monotonic() < _redis_down_until[0]:
        return default
    try:
        return operation(get_redis())
    except redis.RedisError as error:
        if _pool_busy(error):
            # Every connection of this process's pool stayed in use past its timeout: this request
            # goes without, but Redis answers; leaving it alone would stand the waiting room aside
            # for everyone for seconds (measured in the 5,000-buyer rush with kept-alive clients).
            log.info("Redis connection pool busy; this request carries on without Redis")
            return default
        _redis_down_until[0] = time.monotonic() + REDIS_RETRY_AFTER_SECONDS
        log.warning("Redis unavailable, carrying on without it for %ss: %s", REDIS_RETRY_AFTER_SECONDS, error)
        return default


def _pool_busy(error: redis.RedisError) -> bool:
    """BlockingConnectionPool's timeout (redis-py has no class of its own for it)."""
    return isinstance(error, redis.ConnectionError) and str(error) == "No connection available."


babel = Babel()
# Email (Flask-Mailman): app/services/mail.py picks the backend and its settings at each send.
mailman = Mail()
