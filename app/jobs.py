"""Background jobs (RQ) and their schedule (rq-scheduler).

Job functions run in a worker process, outside any request: each one enters an app context of
its own (created once per process). They call the same service functions as the CLI.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import redis
from flask import current_app, has_app_context
from rq import Queue, Worker, worker_registration
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq_scheduler import Scheduler

log = logging.getLogger(__name__)

QUEUE_NAME = "stagepass"
HEARTBEAT_KEY = "stagepass:scheduler:heartbeat"
SCHEDULER_POLL_SECONDS = 10
# A worker idles in one blocking pop of TTL - 15 s and heartbeats between pops, so after a Redis
# restart it is listed again within that time (rq's default, 420 s, left it unlisted for 7 min).
WORKER_TTL_SECONDS = 60
REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError)
PERIODIC_JOBS = {
    # fixed id: (function path, every N seconds)
    "stagepass-release-expired-holds": ("app.jobs.release_expired_holds", 60),
    "stagepass-close-past-events": ("app.jobs.close_past_events", 60),
    "stagepass-reconcile-payments": ("app.jobs.reconcile_payments", 60),
    "stagepass-send-due-emails": ("app.jobs.send_due_emails", 60),
    "stagepass-tidy-waitlist-offers": ("app.jobs.tidy_waitlist_offers", 60),
    # Requests step a busy room themselves; this draws the early arrivals at the on-sale moment
    # and keeps admitting (and opens an emptied room) when nobody is asking.
    "stagepass-advance-waiting-rooms": ("app.jobs.advance_waiting_rooms", SCHEDULER_POLL_SECONDS),
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


def tidy_waitlist_offers() -> int:
    """Job: close waiting-list offers past their limit (seats go on to the next entry)."""
    from app.services import waitlist

    with job_app_context():
        changed = waitlist.tidy_offers()
        log.info("tidied %d waiting-list offer(s)", changed)
        return changed


def close_past_events() -> int:
    """Job: stop sales of events whose date has passed."""
    from app.services import maintenance

    with job_app_context():
        closed = maintenance.close_past_events()
        log.info("closed sales of %d past event(s)", closed)
        return closed


def reconcile_payments() -> str:
    """Job: ask the payment provider about attempts without an answer and settle them."""
    from app.services import payments

    with job_app_context():
        summary = payments.reconcile()
        log.info("payments reconciled: %s", summary)
        return str(summary)


def send_emails(outbox_ids: list[int]) -> int:
    """Job, queued after a commit that wrote outbox rows: send those rows (those nobody else sends)."""
    from app.services import mail

    with job_app_context():
        return mail.send_due_emails(ids=outbox_ids)


def send_due_emails() -> int:
    """Job: send every due outbox row (retries after their backoff, rows whose first job was lost)."""
    from app.services import mail

    with job_app_context():
        sent = mail.send_due_emails()
        log.info("sent %d due email(s)", sent)
        return sent


def cancel_orders(run_id: str) -> dict:
    """Job: cancel and refund the orders of a cancellation run, one unit of work each."""
    from app.services import cancellations

    with job_app_context():
        run = cancellations.run_cancellation(run_id)
        log.info(
            "cancellation run %s: %d cancelled, %d skipped, %d failed",
            run.id,
            run.cancelled,
            run.skipped,
            len(run.failed),
        )
        return run.progress()


# Each order takes a refund call: allow a slow provider a few seconds per order of a big event.
CANCELLATION_TIMEOUT_SECONDS = 6 * 3600


# A job in one of these states will never run (again) by itself.
DEAD_JOB_STATES = (None, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED)


def cancellation_job_status(connection, run_id: str) -> JobStatus | None:
    """The RQ status of a cancellation run's job, None once Redis no longer has the job."""
    try:
        return Job.fetch(f"stagepass-cancellation-{run_id}", connection=connection).get_status()
    except NoSuchJobError:
        return None


def enqueue_cancellation(connection, run_id: str) -> Job:
    """Queue the job of a cancellation run (its id is the run's, so it is queued once)."""
    return queue(connection).enqueue(
        cancel_orders,
        run_id,
        job_id=f"stagepass-cancellation-{run_id}",
        job_timeout=CANCELLATION_TIMEOUT_SECONDS,
        result_ttl=24 * 3600,
        failure_ttl=7 * 24 * 3600,
    )


def advance_waiting_rooms() -> int:
    """Job: one step of every active waiting room."""
    from app.services import waiting_room

    with job_app_context():
        stepped = waiting_room.advance_active_rooms()
        log.info("stepped %d waiting room(s)", stepped)
        return stepped


def queue(connection) -> Queue:
    return Queue(QUEUE_NAME, connection=connection)


class HeartbeatScheduler(Scheduler):
    """rq-scheduler that heals the schedule and leaves a timestamp in Redis each time it polls.

    Redis keeps nothing on disk here: after a restart the periodic jobs are gone. The scheduler
    that holds the lock puts back the missing ones (fixed ids, so never twice) at its heartbeat,
    and an outage is waited out instead of ending the process.
    """

    def heartbeat(self):
        super().heartbeat()
        if self._lock_acquired:  # under the lock: never racing another scheduler's enqueue
            restore_periodic_jobs(self)
        self.connection.set(HEARTBEAT_KEY, time.time(), ex=3600)

    def run(self, burst=False):
        """rq-scheduler's loop; a Redis error skips one poll instead of ending the process."""
        self.register_birth()
        self._install_signal_handlers()
        try:
            while True:
                started = time.monotonic()
                try:
                    self.heartbeat()
                    if self.acquire_lock():
                        self.enqueue_jobs()
                        self.heartbeat()
                        self.remove_lock()
                        if burst:
                            return
                except REDIS_DOWN as error:
                    self._lock_acquired = False  # it expires by itself in Redis
                    log.warning("scheduler: Redis unavailable (%s), retrying in %s s", error, self._interval)
                time.sleep(max(0.0, self._interval - (time.monotonic() - started)))
        finally:
            self._forget_self()

    def _install_signal_handlers(self):
        def stop(signum, frame):
            self._forget_self()
            raise SystemExit()

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)

    def _forget_self(self):
        try:
            self.remove_lock()
            self.register_death()
        except REDIS_DOWN:
            pass  # its keys expire by themselves


def scheduler(connection, interval: int = SCHEDULER_POLL_SECONDS) -> HeartbeatScheduler:
    return HeartbeatScheduler(queue_name=QUEUE_NAME, connection=connection, interval=interval)


def _schedule(registry: Scheduler, job_id: str, first_run: datetime) -> None:
    function, every = PERIODIC_JOBS[job_id]
    registry.schedule(
        scheduled_time=first_run,
        func=function,
        interval=every,
        repeat=None,
        id=job_id,
        queue_name=QUEUE_NAME,
        result_ttl=600,
        timeout=every * 5,
    )


def schedule_periodic_jobs(connection) -> list[str]:
    """Register every periodic job under its fixed id: running this twice never doubles a job."""
    registry = scheduler(connection)
    first_run = datetime.now(UTC) + timedelta(seconds=5)
    for job_id in PERIODIC_JOBS:
        if job_id in registry:
            registry.cancel(job_id)
        _schedule(registry, job_id, first_run)
    return list(PERIODIC_JOBS)


def restore_periodic_jobs(registry: Scheduler) -> list[str]:
    """Register the periodic jobs that are missing from the schedule (Redis lost them); their ids."""
    missing = [
        job_id
        for job_id in PERIODIC_JOBS
        if job_id not in registry or not registry.connection.exists(Job.key_for(job_id))
    ]
    first_run = datetime.now(UTC) + timedelta(seconds=5)
    for job_id in missing:
        log.warning("periodic job %s was missing from the schedule: registered again", job_id)
        _schedule(registry, job_id, first_run)
    return missing


class SelfRegisteringWorker(Worker):
    """rq Worker that lists itself again at its heartbeat when Redis has lost its registration.

    rq registers a worker once, at birth; after a Redis restart the worker kept working but
    `flask health` (which reads rq's worker list) reported none.
    """

    def heartbeat(self, timeout=None, pipeline=None):
        super().heartbeat(timeout, pipeline)
        if (
            pipeline is None
            and self.birth_date is not None
            and not self.connection.sismember(self.redis_workers_keys, self.key)
        ):
            self.log.warning("Worker %s: Redis lost its registration, registering again", self.name)
            with self.connection.pipeline() as registration:
                registration.hset(self.key, mapping={**self.serialize(), "state": self.get_state()})
                worker_registration.register(self, registration)
                registration.expire(self.key, timeout or self.worker_ttl + 60)
                registration.execute()


def worker(connection, worker_ttl: int = WORKER_TTL_SECONDS) -> SelfRegisteringWorker:
    return SelfRegisteringWorker([QUEUE_NAME], connection=connection, worker_ttl=worker_ttl)


def scheduled_job_ids(connection) -> list[str]:
    return [job.id for job in scheduler(connection).get_jobs()]


def heartbeat_age(connection) -> float | None:
    """Seconds since the scheduler last polled, or None if it never has."""
    value = connection.get(HEARTBEAT_KEY)
    return None if value is None else max(0.0, time.time() - float(value))
