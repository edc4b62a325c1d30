"""Extension objects, created unbound and initialised by the app factory."""

import logging
import math
import threading
import time

import limits.storage
import limits.strategies
import redis
import sqlalchemy as sa
from flask import current_app
from flask_babel import Babel
from flask_login import LoginManager
from flask_mailman import Mail
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from limits import RateLimitItem
from pymysql.constants import SERVER_STATUS
from sqlalchemy.orm import DeclarativeBase
from werkzeug.exceptions import TooManyRequests


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


class RateLimitExceeded(TooManyRequests):
    """A request over one of its rate limits: the description names the limit ("2 per 1 minute"),
    `retry_after` the seconds until that limit's window lets the next attempt through."""

    def __init__(self, limit: RateLimitItem, retry_after: int):
        super().__init__(str(limit), retry_after=retry_after)


# One round trip for all of a request's limits: each fixed-window counter goes up in turn (its
# window starts with its first hit), and the first that goes over stops the count, as if the
# limits were asked one after the other. KEYS: the counters; ARGV: amount and window of each.
_HIT_IN_ORDER = """
for index, key in ipairs(KEYS) do
    local count = redis.call("INCR", key)
    if count == 1 then
        redis.call("EXPIRE", key, ARGV[2 * index])
    end
    if count > tonumber(ARGV[2 * index - 1]) then
        return {index, redis.call("TTL", key)}
    end
end
return {0, 0}
"""


class RateLimiter:
    """Fixed-window rate limits counted in shared storage (Redis: one round trip per request, whatever
    the number of limits); while it does not answer, each process counts in memory (failing open),
    says so once, and looks at the storage again after 1, 2, 4... up to 32 seconds."""

    MAX_RETRY_SECONDS = 32

    def __init__(self):
        self.enabled = True
        self.storage: limits.storage.Storage | None = None
        self._where = "its storage"
        self._hit_in_order = None
        self._shared_window = None
        self._memory_window = None
        self._state_lock = threading.Lock()
        self._failing_open = False
        self._retry_at = 0.0
        self._retry_seconds = 1

    @property
    def failing_open(self) -> bool:
        """Whether this process limits in memory because the shared storage stopped answering."""
        return self._failing_open

    def init_app(self, app):
        """Bind to the app's storage (RATELIMIT_STORAGE_URI), which is taken to answer until it fails."""
        self.enabled = bool(app.config.get("RATELIMIT_ENABLED", True))
        uri = app.config["RATELIMIT_STORAGE_URI"]
        self._where = redacted_url(uri)
        self.storage = limits.storage.storage_from_string(uri, **_storage_options(app, uri))
        if isinstance(self.storage, limits.storage.RedisStorage):
            self._hit_in_order = self.storage.get_connection().register_script(_HIT_IN_ORDER)
        else:
            self._hit_in_order = None
        self._shared_window = limits.strategies.FixedWindowRateLimiter(self.storage)
        self._memory_window = limits.strategies.FixedWindowRateLimiter(limits.storage.MemoryStorage())
        self._failing_open, self._retry_at, self._retry_seconds = False, 0.0, 1

    def reset(self) -> None:
        """Forget every count, shared and in memory."""
        self.storage.reset()
        self._memory_window.storage.reset()

    def hit(self, counted: list[tuple[RateLimitItem, tuple[str, ...]]]) -> None:
        """Count a request against each (limit, identifiers) in turn; raise RateLimitExceeded at the
        first it breaks (the limits after it are not counted)."""
        if not self.enabled or not counted:
            return
        if self._failing_open and time.monotonic() < self._retry_at:
            return self._hit_in_memory(counted)
        try:
            breach = self._hit_shared(counted)
        except redis.RedisError as error:  # down, or no free connection in time: count in memory
            self._storage_failed(error)
            return self._hit_in_memory(counted)
        if self._failing_open:
            self._storage_answers()
        if breach is not None:
            raise breach

    def _hit_shared(self, counted):
        if self._hit_in_order is None:  # e.g. memory://: the library's own counting, limit by limit
            return self._hit_one_by_one(self._shared_window, counted)
        keys, args = [], []
        for limit, identifiers in counted:
            keys.append(self.storage.prefixed_key(limit.key_for(*identifiers)))
            args += (limit.amount, limit.get_expiry())
        index, ttl = self._hit_in_order(keys, args)
        if not index:
            return None
        limit = counted[int(index) - 1][0]
        return RateLimitExceeded(limit, _clamp(int(ttl), limit))

    def _hit_in_memory(self, counted) -> None:
        breach = self._hit_one_by_one(self._memory_window, counted)
        if breach is not None:
            raise breach

    @staticmethod
    def _hit_one_by_one(window, counted):
        for limit, identifiers in counted:
            if not window.hit(limit, *identifiers):
                seconds = math.ceil(window.get_window_stats(limit, *identifiers).reset_time - time.time())
                return RateLimitExceeded(limit, _clamp(seconds, limit))
        return None

    def _storage_failed(self, error) -> None:
        with self._state_lock:
            if self._failing_open:
                if time.monotonic() < self._retry_at:
                    return  # another request of this look at the storage already set the next one
                self._retry_seconds = min(self._retry_seconds * 2, self.MAX_RETRY_SECONDS)
            else:
                self._failing_open, self._retry_seconds = True, 1
                log.warning(
                    "Rate limits failing open: %s is unreachable (%s), so each process limits in memory "
                    "(limits are no longer shared between app servers) until it answers again.",
                    self._where,
                    error,
                )
            self._retry_at = time.monotonic() + self._retry_seconds

    def _storage_answers(self) -> None:
        with self._state_lock:
            if self._failing_open:
                self._failing_open = False
                log.info("Rate limits shared again: %s answers.", self._where)


def _clamp(seconds: int, limit: RateLimitItem) -> int:
    """Seconds until a window ends, within what a window can be."""
    return min(limit.get_expiry(), max(1, seconds))


def _storage_options(app, uri: str) -> dict:
    """The storage's options; a Redis storage gets a pool whose callers wait for a free connection.

    The pool redis-py makes by itself refuses a 101st connection ("Too many connections"), which
    would read as a dead Redis: in the 1,000-buyer rush the limits went to per-process memory.
    """
    options = dict(app.config.get("RATELIMIT_STORAGE_OPTIONS", {}))
    options.pop("connection_pool", None)
    if uri.startswith(("redis://", "rediss://", "unix://")):
        options["connection_pool"] = redis.BlockingConnectionPool.from_url(
            uri, max_connections=app.config["REDIS_MAX_CONNECTIONS"], timeout=2, **options
        )
    return options


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
# The limits themselves, per view, are in app/limits.py.
limiter = RateLimiter()


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


_script_shas: dict[str, str] = {}


def run_script(client, source: str, key_count: int, *keys_and_args):
    """Run a Lua script by its SHA (EVALSHA), loading it once per Redis (also after a restart):
    the script's text is not sent, nor hashed by Redis, on every call."""
    sha = _script_shas.get(source)
    if sha is not None:
        try:
            return client.evalsha(sha, key_count, *keys_and_args)
        except redis.exceptions.NoScriptError:
            pass
    _script_shas[source] = client.script_load(source)
    return client.evalsha(_script_shas[source], key_count, *keys_and_args)


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
