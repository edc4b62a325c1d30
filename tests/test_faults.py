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
from app.services import booking, payments
from tests.invariants import assert_invariants

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
                outcome["order"] = booking.hold(db.session.get(User, buyer_id), db.session.get(Event, event_id), ids).reference
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
    original = booking._lock_seats

    def crossed_lock(seat_ids_, event_id_=None):
        order = threading.current_thread().lock_order if hasattr(threading.current_thread(), "lock_order") else None
        if order is None or forced["count"] >= 2:
            return original(seat_ids_, event_id_)
        forced["count"] += 1
        seats = [original([order[0]])[0]]
        both_hold_one.wait()
        seats += original([order[1]])
        return sorted(seats, key=lambda seat: seat.id)

    monkeypatch.setattr(booking, "_lock_seats", crossed_lock)
    results = {}

    def attempt(user_id, lock_order):
        threading.current_thread().lock_order = lock_order
        with app.app_context():
            try:
                results[user_id] = ("ok", booking.hold(db.session.get(User, user_id), db.session.get(Event, event_id), ids).id)
            except booking.DomainError as error:
                results[user_id] = (error.code, error.message)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=attempt, args=(first, ids)), threading.Thread(target=attempt, args=(second, ids[::-1]))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    outcomes = sorted(kind for kind, _ in results.values())
    assert outcomes == ["ok", "seat_unavailable"], results
    assert_invariants()


def test_payment_provider_timeout(factory):
    event = factory.event(rows=1, columns=2)
    buyer = factory.user()
    ids = seat_ids(event, 2)
    order = booking.hold(buyer, event, ids)
    with pytest.raises(payments.PaymentProviderError, match="did not answer in time; you were not charged"):
        payments.pay_by_card(order, user=buyer, card_number=payments.CARD_PROVIDER_TIMEOUT)
    db.session.expire_all()
    failed = db.session.get(Order, order.id)
    assert (failed.status, failed.payment_status) == ("failed", "failed")
    assert db.session.scalar(sa.select(Payment.result)) == "error"
    assert set(db.session.scalars(sa.select(Seat.status).where(Seat.id.in_(ids)))) == {"available"}
    assert_invariants()


WORKER_THAT_DIES = """
import os
from app import create_app
from app.services import booking
app = create_app()
original = booking.close_expired
def close_then_die(order, now):
    original(order, now)   # the first order is half-way closed inside the open transaction...
    os._exit(137)          # ...when the worker is killed
booking.close_expired = close_then_die
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
    from tests.conftest import csrf_token

    client_redis = redis.Redis(host="127.0.0.1", port=private_redis.port, socket_connect_timeout=0.5, socket_timeout=0.5)
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
    paid = client.post(first.get_json()["checkout_url"], data={"method": "card", "card_number": payments.CARD_SUCCEEDS, "csrf_token": token})
    assert paid.status_code == 302 and "/orders/" in paid.headers["Location"]
    assert client.get(f"/api/events/{event.id}/seats").get_json()["seats"][0][3] == "b"
    assert_invariants()
