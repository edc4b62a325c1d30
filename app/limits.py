"""Rate limits for the endpoints worth abusing: log in, register, hold, pay, check in."""

import math
import time

from flask import current_app, request
from flask_limiter.util import get_remote_address
from sqlalchemy.exc import SQLAlchemyError

from app.extensions import limiter, redacted_url
from app.identity import signed_in_user_id
from app.services import accounts
from app.services.transactions import end_read


def configured(name):
    """A limit read from config at request time, so tests and operators can change it."""
    return lambda: current_app.config[name]


def per_user():
    # From the signed session: counting a request must not cost loading the account.
    user_id = signed_in_user_id()
    return f"user:{user_id}" if user_id is not None else f"ip:{get_remote_address()}"


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


login = [
    limiter.limit(configured("RATELIMIT_LOGIN_PER_IP"), methods=["POST"]),
    limiter.limit(configured("RATELIMIT_LOGIN_PER_ACCOUNT"), key_func=per_login_account, methods=["POST"]),
]
register = [limiter.limit(configured("RATELIMIT_REGISTER_PER_IP"), methods=["POST"])]
hold = [
    limiter.limit(configured("RATELIMIT_HOLD_PER_USER"), key_func=per_user),
    limiter.limit(configured("RATELIMIT_HOLD_PER_IP")),
]
pay = [
    limiter.limit(configured("RATELIMIT_PAY_PER_USER"), key_func=per_user, methods=["POST"]),
    limiter.limit(configured("RATELIMIT_PAY_PER_IP"), methods=["POST"]),
]

# Per staff account: one door's phone, whatever network it is on.
checkin = [limiter.limit(configured("RATELIMIT_CHECKIN_PER_USER"), key_func=per_user, methods=["POST"])]


def apply(limits):
    """Decorate a view with several limits: @apply(limits.hold)."""

    def decorate(view):
        for limit in reversed(limits):
            view = limit(view)
        return view

    return decorate


def seconds_until_retry() -> int:
    """For Retry-After on a 429: when the limit this request broke lets the next attempt through."""
    broken = limiter.current_limit
    if broken is None:
        return 60
    window = broken.limit.get_expiry()
    try:
        return min(window, max(1, math.ceil(broken.reset_at - time.time())))
    except Exception:  # its storage failed since it refused this request: a whole window is honest
        return window


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
