"""Jobs, schedule, cleanup and health, against a real Redis (the database this test run claimed)."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from rq import SimpleWorker

from app import jobs
from app.models import Booking, Event, Order, OutboxEmail, Payment, PriceCategory, Seat, utcnow
from app.services import booking, events, maintenance, payments
from tests.support import ROOT, csrf_token


def first_seats(db_session, event, count=1):
    return db_session.scalars(sa.select(Seat.id).where(Seat.event_id == event.id).order_by(Seat.id)).all()[:count]


def test_scheduling_twice_registers_each_job_once(runner, redis_client):
    for _ in range(2):
        result = runner.invoke(args=["jobs", "schedule"])
        assert result.exit_code == 0, result.output
    assert sorted(jobs.scheduled_job_ids(redis_client)) == sorted(jobs.PERIODIC_JOBS)
    assert redis_client.zcard(jobs.Scheduler.scheduled_jobs_key) == len(jobs.PERIODIC_JOBS)


def test_two_schedulers_never_double_a_job(redis_client):
    jobs.schedule_periodic_jobs(redis_client)
    first, second = jobs.scheduler(redis_client), jobs.scheduler(redis_client)
    for job_id in jobs.PERIODIC_JOBS:
        redis_client.zadd(jobs.Scheduler.scheduled_jobs_key, {job_id: time.time() - 1})
    assert first.acquire_lock() and not second.acquire_lock()  # only one may enqueue at a time
    first.enqueue_jobs()
    first.remove_lock()
    second.acquire_lock() and second.enqueue_jobs()
    assert len(jobs.queue(redis_client)) == len(jobs.PERIODIC_JOBS)
    assert redis_client.zcard(jobs.Scheduler.scheduled_jobs_key) == len(jobs.PERIODIC_JOBS)


def test_scheduled_cleanup_runs_on_a_worker(redis_client, factory, db_session):
    event = factory.event()
    ids = first_seats(db_session, event, 2)
    stale = booking.hold(factory.user(), event, ids, now=utcnow() - timedelta(minutes=10))
    jobs.schedule_periodic_jobs(redis_client)
    for job_id in jobs.PERIODIC_JOBS:
        redis_client.zadd(jobs.Scheduler.scheduled_jobs_key, {job_id: time.time() - 1})
    jobs.scheduler(redis_client).enqueue_jobs()
    assert len(jobs.queue(redis_client)) == len(jobs.PERIODIC_JOBS)
    SimpleWorker([jobs.queue(redis_client)], connection=redis_client).work(burst=True)
    db_session.expire_all()
    assert db_session.get(Order, stale.id).status == "expired"
    assert {b.status for b in db_session.get(Order, stale.id).bookings} == {"expired"}
    assert set(db_session.scalars(sa.select(Seat.status).where(Seat.id.in_(ids)))) == {"available"}
    # The periodic jobs are back in the schedule for their next run.
    assert sorted(jobs.scheduled_job_ids(redis_client)) == sorted(jobs.PERIODIC_JOBS)


def test_seats_cleanup_expired_command(runner, factory, db_session):
    event = factory.event()
    booking.hold(factory.user(), event, first_seats(db_session, event), now=utcnow() - timedelta(minutes=10))
    result = runner.invoke(args=["seats", "cleanup-expired"])
    assert result.exit_code == 0 and "Released 1 expired hold(s)." in result.output


def test_close_past_events_spares_drafts_and_future_events(factory, db_session):
    past, future, draft = factory.event(), factory.event(), factory.event(status="draft")
    later = past.date + timedelta(minutes=1)
    db_session.execute(sa.update(Event).where(Event.id.in_([future.id])).values(date=later + timedelta(days=1)))
    db_session.execute(sa.update(Event).where(Event.id == draft.id).values(date=past.date))
    db_session.commit()
    assert maintenance.close_past_events(later) == 1
    db_session.expire_all()
    assert db_session.get(Event, past.id).sales_ended_at == later
    assert db_session.get(Event, future.id).sales_ended_at is None
    assert db_session.get(Event, draft.id).status == "draft" and db_session.get(Event, draft.id).sales_ended_at is None
    with pytest.raises(booking.EventNotOnSale):
        booking.hold(factory.user(), db_session.get(Event, past.id), first_seats(db_session, past))


def age(db_session, days):
    """Make every row look `days` old, and every soft-deletion `days` ago."""
    when = utcnow() - timedelta(days=days)
    for model in (Booking, Order):
        db_session.execute(
            sa.update(model).values(updated_at=when, created_at=when).execution_options(include_deleted=True)
        )
    for model in (Booking, Seat, Event):
        db_session.execute(
            sa.update(model)
            .where(model.deleted_at.is_not(None))
            .values(deleted_at=when)
            .execution_options(include_deleted=True)
        )
    db_session.commit()


def cleanup_counts(output):
    """{table: count} from db-cleanup's report."""
    return {table: int(count) for table, count in re.findall(r"^  (\w+) +(\d+)$", output, re.MULTILINE)}


def row_counts(db_session):
    db_session.expire_all()
    return {
        model.__tablename__: db_session.scalar(
            sa.select(sa.func.count()).select_from(model).execution_options(include_deleted=True)
        )
        for model in (OutboxEmail, Booking, Order, Seat, PriceCategory, Event, Payment)
    }


def test_db_cleanup_dry_run_changes_nothing_and_real_run_keeps_what_it_must(runner, factory, db_session):
    past_event = factory.event(rows=1, columns=4)
    upcoming = factory.event(rows=1, columns=2)
    buyer = factory.user()
    seats = first_seats(db_session, past_event, 4)
    kept = payments.pay_by_card(
        booking.hold(buyer, past_event, seats[:1]), user=buyer, card_number=payments.CARD_SUCCEEDS
    )
    booking.hold(factory.user(), past_event, seats[1:2], now=utcnow() - timedelta(minutes=10))
    booking.release_expired()
    declined_buyer = factory.user()
    with pytest.raises(payments.PaymentDeclined):
        payments.pay_by_card(
            booking.hold(declined_buyer, past_event, seats[2:3]),
            user=declined_buyer,
            card_number=payments.CARD_DECLINED,
        )
    future_expired = booking.hold(
        factory.user(), upcoming, first_seats(db_session, upcoming), now=utcnow() - timedelta(minutes=10)
    )
    booking.release_expired()
    db_session.execute(sa.update(Event).where(Event.id == past_event.id).values(date=utcnow() - timedelta(days=60)))
    db_session.commit()
    age(db_session, 90)

    def snapshot():
        db_session.expire_all()
        return (
            db_session.scalar(sa.select(sa.func.count(Booking.id)).execution_options(include_deleted=True)),
            db_session.scalar(sa.select(sa.func.count(Order.id))),
        )

    before = snapshot()
    dry = runner.invoke(args=["db-cleanup", "--older-than", "30", "--dry-run"])
    assert dry.exit_code == 0 and "Would delete" in dry.output and cleanup_counts(dry.output)["bookings"] == 2
    assert snapshot() == before

    real = runner.invoke(args=["db-cleanup", "--older-than", "30", "--batch-size", "1"])
    assert real.exit_code == 0, real.output
    # The expired and the declined booking go, and the expired order with them; the declined
    # order stays because its payment attempt is money history.
    assert cleanup_counts(real.output) == cleanup_counts(dry.output)
    assert cleanup_counts(real.output)["bookings"] == 2 and cleanup_counts(real.output)["orders"] == 1
    db_session.expire_all()
    assert db_session.get(Order, kept.id).status == "confirmed"  # confirmed bookings stay
    assert db_session.get(Order, future_expired.id) is not None  # rows of upcoming events stay
    failed = db_session.scalars(sa.select(Order).where(Order.status == "failed")).all()
    assert len(failed) == 1 and failed[0].payments  # money history (a declined charge) stays


def past(db_session, event, days=60):
    db_session.execute(sa.update(Event).where(Event.id == event.id).values(date=utcnow() - timedelta(days=days)))
    db_session.commit()


def test_db_cleanup_purges_a_deleted_event_with_its_seats_and_prices(factory, db_session):
    event = factory.event(rows=1, columns=4)
    events.delete_event(event)
    age(db_session, 90)
    report = maintenance.db_cleanup(30)
    assert report.deleted == {
        "outbox_emails": 0,
        "bookings": 0,
        "orders": 0,
        "seats": 4,
        "price_categories": 1,
        "events": 1,
    }
    assert row_counts(db_session) == dict.fromkeys(row_counts(db_session), 0)


def test_db_cleanup_waits_for_the_cutoff_of_a_deletion(factory, db_session):
    event = factory.event(rows=1, columns=4)
    events.delete_event(event)
    age(db_session, 10)
    assert sum(maintenance.db_cleanup(30).deleted.values()) == 0
    assert row_counts(db_session)["events"] == 1


def test_db_cleanup_keeps_the_money_history_of_a_deleted_event(factory, db_session):
    event = factory.event(rows=1, columns=4)
    buyer = factory.user()
    seats = first_seats(db_session, event, 4)
    paid = payments.pay_by_card(booking.hold(buyer, event, seats[:1]), user=buyer, card_number=payments.CARD_SUCCEEDS)
    booking.cancel_event(event)  # refunds the buyer
    events.delete_event(event)
    past(db_session, event)
    age(db_session, 90)
    report = maintenance.db_cleanup(30)
    # The refunded seat and everything it needs stay; the three seats nobody bought go.
    assert report.deleted == {
        "outbox_emails": 0,
        "bookings": 0,
        "orders": 0,
        "seats": 3,
        "price_categories": 0,
        "events": 0,
    }
    db_session.expire_all()
    order = db_session.get(Order, paid.id)
    assert order.payment_status == "refunded" and [p.kind for p in order.payments] == ["charge", "refund"]
    assert [b.seat_id for b in order.bookings] == seats[:1]
    assert row_counts(db_session) | {"payments": 2} == {
        "outbox_emails": 2,  # its confirmation and its cancellation, still waiting to be sent
        "bookings": 1,
        "orders": 1,
        "seats": 1,
        "price_categories": 1,
        "events": 1,
        "payments": 2,
    }


def test_db_cleanup_dry_run_reports_exactly_what_the_real_run_deletes(runner, factory, db_session):
    """Rows that only become deletable once earlier steps ran (an order emptied of its bookings,
    the seats and the event behind them) are counted by the dry run too."""
    abandoned = factory.event(rows=1, columns=3)
    booking.hold(factory.user(), abandoned, first_seats(db_session, abandoned, 2), now=utcnow() - timedelta(minutes=10))
    booking.release_expired()
    events.delete_event(abandoned)
    past(db_session, abandoned)
    refunded = factory.event(rows=1, columns=2)
    buyer = factory.user()
    payments.pay_by_card(
        booking.hold(buyer, refunded, first_seats(db_session, refunded)), user=buyer, card_number=payments.CARD_SUCCEEDS
    )
    booking.cancel_event(refunded)
    events.delete_event(refunded)
    resized = factory.event(rows=1, columns=2)
    events.update_event(
        resized,
        events.EventDetails(
            name=resized.name,
            date=resized.date,
            rows=2,
            columns=2,
            categories=[events.CategorySpec("Standard", Decimal("25.00"))],
        ),
    )
    age(db_session, 90)
    before = row_counts(db_session)

    dry = runner.invoke(args=["db-cleanup", "--older-than", "30", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert row_counts(db_session) == before
    real = runner.invoke(args=["db-cleanup", "--older-than", "30", "--batch-size", "1"])
    assert real.exit_code == 0, real.output
    after = row_counts(db_session)

    deleted = {table: before[table] - after[table] for table in before if table != "payments"}
    assert cleanup_counts(real.output) == deleted
    assert cleanup_counts(dry.output) == deleted
    assert deleted == {
        "outbox_emails": 0,
        "bookings": 2,
        "orders": 1,
        "seats": 3 + 1 + 2,
        "price_categories": 1,
        "events": 1,
    }
    assert after["payments"] == before["payments"] == 2


def test_db_cleanup_dry_run_accepts_zero_days(runner, factory, db_session):
    event = factory.event(rows=1, columns=2)
    events.delete_event(event)
    result = runner.invoke(args=["db-cleanup", "--older-than", "0", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert cleanup_counts(result.output)["events"] == 1
    assert row_counts(db_session)["events"] == 1


@pytest.mark.parametrize("days", ["0", "-5"])
def test_db_cleanup_refuses_less_than_a_day(runner, days):
    result = runner.invoke(args=["db-cleanup", "--older-than", days])
    assert result.exit_code != 0 and "at least 1 day" in result.output


def test_db_cleanup_dry_run_refuses_negative_days(runner):
    result = runner.invoke(args=["db-cleanup", "--older-than", "-1", "--dry-run"])
    assert result.exit_code != 0 and "at least 1 day" in result.output


def test_health_command_and_endpoint(runner, client, redis_client, app):
    result = runner.invoke(args=["health"])
    assert result.exit_code == 1
    assert "no heartbeat yet" in result.output and "no worker" in result.output
    assert client.get("/healthz").status_code == 503

    jobs.schedule_periodic_jobs(redis_client)
    jobs.scheduler(redis_client).heartbeat()
    worker = SimpleWorker([jobs.queue(redis_client)], connection=redis_client)
    worker.register_birth()
    try:
        result = runner.invoke(args=["health"])
        assert result.exit_code == 0, result.output
        assert "healthy" in result.output
        response = client.get("/healthz")
        assert response.status_code == 200
        body = response.get_json()
        assert (
            body["healthy"]
            and body["checks"]["migrations"]["ok"]
            and body["checks"]["workers"]["detail"] == "1 worker(s)"
        )
    finally:
        worker.register_death()


def test_livez_is_up_while_healthz_reports_the_background_services_down(client, app, redis_client):
    """/livez, the load balancer's check, asks nothing of Redis, the jobs or the database."""
    from app.extensions import db

    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"
    statements = []

    def record(connection, cursor, statement, *args):
        statements.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", record)
    try:
        live = client.get("/livez")
        assert (live.status_code, live.get_data(as_text=True)) == (200, "ok\n") and statements == []
        assert live.headers["Cache-Control"] == "no-store"
        assert client.get("/healthz").status_code == 503
        assert statements  # the full check does ask the database
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", record)


@pytest.mark.parametrize("command", [["rq-worker"], ["rq-scheduler"], ["jobs", "schedule"]])
def test_job_processes_say_when_redis_is_unreachable(runner, app, command):
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"
    result = runner.invoke(args=command)
    assert result.exit_code == 1 and "Redis is unreachable at redis://127.0.0.1:1/0" in result.output


def test_healthz_reports_redis_down_quickly(client, app):
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"
    started = time.perf_counter()
    response = client.get("/healthz")
    assert time.perf_counter() - started < 5
    assert response.status_code == 503
    assert "unreachable" in response.get_json()["checks"]["redis"]["detail"]


def test_web_still_sells_when_redis_is_down(client, factory, db_session, login, app, monkeypatch):
    from app import extensions

    monkeypatch.setitem(
        app.extensions, "stagepass_redis", redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    )
    monkeypatch.setattr(extensions, "_redis_down_until", [0.0])
    event = factory.event()
    buyer = factory.user()
    login(buyer)
    held = client.post(
        f"/api/events/{event.id}/holds",
        json={"seat_ids": first_seats(db_session, event)},
        headers={"X-CSRFToken": csrf_token(client, "/")},
    )
    assert held.status_code == 201, held.get_json()
    paid = client.post(
        held.get_json()["checkout_url"],
        data={"method": "card", "card_number": payments.CARD_SUCCEEDS, "csrf_token": csrf_token(client, "/")},
    )
    assert paid.status_code == 302
    assert db_session.scalar(sa.select(Order.status)) == "confirmed"
    assert db_session.scalar(sa.select(Order.total_amount)) == Decimal("25.00")


# --- Redis loses its data (it keeps nothing on disk) ------------------------------------------


def test_scheduler_heartbeat_puts_back_the_jobs_redis_lost(redis_client):
    jobs.schedule_periodic_jobs(redis_client)
    redis_client.flushdb()  # what a restart of a Redis that keeps nothing on disk leaves
    idle, polling = jobs.scheduler(redis_client), jobs.scheduler(redis_client)
    idle.heartbeat()  # without the lock another scheduler may be enqueuing: it leaves the schedule alone
    assert jobs.scheduled_job_ids(redis_client) == [] and jobs.heartbeat_age(redis_client) is not None
    assert polling.acquire_lock()
    polling.heartbeat()
    polling.heartbeat()
    polling.remove_lock()
    assert sorted(jobs.scheduled_job_ids(redis_client)) == sorted(jobs.PERIODIC_JOBS)
    assert redis_client.zcard(jobs.Scheduler.scheduled_jobs_key) == len(jobs.PERIODIC_JOBS)
    first_run = dict(jobs.scheduler(redis_client).get_jobs(with_times=True))
    assert all(job.meta["interval"] == jobs.PERIODIC_JOBS[job.id][1] for job in first_run)


def test_worker_lists_itself_again_after_redis_lost_it(redis_client):
    from app.services import health

    worker = jobs.worker(redis_client)
    worker.register_birth()
    try:
        redis_client.flushdb()
        assert not [check for check in health.check_redis_side() if check.name == "workers" and check.ok]
        worker.heartbeat()
        workers = {check.name: check for check in health.check_redis_side()}["workers"]
        assert workers.ok and workers.detail == "1 worker(s)"
    finally:
        worker.register_death()


def wait_until(condition, timeout=30, catch=()):
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except catch:
            pass
        assert time.monotonic() < deadline, f"still not {condition.__name__} after {timeout} s"
        time.sleep(0.2)


def test_schedule_and_worker_heal_after_a_redis_restart(app, factory, db_session, monkeypatch, tmp_path, private_redis):
    """Two schedulers and a worker outlive a Redis restart; the jobs come back and run, once each."""
    from app.extensions import db
    from app.services import health

    server = private_redis
    monkeypatch.setitem(app.config, "REDIS_URL", server.url)
    env = dict(os.environ, FLASK_APP="wsgi", DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"], REDIS_URL=server.url)
    env.pop("STAGEPASS_ENV", None)
    commands = [
        ["rq-scheduler", "--interval", "1"],
        ["rq-scheduler", "--interval", "1"],
        ["rq-worker", "--worker-ttl", "20"],
    ]
    logs = [tmp_path / f"{number}.log" for number in range(len(commands))]
    processes = []
    for command, log in zip(commands, logs, strict=False):
        with log.open("wb") as output:
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "flask", *command],
                    cwd=ROOT,
                    env=env,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                )
            )

    def healthy():
        return all(check.ok for check in health.check_redis_side())

    def all_running():
        return healthy() and len(server.client.keys("rq:scheduler_instance:*")) == 2

    try:
        wait_until(all_running)
        server.stop()
        time.sleep(2)  # long enough for redis-py's own retries to give up
        server.start()
        assert server.client.dbsize() == 0 and not healthy()
        wait_until(healthy)
        assert [process.poll() for process in processes] == [None, None, None]
        assert sorted(jobs.scheduled_job_ids(server.client)) == sorted(jobs.PERIODIC_JOBS)
        assert server.client.zcard(jobs.Scheduler.scheduled_jobs_key) == len(jobs.PERIODIC_JOBS)

        event = factory.event(rows=1, columns=2)
        stale = booking.hold(
            factory.user(), event, first_seats(db_session, event, 2), now=utcnow() - timedelta(minutes=10)
        )
        db.session.remove()

        def hold_released():
            status = db.session.get(Order, stale.id).status
            db.session.remove()  # a SQLite reader would keep the worker from writing
            return status == "expired"

        wait_until(hold_released)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        server.stop()
    output = "".join(log.read_text() for log in logs)
    assert "Traceback" not in output, output[-3000:]


# --- the Procfile ---------------------------------------------------------------------------


def procfile():
    """{process type: command} of the Procfile."""
    return dict(line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip())


def test_procfile_migrates_then_serves_production_on_port(tmp_path, redis_url):
    """`release` migrates a fresh database; `web` serves it in production on $PORT (Secure cookies)."""
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(
        os.environ,
        PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        PORT=str(port),
        GUNICORN_WORKERS="1",
        SECRET_KEY="procfile-test-secret",
        TICKET_SIGNING_KEYS="procfile:xBKcHgi9X8CnR7YxRBspZAifXRuCyp_AQd6EVJkAROA",
        DATABASE_URL=f"sqlite:///{tmp_path / 'release.sqlite'}",
        REDIS_URL=redis_url,
    )
    env.pop("STAGEPASS_ENV", None)
    env.pop("GUNICORN_BIND", None)
    processes = procfile()
    assert set(processes) == {"release", "web", "worker", "scheduler"}
    release = subprocess.run(
        ["sh", "-c", processes["release"]], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert release.returncode == 0, release.stderr
    assert "Running upgrade" in release.stderr

    with (tmp_path / "web.log").open("wb") as output:
        web = subprocess.Popen(
            ["sh", "-c", processes["web"]],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def serving():
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/livez", timeout=2).status == 200

        wait_until(serving, catch=OSError)
        login_page = urllib.request.urlopen(f"http://127.0.0.1:{port}/auth/login", timeout=5)
        cookie = login_page.headers["Set-Cookie"]
        assert login_page.status == 200 and cookie.startswith("session=") and "; Secure" in cookie
    finally:
        os.killpg(web.pid, signal.SIGTERM)  # the shell and the gunicorn it started
        web.wait(15)
    assert "Traceback" not in (tmp_path / "web.log").read_text()
