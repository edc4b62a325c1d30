"""Faults: nothing is lost or half-written, the invariants hold, and the user is told what happened."""

import os
import subprocess
import sys
import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import Event, Order, Payment, Seat, User, utcnow
from app.services import booking, locking, payments
from app.services.transactions import LOCK_WAIT_ATTEMPTS
from tests.invariants import assert_invariants, hold_rows
from tests.support import ROOT as SUPPORT_ROOT
from tests.support import app_with

ROOT = str(SUPPORT_ROOT)


def seat_ids(event, count):
    return db.session.scalars(sa.select(Seat.id).where(Seat.event_id == event.id).order_by(Seat.id)).all()[:count]


@pytest.mark.mariadb
def test_connection_killed_in_the_middle_of_a_hold(app, factory, monkeypatch):
    event = factory.event(rows=1, columns=3)
    buyer = factory.user()
    ids = seat_ids(event, 2)
    event_id, buyer_id = event.id, buyer.id
    locked, proceed = threading.Event(), threading.Event()
    victim = {}
    original = booking._claim_seats

    def pausing_claim(*args, **kwargs):
        if not victim:
            victim["id"] = db.session.execute(sa.text("SELECT CONNECTION_ID()")).scalar()
            locked.set()
            proceed.wait(10)
        return original(*args, **kwargs)

    monkeypatch.setattr(booking, "_claim_seats", pausing_claim)
    outcome = {}

    def buyer_thread():
        with app.app_context():
            try:
                outcome["order"] = booking.hold(
                    db.session.get(User, buyer_id), db.session.get(Event, event_id), ids
                ).reference
            except booking.DomainError as error:
                outcome["refused"] = error.message
            finally:
                db.session.remove()

    thread = threading.Thread(target=buyer_thread)
    thread.start()
    assert locked.wait(10)
    with db.engine.connect() as admin:
        admin.execute(sa.text(f"KILL {victim['id']}"))
    proceed.set()
    thread.join(20)
    # The killed transaction rolled back on the server; the unit of work ran again on a fresh
    # connection and either got the seats or said clearly why not.
    assert "order" in outcome or "try again" in outcome.get("refused", ""), outcome
    assert_invariants()
    if "order" in outcome:
        assert set(db.session.scalars(sa.select(Seat.status).where(Seat.id.in_(ids)))) == {"reserved"}


@pytest.mark.mariadb
def test_forced_deadlock_between_two_multi_seat_holds(app, factory, monkeypatch):
    """Two holds lock the same two seats in opposite orders (the service never does): MariaDB
    detects the deadlock (1213), the victim's unit of work is retried, and nobody sees an error."""
    event = factory.event(rows=1, columns=2)
    first, second = factory.user().id, factory.user().id
    ids = seat_ids(event, 2)
    event_id = event.id
    both_hold_one = threading.Barrier(2, timeout=10)
    forced = {"count": 0}
    original = locking.lock_seats

    def crossed_lock(seat_ids_, event_id_=None):
        order = threading.current_thread().lock_order if hasattr(threading.current_thread(), "lock_order") else None
        if order is None or forced["count"] >= 2:
            return original(seat_ids_, event_id_)
        forced["count"] += 1
        seats = [original([order[0]])[0]]
        both_hold_one.wait()
        seats += original([order[1]])
        return sorted(seats, key=lambda seat: seat.id)

    monkeypatch.setattr(locking, "lock_seats", crossed_lock)
    results = {}

    def attempt(user_id, lock_order):
        threading.current_thread().lock_order = lock_order
        with app.app_context():
            try:
                results[user_id] = (
                    "ok",
                    booking.hold(db.session.get(User, user_id), db.session.get(Event, event_id), ids).id,
                )
            except booking.DomainError as error:
                results[user_id] = (error.code, error.message)
            finally:
                db.session.remove()

    threads = [
        threading.Thread(target=attempt, args=(first, ids)),
        threading.Thread(target=attempt, args=(second, ids[::-1])),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    outcomes = sorted(kind for kind, _ in results.values())
    assert outcomes == ["ok", "seat_unavailable"], results
    assert_invariants()


@pytest.mark.mariadb
def test_connections_wait_for_row_locks_only_db_lock_wait_seconds(app):
    assert app.config["DB_LOCK_WAIT_SECONDS"] == 5
    with db.engine.connect() as connection:
        assert connection.execute(sa.text("SELECT @@SESSION.innodb_lock_wait_timeout")).scalar() == 5


@pytest.mark.mariadb
def test_hold_behind_a_long_held_row_lock_is_busy_within_seconds(app, factory):
    """Another transaction keeps a seat locked: the hold's lock waits time out (1205), are retried
    a bounded number of times and end as "busy, try again" in seconds; nothing is written and the
    lock holder is unharmed."""
    import time

    event = factory.event(rows=1, columns=3)
    ids = seat_ids(event, 2)
    event_id, buyer_id = event.id, factory.user().id
    before = hold_rows()
    outcome = {}
    with app_with(app, DB_LOCK_WAIT_SECONDS=1) as quick, db.engine.connect() as holder:
        holder.execute(sa.select(Seat.id).where(Seat.id == ids[1]).with_for_update())

        def buyer_thread():
            with quick.app_context():
                begin = time.perf_counter()
                try:
                    outcome["order"] = booking.hold(
                        db.session.get(User, buyer_id), db.session.get(Event, event_id), ids
                    ).id
                except booking.DomainError as error:
                    outcome["refused"] = error
                finally:
                    outcome["seconds"] = time.perf_counter() - begin
                    db.session.remove()

        thread = threading.Thread(target=buyer_thread)
        thread.start()
        thread.join(15)
        stuck = thread.is_alive()
        during = hold_rows()
        holder.execute(sa.update(Seat).where(Seat.id == ids[1]).values(updated_at=utcnow()))
        holder.commit()  # the lock holder was neither rolled back nor blocked
        thread.join(60)
    assert not stuck, "the hold was still waiting for the row lock after 15 s"
    assert isinstance(outcome.get("refused"), booking.SeatsBusy), outcome
    assert outcome["refused"].status == 503 and "try again" in outcome["refused"].message
    # Tried twice (LOCK_WAIT_ATTEMPTS), not SEAT_LOCK_RETRIES times: each try waited the full second.
    assert LOCK_WAIT_ATTEMPTS * 1 <= outcome["seconds"] < LOCK_WAIT_ATTEMPTS * 1 + 1.5, outcome
    assert during == before
    assert hold_rows()["seats"] != before["seats"]
    assert_invariants()


def charge_rows(order):
    return db.session.scalars(sa.select(Payment).where(Payment.order_id == order.id, Payment.kind == "charge")).all()


def assert_still_held(order, ids):
    db.session.expire_all()
    held = db.session.get(Order, order.id)
    assert (held.status, held.payment_status) == ("pending", "pending")
    assert set(db.session.scalars(sa.select(Seat.status).where(Seat.id.in_(ids)))) == {"reserved"}
    [attempt] = charge_rows(order)
    assert (attempt.result, attempt.failure_reason, attempt.provider_reference) == (
        "error",
        payments.PROVIDER_DID_NOT_ANSWER,
        None,
    )
    assert_invariants()
    return attempt


@pytest.mark.parametrize("fault", [TimeoutError, ConnectionError, OSError])
def test_payment_provider_that_raises_keeps_the_order_payable(factory, sandbox_provider, monkeypatch, fault):
    """The provider call fails before it reaches the provider: the attempt is recorded, the seats
    stay held, and paying again (the same idempotency key) charges once."""
    event = factory.event(rows=1, columns=2)
    buyer = factory.user()
    ids = seat_ids(event, 2)
    order = booking.hold(buyer, event, ids)
    keys = []
    working_charge = sandbox_provider.charge

    def unreachable(card_number, amount, *, idempotency_key):
        keys.append(idempotency_key)
        raise fault("the provider could not be reached")

    monkeypatch.setattr(sandbox_provider, "charge", unreachable)
    with pytest.raises(payments.PaymentNotAnswered, match="cannot tell yet whether your card was charged"):
        payments.pay_by_card(order, user=buyer, card_number=payments.CARD_SUCCEEDS)
    assert_still_held(order, ids)
    assert list(sandbox_provider.charges) == []

    def reachable(card_number, amount, *, idempotency_key):
        keys.append(idempotency_key)
        return working_charge(card_number, amount, idempotency_key=idempotency_key)

    monkeypatch.setattr(sandbox_provider, "charge", reachable)
    paid = payments.pay_by_card(db.session.get(Order, order.id), user=buyer, card_number=payments.CARD_SUCCEEDS)
    assert paid.status == "confirmed" and keys[0] == keys[1]
    [charge] = charge_rows(order)
    [moved] = sandbox_provider.charges
    assert (charge.result, charge.provider_reference, charge.failure_reason) == ("succeeded", moved.reference, None)
    assert_invariants()


def test_payment_provider_timeout_after_it_charged(factory, sandbox_provider):
    """The sandbox's timeout card: the provider charges, then its answer is lost. Paying again
    asks with the same idempotency key and gets that charge back instead of a second one."""
    event = factory.event(rows=1, columns=2)
    buyer = factory.user()
    ids = seat_ids(event, 2)
    order = booking.hold(buyer, event, ids)
    with pytest.raises(payments.PaymentNotAnswered):
        payments.pay_by_card(order, user=buyer, card_number=payments.CARD_PROVIDER_TIMEOUT)
    assert_still_held(order, ids)
    [moved] = sandbox_provider.charges  # the money moved, though nobody heard back
    paid = payments.pay_by_card(db.session.get(Order, order.id), user=buyer, card_number=payments.CARD_PROVIDER_TIMEOUT)
    assert (paid.status, paid.card_last4, paid.provider_reference) == ("confirmed", "0259", moved.reference)
    assert len(sandbox_provider.charges) == 1 and len(charge_rows(order)) == 1
    assert set(db.session.scalars(sa.select(Seat.status).where(Seat.id.in_(ids)))) == {"booked"}
    assert_invariants()


def test_unanswered_payment_left_until_the_hold_runs_out(factory, sandbox_provider):
    event = factory.event(rows=1, columns=1)
    buyer = factory.user()
    ids = seat_ids(event, 1)
    order = booking.hold(buyer, event, ids, now=utcnow() - timedelta(minutes=10))
    with pytest.raises(payments.PaymentNotAnswered):
        payments.pay_by_card(
            order, user=buyer, card_number=payments.CARD_PROVIDER_TIMEOUT, now=utcnow() - timedelta(minutes=9)
        )
    assert booking.release_expired() == 1
    db.session.expire_all()
    assert db.session.get(Order, order.id).status == "expired"
    assert (
        payments.payment_summary(db.session.get(Order, order.id))
        == "The payment provider did not answer before the hold ran out."
    )
    assert_invariants()


def test_event_cancel_retried_after_a_refund_timeout_refunds_each_order_once(factory, sandbox_provider, monkeypatch):
    """The first order's refund went through at the provider before the second one timed out and
    the whole cancellation rolled back: run again, the same keys get the same refunds back."""
    event = factory.event(rows=1, columns=4)
    ids = seat_ids(event, 4)
    orders = []
    for pair in (ids[:2], ids[2:]):
        buyer = factory.user()
        orders.append(
            payments.pay_by_card(booking.hold(buyer, event, pair), user=buyer, card_number=payments.CARD_SUCCEEDS)
        )
    working_refund, answered = sandbox_provider.refund, []

    def times_out_on_the_second(charge_reference, amount, *, idempotency_key):
        answered.append(idempotency_key)
        if len(answered) == 2:
            raise TimeoutError("no answer")
        return working_refund(charge_reference, amount, idempotency_key=idempotency_key)

    monkeypatch.setattr(sandbox_provider, "refund", times_out_on_the_second)
    with pytest.raises(payments.RefundFailed, match="did not answer"):
        booking.cancel_event(event)
    db.session.expire_all()
    assert db.session.get(Event, event.id).status == "published"
    assert len(sandbox_provider.refunds) == 1  # refunded at the provider, not in our ledger (rolled back)
    assert db.session.scalar(sa.select(sa.func.count(Payment.id)).where(Payment.kind == "refund")) == 0
    summary = booking.cancel_event(db.session.get(Event, event.id))
    assert summary.refunded == 2
    assert len(sandbox_provider.refunds) == 2
    ledger = db.session.scalars(sa.select(Payment.provider_reference).where(Payment.kind == "refund")).all()
    assert sorted(ledger) == sorted(answer.reference for answer in sandbox_provider.refunds)
    assert_invariants()


WORKER_THAT_DIES = """
import os
from app import create_app
from app.services import booking, orders
app = create_app()
original = orders.close_expired
def close_then_die(order, now):
    original(order, now)   # the first order is half-way closed inside the open transaction...
    os._exit(137)          # ...when the worker is killed
orders.close_expired = close_then_die
with app.app_context():
    booking.release_expired()
"""


def test_worker_killed_in_the_middle_of_the_cleanup_job(app, factory):
    event = factory.event(rows=1, columns=4)
    ids = seat_ids(event, 4)
    long_ago = utcnow() - timedelta(minutes=10)
    stale = [booking.hold(factory.user(), event, ids[i : i + 2], now=long_ago).id for i in (0, 2)]
    db.session.remove()
    env = dict(os.environ, DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"], REDIS_URL=app.config["REDIS_URL"])
    died = subprocess.run([sys.executable, "-c", WORKER_THAT_DIES], cwd=ROOT, env=env, capture_output=True, timeout=60)
    assert died.returncode == 137, died.stderr.decode()[-2000:]
    # Nothing half-closed: the dead worker's transaction never committed.
    assert {db.session.get(Order, order_id).status for order_id in stale} == {"pending"}
    assert set(db.session.scalars(sa.select(Seat.status).where(Seat.id.in_(ids)))) == {"reserved"}
    assert_invariants()
    assert booking.release_expired() == 2  # the next run finishes the job
    assert_invariants()


def test_redis_stops_during_a_sale(app, client, factory, login, monkeypatch, private_redis):
    """A real Redis on its own port serves the start of the sale, then dies: the sale goes on."""
    import redis

    from app import extensions
    from tests.support import csrf_token

    client_redis = redis.Redis(
        host="127.0.0.1", port=private_redis.port, socket_connect_timeout=0.5, socket_timeout=0.5
    )
    monkeypatch.setitem(app.extensions, "stagepass_redis", client_redis)
    monkeypatch.setattr(extensions, "_redis_down_until", [0.0])
    try:
        event = factory.event(rows=1, columns=3)
        login(factory.user())
        token = csrf_token(client, "/")
        ids = seat_ids(event, 2)
        first = client.post(f"/api/events/{event.id}/holds", json={"seat_ids": ids[:1]}, headers={"X-CSRFToken": token})
        assert first.status_code == 201
        assert int(client_redis.get(f"stagepass:seatmap:{event.id}:changes")) >= 1  # Redis was in use
    finally:
        private_redis.stop()
    paid = client.post(
        first.get_json()["checkout_url"],
        data={"method": "card", "card_number": payments.CARD_SUCCEEDS, "csrf_token": token},
    )
    assert paid.status_code == 302 and "/orders/" in paid.headers["Location"]
    assert client.get(f"/api/events/{event.id}/seats").get_json()["seats"][0][3] == "b"
    assert_invariants()


@pytest.mark.mariadb
def test_connection_killed_while_idle_in_the_pool_is_replaced_before_use(app):
    """Without pool_pre_ping, a connection idle past DB_PING_AFTER_IDLE_SECONDS is pinged at
    checkout, and a dead one is replaced before the request sees it."""
    with app_with(app, DB_PING_AFTER_IDLE_SECONDS=0) as other, other.app_context():
        victim = db.session.scalar(sa.text("SELECT CONNECTION_ID()"))
        db.session.remove()  # back to the pool, idle
        server = sa.create_engine(db.engine.url, poolclass=sa.pool.NullPool)
        with server.connect() as admin:
            admin.execute(sa.text(f"KILL {victim}"))
        server.dispose()
        replacement = db.session.scalar(sa.text("SELECT CONNECTION_ID()"))
        db.session.remove()
    assert replacement != victim


@pytest.mark.mariadb
def test_a_connection_in_steady_use_is_not_pinged(app, monkeypatch):
    """The round trip pool_pre_ping paid on every checkout is gone while connections are busy."""
    import pymysql

    pings = []
    real_ping = pymysql.connections.Connection.ping

    def counted_ping(connection, *args, **kwargs):
        pings.append(connection)
        return real_ping(connection, *args, **kwargs)

    monkeypatch.setattr(pymysql.connections.Connection, "ping", counted_ping)
    for _ in range(5):
        assert db.session.scalar(sa.text("SELECT 1")) == 1
        db.session.remove()
    assert pings == []
