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
            # No ping on every checkout (a round trip per request): app.extensions.ping_after_idle
            # pings only connections idle for DB_PING_AFTER_IDLE_SECONDS.
            "pool_pre_ping": False,
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
    DB_PING_AFTER_IDLE_SECONDS = float(os.environ.get("DB_PING_AFTER_IDLE_SECONDS", 30))
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
    # A new event's venue time zone (IANA name) and currency (ISO 4217) until the admin picks
    # others. UTC, because that is how events were entered and shown before events had a zone.
    DEFAULT_TIMEZONE = os.environ.get("DEFAULT_TIMEZONE", "UTC")
    DEFAULT_CURRENCY = os.environ.get("DEFAULT_CURRENCY", "EUR")

    # Waiting room (app/services/waiting_room.py): arrivals this many minutes before an on-sale
    # are drawn in random order at the on-sale; an admitted buyer must hold within ADMISSION_SECONDS.
    WAITING_ROOM_EARLY_MINUTES = _int("WAITING_ROOM_EARLY_MINUTES", 15)
    WAITING_ROOM_ADMISSION_SECONDS = _int("WAITING_ROOM_ADMISSION_SECONDS", 180)
    WAITING_ROOM_PLACES_PER_IP = _int("WAITING_ROOM_PLACES_PER_IP", 50)  # 0: no cap
    WAITING_ROOM_OPEN_AFTER_EMPTY_SECONDS = _int("WAITING_ROOM_OPEN_AFTER_EMPTY_SECONDS", 60)
    # Automatic rate: admitted buyers choosing seats at once, at least MIN_ACTIVE, at most the free
    # seats, else as many as the measured holds per second serve in SHOPPING_SECONDS. Nobody new
    # (a tenth of MIN_ACTIVE if nobody shops) while the servers are behind: the room's recent
    # holds took over SLOW_HOLD_MS, or a room step's three look-ups (Redis, the database) over
    # BEHIND_MS.
    WAITING_ROOM_MIN_ACTIVE = _int("WAITING_ROOM_MIN_ACTIVE", 50)
    WAITING_ROOM_SHOPPING_SECONDS = _int("WAITING_ROOM_SHOPPING_SECONDS", 10)
    WAITING_ROOM_BEHIND_MS = _int("WAITING_ROOM_BEHIND_MS", 250)
    # Holds through the room that took longer than this in the app servers on average (over the
    # last seconds) mean the servers are behind: the room admits nobody new meanwhile.
    WAITING_ROOM_SLOW_HOLD_MS = _int("WAITING_ROOM_SLOW_HOLD_MS", 200)
    # Admissions per second at most this many times the holds per second (a tenth of MIN_ACTIVE
    # per step at least).
    WAITING_ROOM_ADMISSIONS_PER_HOLD = _int("WAITING_ROOM_ADMISSIONS_PER_HOLD", 2)

    # How many reverse proxies (nginx: 1) stand in front and append the client to X-Forwarded-For.
    # 0 trusts no forwarding header: per-IP limits then count the peer's own address.
    TRUSTED_PROXY_COUNT = _int("TRUSTED_PROXY_COUNT", 0)

    # Rate limits (fixed windows counted in Redis, so they hold across app servers; app/limits.py).
    # Generous enough that real buyers in an on-sale rush never meet them; tight enough to stop scripts.
    RATELIMIT_ENABLED = os.environ.get("RATELIMIT_ENABLED", "1") == "1"
    RATELIMIT_STORAGE_URI = os.environ.get("RATELIMIT_STORAGE_URI", REDIS_URL)
    RATELIMIT_STORAGE_OPTIONS = {"socket_connect_timeout": 1, "socket_timeout": 1}
    # Redis down: keep selling. It is logged and each process limits in memory meanwhile. No
    # X-RateLimit-* headers (a Redis read per request); a 429 says Retry-After.
    RATELIMIT_LOGIN_PER_IP = os.environ.get("RATELIMIT_LOGIN_PER_IP", "30 per minute")
    RATELIMIT_LOGIN_PER_ACCOUNT = os.environ.get("RATELIMIT_LOGIN_PER_ACCOUNT", "10 per minute")
    RATELIMIT_REGISTER_PER_IP = os.environ.get("RATELIMIT_REGISTER_PER_IP", "20 per hour")
    RATELIMIT_HOLD_PER_USER = os.environ.get("RATELIMIT_HOLD_PER_USER", "30 per minute")
    RATELIMIT_HOLD_PER_IP = os.environ.get("RATELIMIT_HOLD_PER_IP", "600 per minute")
    RATELIMIT_PAY_PER_USER = os.environ.get("RATELIMIT_PAY_PER_USER", "20 per minute")
    RATELIMIT_PAY_PER_IP = os.environ.get("RATELIMIT_PAY_PER_IP", "300 per minute")
    # A door scans about one ticket a second; the headroom is for a phone sending its offline queue.
    RATELIMIT_CHECKIN_PER_USER = os.environ.get("RATELIMIT_CHECKIN_PER_USER", "300 per minute")

    # Payments (README, "Payments"): which provider (sandbox: offline, its memory in Redis), and how
    # old an attempt without an answer must be before reconciliation asks the provider about it
    # (longer than any provider call takes, so it does not race a payment still in flight).
    PAYMENT_PROVIDER = os.environ.get("PAYMENT_PROVIDER", "sandbox")
    PAYMENT_RECONCILE_AFTER_SECONDS = _int("PAYMENT_RECONCILE_AFTER_SECONDS", 120)
    PAYMENT_SANDBOX_REDIS_URL = os.environ.get("PAYMENT_SANDBOX_REDIS_URL")  # default: REDIS_URL
    PAYMENT_SANDBOX_NAMESPACE = os.environ.get("PAYMENT_SANDBOX_NAMESPACE", "stagepass:sandbox-payments")
    PAYMENT_SANDBOX_DELAY_SECONDS = float(os.environ.get("PAYMENT_SANDBOX_DELAY_SECONDS", "0"))

    # Email (app/services/mail.py): MAIL_BACKEND is smtp, file (each message an .eml file in
    # MAIL_FILE_PATH) or console. Sent by RQ jobs from the outbox, retried with doubling delays.
    MAIL_BACKEND = os.environ.get("MAIL_BACKEND", "smtp")
    MAIL_SERVER = os.environ.get("MAIL_SERVER", "localhost")
    MAIL_PORT = _int("MAIL_PORT", 25)
    MAIL_USE_TLS = os.environ.get("MAIL_USE_TLS", "0").lower() in ("1", "true", "yes")
    # Implicit TLS from the first byte (port 465), instead of STARTTLS; not both.
    MAIL_USE_SSL = os.environ.get("MAIL_USE_SSL", "0").lower() in ("1", "true", "yes")
    MAIL_USERNAME = os.environ.get("MAIL_USERNAME")
    MAIL_PASSWORD = os.environ.get("MAIL_PASSWORD")
    MAIL_DEFAULT_SENDER = os.environ.get("MAIL_DEFAULT_SENDER", "StagePass <tickets@stagepass.invalid>")
    MAIL_TIMEOUT = _int("MAIL_TIMEOUT", 10)
    MAIL_FILE_PATH = os.environ.get("MAIL_FILE_PATH", str(INSTANCE_DIR / "outbox"))
    MAIL_RETRY_SECONDS = _int("MAIL_RETRY_SECONDS", 60)
    MAIL_RETRY_MAX_SECONDS = _int("MAIL_RETRY_MAX_SECONDS", 6 * 3600)
    MAIL_MAX_ATTEMPTS = _int("MAIL_MAX_ATTEMPTS", 10)
    # A sender that claimed an email and never said how it went (it died) loses it after this.
    MAIL_CLAIM_SECONDS = _int("MAIL_CLAIM_SECONDS", 300)

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

    # Ed25519 keys that sign ticket QR payloads, unrelated to SECRET_KEY: "kid1:<base64url 32-byte
    # seed>,kid2:...". New tickets use TICKET_SIGNING_KID (default: the first key); the others still
    # verify, so rotating keeps sold tickets valid. Unset outside production: a key is generated
    # once into instance/ticket_signing_key (app/services/tickets.py).
    TICKET_SIGNING_KEYS = os.environ.get("TICKET_SIGNING_KEYS", "")
    TICKET_SIGNING_KID = os.environ.get("TICKET_SIGNING_KID", "")
    TICKET_SIGNING_KEY_FILE = str(INSTANCE_DIR / "ticket_signing_key")
    # A TrueType font for ticket PDFs (any script); without it they fall back to Helvetica (Latin-1).
    TICKET_PDF_FONT = os.environ.get("TICKET_PDF_FONT", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


class DevelopmentConfig(Config):
    DEBUG = True
    # `make run` needs no mail server: messages land in instance/outbox/ as .eml files.
    MAIL_BACKEND = os.environ.get("MAIL_BACKEND", "file")


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
    # A fixed key, so tests never write instance/ticket_signing_key.
    TICKET_SIGNING_KEYS = "test:xBKcHgi9X8CnR7YxRBspZAifXRuCyp_AQd6EVJkAROA"
    TICKET_SIGNING_KID = "test"
    # Nothing listens here: a test that sends starts its own SMTP server and points MAIL_PORT at it.
    MAIL_BACKEND = "smtp"
    MAIL_SERVER = "127.0.0.1"
    MAIL_PORT = 9
    MAIL_TIMEOUT = 5


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
