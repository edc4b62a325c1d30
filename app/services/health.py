"""Is StagePass healthy? Database (and its migrations), emails, Redis, scheduler, workers, queue."""

from __future__ import annotations

from dataclasses import dataclass

import redis
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import current_app
from rq import Worker

from app import jobs
from app.extensions import db, redacted_url
from app.services.transactions import end_read
from config import BASE_DIR

SCHEDULER_STALE_SECONDS = 180
# An email due this long ago and still unsent: no worker sends, or the mail server refuses.
EMAIL_OVERDUE_SECONDS = 15 * 60


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def check_database() -> list[Check]:
    try:
        with db.engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
            current = MigrationContext.configure(connection).get_current_revision()
    except Exception as error:  # any driver error means 'down', with its text as the reason
        return [Check("database", False, f"unreachable: {error.__class__.__name__}: {str(error)[:200]}")]
    head = ScriptDirectory(str(BASE_DIR / "migrations")).get_current_head()
    checks = [Check("database", True, db.engine.url.render_as_string(hide_password=True).split("?")[0])]
    if current == head:
        checks.append(Check("migrations", True, f"at head {head}"))
    else:
        checks.append(Check("migrations", False, f"at {current}, head is {head}: run `flask db upgrade`"))
    return checks


def check_emails() -> list[Check]:
    from app.models import utcnow
    from app.services import mail

    now = utcnow()
    try:
        state = mail.outbox_state(now)
    except Exception as error:  # the database check says why
        end_read()
        return [Check("emails", False, f"unknown: {error.__class__.__name__}")]
    overdue = state.oldest_due is not None and (now - state.oldest_due).total_seconds() > EMAIL_OVERDUE_SECONDS
    waiting = f"{state.waiting} waiting"
    if state.oldest_due is not None:
        waiting += f" (oldest due {(now - state.oldest_due).total_seconds() / 60:.0f} min ago)"
    detail = f"{waiting}, {state.failed_recently} given up in the last day"
    if state.failed_recently:
        detail += ": see the admin order pages, resend once the mail server works"
    return [Check("emails", not overdue and not state.failed_recently, detail)]


def redis_client():
    return redis.Redis.from_url(current_app.config["REDIS_URL"], socket_connect_timeout=1, socket_timeout=1)


def check_redis_side() -> list[Check]:
    client = redis_client()
    try:
        client.ping()
    except redis.RedisError as error:
        reason = f"unreachable at {redacted_url(current_app.config['REDIS_URL'])}: {error}"
        return [
            Check("redis", False, reason),
            Check("scheduler", False, "unknown: Redis is down"),
            Check("workers", False, "unknown: Redis is down"),
        ]
    checks = [Check("redis", True, redacted_url(current_app.config["REDIS_URL"]))]
    age = jobs.heartbeat_age(client)
    if age is None:
        checks.append(Check("scheduler", False, "no heartbeat yet: start `make scheduler`"))
    elif age > SCHEDULER_STALE_SECONDS:
        checks.append(Check("scheduler", False, f"last heartbeat {age:.0f} s ago"))
    else:
        checks.append(Check("scheduler", True, f"last heartbeat {age:.0f} s ago"))
    missing = [job_id for job_id in jobs.PERIODIC_JOBS if job_id not in jobs.scheduled_job_ids(client)]
    checks.append(
        Check(
            "schedule",
            not missing,
            "all periodic jobs registered"
            if not missing
            else f"missing {', '.join(missing)}: a running scheduler puts them back within a poll, "
            "or run `flask jobs schedule`",
        )
    )
    workers = [w for w in Worker.all(connection=client) if jobs.QUEUE_NAME in w.queue_names()]
    checks.append(
        Check("workers", bool(workers), f"{len(workers)} worker(s)" if workers else "no worker: start `make worker`")
    )
    backlog = len(jobs.queue(client))
    checks.append(Check("queue", backlog < 100, f"{backlog} job(s) waiting"))
    return checks


def check_rate_limits() -> list[Check]:
    from app import limits

    state = limits.status()
    return [Check("rate limits", state["ok"], state["detail"])]


def run_checks() -> list[Check]:
    """Every check; each is bounded by a short timeout, so a dead dependency answers fast."""
    return check_database() + check_emails() + check_redis_side() + check_rate_limits()


def report() -> dict:
    checks = run_checks()
    return {
        "healthy": all(check.ok for check in checks),
        "checks": {check.name: {"ok": check.ok, "detail": check.detail} for check in checks},
    }
