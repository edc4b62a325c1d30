"""Background jobs (RQ) and their schedule (rq-scheduler).

Job functions run in a worker process, outside any request: each one enters an app context of
its own (created once per process). They call the same service functions as the CLI.
"""
from __future__ import annotations

import logging
import os
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

from flask import current_app, has_app_context
from rq import Queue
from rq_scheduler import Scheduler

log = logging.getLogger(__name__)

QUEUE_NAME = "stagepass"
HEARTBEAT_KEY = "stagepass:scheduler:heartbeat"
SCHEDULER_POLL_SECONDS = 10
PERIODIC_JOBS = {
    # fixed id: (function path, every N seconds)
    "stagepass-release-expired-holds": ("app.jobs.release_expired_holds", 60),
    "stagepass-close-past-events": ("app.jobs.close_past_events", 60),
}

_process_app = {}


@contextmanager
def job_app_context():
    """The caller's app context if there is one, else this process's own app."""
    if has_app_context():
        yield current_app
        return
    app = _process_app.get(os.getpid())
    if app is None:
        from app import create_app

        app = _process_app[os.getpid()] = create_app()
    with app.app_context():
        yield app


def release_expired_holds() -> int:
    """Job: close holds that ran out (seats back to available, orders expired or failed)."""
    from app.services import booking

    with job_app_context():
        closed = booking.release_expired()
        log.info("released %d expired hold(s)", closed)
        return closed


def close_past_events() -> int:
    """Job: stop sales of events whose date has passed."""
    from app.services import maintenance

    with job_app_context():
        closed = maintenance.close_past_events()
        log.info("closed sales of %d past event(s)", closed)
        return closed


def queue(connection) -> Queue:
    return Queue(QUEUE_NAME, connection=connection)


class HeartbeatScheduler(Scheduler):
    """rq-scheduler that also leaves a timestamp in Redis each time it polls, for `flask health`."""

    def heartbeat(self):
        super().heartbeat()
        self.connection.set(HEARTBEAT_KEY, time.time(), ex=3600)


def scheduler(connection, interval: int = SCHEDULER_POLL_SECONDS) -> HeartbeatScheduler:
    return HeartbeatScheduler(queue_name=QUEUE_NAME, connection=connection, interval=interval)


def schedule_periodic_jobs(connection) -> list[str]:
    """Register every periodic job under its fixed id: running this twice never doubles a job."""
    registry = scheduler(connection)
    first_run = datetime.now(timezone.utc) + timedelta(seconds=5)
    for job_id, (function, every) in PERIODIC_JOBS.items():
        if job_id in registry:
            registry.cancel(job_id)
        registry.schedule(
            scheduled_time=first_run, func=function, interval=every, repeat=None, id=job_id,
            queue_name=QUEUE_NAME, result_ttl=600, timeout=every * 5,
        )
    return list(PERIODIC_JOBS)


def scheduled_job_ids(connection) -> list[str]:
    return [job.id for job in scheduler(connection).get_jobs()]


def heartbeat_age(connection) -> float | None:
    """Seconds since the scheduler last polled, or None if it never has."""
    value = connection.get(HEARTBEAT_KEY)
    return None if value is None else max(0.0, time.time() - float(value))
