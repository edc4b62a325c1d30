"""Rate limits for the endpoints worth abusing: log in, register, hold, pay, check in.

Each limit is a setting ("30 per minute", read at request time, so tests and operators can change
it) counted per key (the client's address unless said otherwise) and per view. A view's limits are
counted together, in the order listed, in one round trip to the limiter's storage
(`app.extensions.RateLimiter`); the first one broken refuses the request with a 429.
"""

import functools
from collections.abc import Callable
from dataclasses import dataclass

import limits as limits_lib
from flask import current_app, request
from sqlalchemy.exc import SQLAlchemyError

from app.extensions import limiter, redacted_url
from app.identity import signed_in_user_id
from app.services import accounts
from app.services.transactions import end_read


def client_address() -> str:
    """The client's address (behind a trusted proxy, the one it forwarded: see trust_reverse_proxies)."""
    return request.remote_addr or "127.0.0.1"


def per_user():
    # From the signed session: counting a request must not cost loading the account.
    user_id = signed_in_user_id()
    return f"user:{user_id}" if user_id is not None else f"ip:{client_address()}"


def per_login_account():
    """The account a log-in would reach, so no other spelling of its address gets a fresh count.

    The database decides which spellings find an account (its collation may ignore case or
    accents), so the count is keyed on the user it finds; an address that finds nobody counts as
    typed, normalised.
    """
    email = (request.form.get("email") or "")[:255]
    try:
        user = accounts.find_user_by_email(email)
    except SQLAlchemyError:  # the log-in itself will say the database is down; not a storage error
        end_read()
        user = None
    if user is not None:
        return f"login:user:{user.id}"
    return "login:email:" + accounts.normalize_email(email)


@dataclass(frozen=True)
class Limit:
    """How many requests (the config setting `setting` holds, e.g. "30 per minute") per `key`, on
    the given methods (all when None)."""

    setting: str
    key: Callable[[], str] = client_address
    methods: frozenset[str] | None = None


POST = frozenset({"POST"})

login = [
    Limit("RATELIMIT_LOGIN_PER_IP", methods=POST),
    Limit("RATELIMIT_LOGIN_PER_ACCOUNT", per_login_account, methods=POST),
]
register = [Limit("RATELIMIT_REGISTER_PER_IP", methods=POST)]
hold = [Limit("RATELIMIT_HOLD_PER_USER", per_user), Limit("RATELIMIT_HOLD_PER_IP")]
pay = [Limit("RATELIMIT_PAY_PER_USER", per_user, methods=POST), Limit("RATELIMIT_PAY_PER_IP", methods=POST)]

# Per staff account: one door's phone, whatever network it is on.
checkin = [Limit("RATELIMIT_CHECKIN_PER_USER", per_user, methods=POST)]


@functools.lru_cache(maxsize=64)
def _parsed(text: str) -> limits_lib.RateLimitItem:
    return limits_lib.parse(text)


def count(view_limits: list[Limit]) -> None:
    """Count this request against the view's limits; RateLimitExceeded if it breaks one."""
    if not limiter.enabled:
        return
    config, scope, method = current_app.config, request.endpoint, request.method
    limiter.hit(
        [
            (_parsed(config[limit.setting]), (limit.key(), scope))
            for limit in view_limits
            if limit.methods is None or method in limit.methods
        ]
    )


def apply(view_limits: list[Limit]):
    """Decorate a view with its limits: @apply(limits.hold)."""

    def decorate(view):
        @functools.wraps(view)
        def limited(*args, **kwargs):
            count(view_limits)
            return view(*args, **kwargs)

        return limited

    return decorate


def status() -> dict:
    """Whether limits are enforced through shared storage, for `flask health` and /healthz."""
    if not limiter.enabled:
        return {"ok": True, "detail": "disabled by configuration"}
    where = redacted_url(current_app.config["RATELIMIT_STORAGE_URI"])
    try:
        reachable = limiter.storage.check()
    except Exception:  # any storage error means the same: limits are per process for now
        reachable = False
    if not reachable:
        return {"ok": False, "detail": f"{where} unreachable: failing open to per-process in-memory limits"}
    if limiter.failing_open:
        return {
            "ok": False,
            "detail": f"{where} answers again, but this process still limits in memory (failing open) "
            "until its next check",
        }
    return {"ok": True, "detail": f"enforced through {where}"}
