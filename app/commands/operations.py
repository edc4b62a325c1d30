"""Maintenance and operations: cleanup, health, the job schedule, the worker and the scheduler."""

import sys

import click
import redis
from flask import current_app
from flask.cli import AppGroup

from app import jobs
from app.services import booking, health, maintenance
from app.services.errors import DomainError

seats = AppGroup("seats", help="Seat maintenance.")
jobs_group = AppGroup("jobs", help="The periodic job schedule (rq-scheduler).")


@seats.command("cleanup-expired")
def cleanup_expired():
    """Release expired holds now (the same work as the every-minute job; use it from cron)."""
    closed = booking.release_expired()
    click.echo(f"Released {closed} expired hold(s).")


@click.command("db-cleanup")
@click.option(
    "--older-than",
    "days",
    type=int,
    required=True,
    help="Purge rows older than this many days (at least 1; 0 with --dry-run).",
)
@click.option("--dry-run", is_flag=True, help="Only count what the real run would delete; change nothing.")
@click.option("--batch-size", default=maintenance.CLEANUP_BATCH, show_default=True, type=click.IntRange(1, 10000))
def db_cleanup(days, dry_run, batch_size):
    """Purge soft-deleted rows and dead bookings older than DAYS; confirmed bookings and money history stay."""
    try:
        report = maintenance.db_cleanup(days, dry_run=dry_run, batch_size=batch_size)
    except DomainError as error:
        raise click.ClickException(error.message) from None
    verb = "Would delete" if dry_run else "Deleted"
    click.echo(f"{verb} rows last changed before {report.cutoff:%Y-%m-%d %H:%M} UTC:")
    width = max(map(len, report.deleted))
    for table, count in report.deleted.items():
        click.echo(f"  {table:<{width}} {count}")


@click.command("health")
def health_command():
    """Check the database, migrations, Redis, scheduler, workers and queue; exit 1 if anything is unhealthy."""
    checks = health.run_checks()
    width = max(len(check.name) for check in checks)
    for check in checks:
        click.echo(f"{check.name:<{width}}  {'ok  ' if check.ok else 'FAIL'}  {check.detail}")
    healthy = all(check.ok for check in checks)
    click.echo("healthy" if healthy else "UNHEALTHY")
    sys.exit(0 if healthy else 1)


def reachable_redis() -> redis.Redis:
    """A client of the app's Redis, or a clear error when it cannot be reached."""
    client = health.redis_client()
    try:
        client.ping()
    except redis.RedisError as error:
        raise click.ClickException(f"Redis is unreachable at {current_app.config['REDIS_URL']}: {error}") from None
    return client


@jobs_group.command("schedule")
def schedule():
    """Register the periodic jobs under fixed ids (safe to run again: nothing is doubled)."""
    for job_id in jobs.schedule_periodic_jobs(reachable_redis()):
        function, every = jobs.PERIODIC_JOBS[job_id]
        click.echo(f"Scheduled {job_id}: {function} every {every} s")


@jobs_group.command("list")
def list_jobs():
    """Show the scheduled jobs and when each runs next."""
    registry = jobs.scheduler(reachable_redis())
    for job, when in registry.get_jobs(with_times=True):
        click.echo(f"{job.id}  next {when:%Y-%m-%d %H:%M:%S} UTC  {job.func_name}  every {job.meta.get('interval')} s")


@click.command("rq-worker")
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
@click.option(
    "--worker-ttl",
    default=jobs.WORKER_TTL_SECONDS,
    show_default=True,
    type=click.IntRange(16),
    help="Seconds a silent worker stays listed; an idle worker heartbeats every TTL - 15 s.",
)
def rq_worker(burst, worker_ttl):
    """Run an RQ worker for StagePass's queue (jobs enter an app context of their own)."""
    jobs.worker(reachable_redis(), worker_ttl=worker_ttl).work(burst=burst, with_scheduler=False)


@click.command("rq-scheduler")
@click.option("--interval", default=jobs.SCHEDULER_POLL_SECONDS, show_default=True, help="Seconds between polls.")
def rq_scheduler(interval):
    """Run rq-scheduler: moves due periodic jobs to the queue, puts back lost ones, heartbeats for `flask health`."""
    client = reachable_redis()
    jobs.schedule_periodic_jobs(client)
    click.echo(f"Scheduler polling {current_app.config['REDIS_URL']} every {interval} s")
    jobs.scheduler(client, interval=interval).run()


COMMANDS = [seats, db_cleanup, health_command, jobs_group, rq_worker, rq_scheduler]
