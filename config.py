"""Configuration classes, read from environment variables with safe development defaults."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
INSTANCE_DIR = BASE_DIR / "instance"


def _int(name, default):
    return int(os.environ.get(name, default))


def engine_options_for(url):
    """Engine options per backend: row locks need READ COMMITTED on MySQL/MariaDB."""
    if url.startswith("mysql"):
        return {
            "isolation_level": "READ COMMITTED",
            "pool_pre_ping": True,
            # app.extensions.roll_back_if_in_transaction resets connections instead
            "pool_reset_on_return": None,
            "pool_recycle": 3600,
            "pool_size": _int("DB_POOL_SIZE", 10),
            "max_overflow": _int("DB_MAX_OVERFLOW", 20),
        }
    if url.startswith("sqlite"):
        # Threads of one process share the file; wait for the write lock instead of failing.
        return {"connect_args": {"timeout": 30, "check_same_thread": False}}
    return {"pool_pre_ping": True}


class Config:
    SECRET_KEY = os.environ.get("SECRET_KEY") or "dev-only-insecure-key"
    SQLALCHEMY_DATABASE_URI = os.environ.get("DATABASE_URL", f"sqlite:///{INSTANCE_DIR / 'stagepass.sqlite'}")
    SQLALCHEMY_ENGINE_OPTIONS = engine_options_for(SQLALCHEMY_DATABASE_URI)
    REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    REDIS_MAX_CONNECTIONS = _int("REDIS_MAX_CONNECTIONS", 200)

    HOLD_TTL_SECONDS = _int("HOLD_TTL_SECONDS", 300)
    MAX_SEAT_ROWS = _int("MAX_SEAT_ROWS", 20)
    MAX_SEAT_COLUMNS = _int("MAX_SEAT_COLUMNS", 20)
    MAX_SEATS_PER_ORDER = _int("MAX_SEATS_PER_ORDER", 6)
    WAITLIST_OFFER_MINUTES = _int("WAITLIST_OFFER_MINUTES", 30)
    HOLD_EXTENSION_SECONDS = _int("HOLD_EXTENSION_SECONDS", 120)
    SEAT_LOCK_RETRIES = _int("SEAT_LOCK_RETRIES", 5)
    # innodb_lock_wait_timeout of every MySQL/MariaDB connection (the server's default is 50 s):
    # a transaction stuck behind a long-held row lock gives up after this and says "busy".
    DB_LOCK_WAIT_SECONDS = _int("DB_LOCK_WAIT_SECONDS", 5)
    # Larger request bodies are refused with 413 before anything reads them: the biggest real
    # ones (admin forms, a hold of MAX_SEATS_PER_ORDER ids) are a few kilobytes.
    MAX_CONTENT_LENGTH = _int("MAX_CONTENT_LENGTH", 1024 * 1024)
    SSE_HEARTBEAT_SECONDS = _int("SSE_HEARTBEAT_SECONDS", 15)

    # How many reverse proxies (nginx: 1) stand in front and append the client to X-Forwarded-For.
    # 0 trusts no forwarding header: per-IP limits then count the peer's own address.
    TRUSTED_PROXY_COUNT = _int("TRUSTED_PROXY_COUNT", 0)

    # Rate limits (Flask-Limiter on Redis, so they hold across app servers). Generous enough that
    # real buyers in an on-sale rush never meet them; tight enough to stop scripts.
    RATELIMIT_ENABLED = os.environ.get("RATELIMIT_ENABLED", "1") == "1"
    RATELIMIT_STORAGE_URI = os.environ.get("RATELIMIT_STORAGE_URI", REDIS_URL)
    RATELIMIT_STORAGE_OPTIONS = {"socket_connect_timeout": 1, "socket_timeout": 1}
    # No X-RateLimit-* headers: they cost every limited request a Redis read; 429s say Retry-After.
    RATELIMIT_HEADERS_ENABLED = False
    # Redis down: keep selling. Errors are logged and each process limits in memory meanwhile.
    RATELIMIT_SWALLOW_ERRORS = True
    RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
    RATELIMIT_LOGIN_PER_IP = os.environ.get("RATELIMIT_LOGIN_PER_IP", "30 per minute")
    RATELIMIT_LOGIN_PER_ACCOUNT = os.environ.get("RATELIMIT_LOGIN_PER_ACCOUNT", "10 per minute")
    RATELIMIT_REGISTER_PER_IP = os.environ.get("RATELIMIT_REGISTER_PER_IP", "20 per hour")
    RATELIMIT_HOLD_PER_USER = os.environ.get("RATELIMIT_HOLD_PER_USER", "30 per minute")
    RATELIMIT_HOLD_PER_IP = os.environ.get("RATELIMIT_HOLD_PER_IP", "600 per minute")
    RATELIMIT_PAY_PER_USER = os.environ.get("RATELIMIT_PAY_PER_USER", "20 per minute")
    RATELIMIT_PAY_PER_IP = os.environ.get("RATELIMIT_PAY_PER_IP", "300 per minute")

    REMEMBER_COOKIE_DURATION = 60 * 60 * 24 * 30
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    WTF_CSRF_TIME_LIMIT = None
    PRODUCTION = False
    BABEL_DEFAULT_LOCALE = "en"
    BABEL_DEFAULT_TIMEZONE = "UTC"
    BABEL_TRANSLATION_DIRECTORIES = str(BASE_DIR / "app" / "translations")


class DevelopmentConfig(Config):
    DEBUG = True


class ProductionConfig(Config):
    PRODUCTION = True
    SECRET_KEY = os.environ.get("SECRET_KEY")
    SESSION_COOKIE_SECURE = True
    REMEMBER_COOKIE_SECURE = True


class TestConfig(Config):
    TESTING = True
    SECRET_KEY = "test-secret-key"
    SQLALCHEMY_DATABASE_URI = os.environ.get("TEST_DATABASE_URL", "sqlite://")
    SQLALCHEMY_ENGINE_OPTIONS = engine_options_for(SQLALCHEMY_DATABASE_URI)
    REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    RATELIMIT_STORAGE_URI = REDIS_URL
    RATELIMIT_ENABLED = True  # storage is set up; tests/conftest.py switches enforcement off
    WTF_CSRF_ENABLED = True


CONFIGS = {
    "development": DevelopmentConfig,
    "production": ProductionConfig,
    "testing": TestConfig,
}


def config_from_env():
    """The config class named by STAGEPASS_ENV (development by default)."""
    name = os.environ.get("STAGEPASS_ENV", "development")
    try:
        return CONFIGS[name]
    except KeyError:
        raise RuntimeError(f"STAGEPASS_ENV must be one of {sorted(CONFIGS)}, not {name!r}") from None
