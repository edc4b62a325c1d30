"""Real concurrency: threads with their own database connections, released together by a barrier.

These run on both databases; on MariaDB they exercise SELECT ... FOR UPDATE, deadlock retries and
READ COMMITTED, which is what production runs.
"""

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import Event, Order, Payment, Seat, User, utcnow
from app.services import booking, payments
from app.services.errors import DomainError
from tests.invariants import assert_invariants

REFUSALS = (booking.SeatUnavailable, booking.SeatsBusy)


def run_together(app, count, action, timeout=60):
    """Run action(i) in `count` threads, each in its own app context (own session and connection)."""
    barrier = threading.Barrier(count, timeout=timeout)

    def worker(index):
        with app.app_context():
            try:
                barrier.wait()
                return ("ok", action(index))
            except DomainError as error:
                return (type(error).__name__, error)
            except Exception as error:  # a leak: recorded so the test shows it
                return ("LEAK", repr(error))
            finally:
                db.session.remove()

    with ThreadPoolExecutor(max_workers=count) as pool:
        results = list(pool.map(worker, range(count), timeout=timeout * 2))
    return results


def ids_of(event, count=None):
    ids = db.session.scalars(sa.select(Seat.id).where(Seat.event_id == event.id).order_by(Seat.id)).all()
    return ids[:count] if count else ids


def users(factory, count):
    return [factory.user().id for _ in range(count)]


def test_fifty_buyers_one_seat_exactly_one_hold(app, factory):
    event = factory.event(rows=1, columns=2)
    event_id, [seat_id] = event.id, ids_of(event, 1)
    buyers = users(factory, 50)

    def attempt(i):
        return booking.hold(db.session.get(User, buyers[i]), db.session.get(Event, event_id), [seat_id]).id

    results = run_together(app, 50, attempt)
    outcomes = [kind for kind, _ in results]
    assert outcomes.count("ok") == 1, outcomes
    assert set(outcomes) <= {"ok", "SeatUnavailable", "SeatsBusy"}, results
    assert db.session.scalar(sa.select(sa.func.count(Order.id))) == 1
    assert_invariants()


def test_overlapping_multi_seat_holds_never_both(app, factory):
    event = factory.event(rows=1, columns=5)
    event_id = event.id
    seat_ids = ids_of(event)
    wants = [seat_ids[0:3], seat_ids[2:5]]
    for round_number in range(15):
        buyers = users(factory, 2)

        def attempt(i, buyers=buyers):
            return booking.hold(db.session.get(User, buyers[i]), db.session.get(Event, event_id), wants[i]).id

        results = run_together(app, 2, attempt)
        outcomes = sorted(kind for kind, _ in results)
        assert "LEAK" not in outcomes, results
        assert outcomes.count("ok") == 1 or outcomes == ["SeatsBusy", "SeatsBusy"], (round_number, results)
        assert_invariants()
        for kind, order_id in results:
            if kind == "ok":
                order = db.session.get(Order, order_id)
                booking.release(order, user=order.user)


def test_many_overlapping_multi_seat_holds(app, factory):
    """Twelve buyers, each wanting three seats in a sliding window over six: locks in id order, no stuck rows."""
    event = factory.event(rows=1, columns=8)
    event_id = event.id
    seat_ids = ids_of(event)
    buyers = users(factory, 12)
    wants = [list(reversed(seat_ids[i % 6 : i % 6 + 3])) for i in range(12)]

    def attempt(i):
        return booking.hold(db.session.get(User, buyers[i]), db.session.get(Event, event_id), wants[i]).id

    results = run_together(app, 12, attempt)
    assert "LEAK" not in {kind for kind, _ in results}, results
    won = [set(wants[i]) for i, (kind, _) in enumerate(results) if kind == "ok"]
    assert won, results
    for i, first in enumerate(won):
        for second in won[i + 1 :]:
            assert not first & second
    assert_invariants()


def test_hold_racing_the_expiry_cleanup(app, factory):
    event = factory.event(rows=1, columns=3)
    event_id = event.id
    seat_ids = ids_of(event, 2)
    stale = booking.hold(factory.user(), event, seat_ids, now=utcnow() - timedelta(minutes=10))
    buyers = users(factory, 10)

    def attempt(i):
        if i == 0:
            return booking.release_expired()
        return booking.hold(db.session.get(User, buyers[i]), db.session.get(Event, event_id), [seat_ids[i % 2]]).id

    results = run_together(app, 10, attempt)
    assert "LEAK" not in {kind for kind, _ in results}, results
    holds = [value for i, (kind, value) in enumerate(results) if kind == "ok" and i > 0]
    assert len(holds) == 2, results
    db.session.expire_all()
    assert db.session.get(Order, stale.id).status == "expired" or booking.release_expired() == 1
    assert_invariants()


@pytest.mark.parametrize("offset_ms", [-50, 0, 50])
def test_pay_racing_the_expiry_cleanup(app, factory, offset_ms):
    event = factory.event(rows=1, columns=2)
    buyer = factory.user()
    buyer_id = buyer.id
    expires_soon = (
        utcnow() - timedelta(seconds=app.config["HOLD_TTL_SECONDS"]) + timedelta(milliseconds=150 + offset_ms)
    )
    order = booking.hold(buyer, event, ids_of(event, 1), now=expires_soon)
    order_id = order.id

    def attempt(i):
        if i == 0:
            return booking.release_expired(utcnow() + timedelta(milliseconds=150))
        order = db.session.get(Order, order_id)
        return payments.pay_by_card(
            order, user=db.session.get(User, buyer_id), card_number=payments.CARD_SUCCEEDS
        ).status

    results = run_together(app, 2, attempt)
    assert "LEAK" not in {kind for kind, _ in results}, results
    db.session.expire_all()
    final = db.session.get(Order, order_id)
    charges = db.session.scalars(sa.select(Payment).where(Payment.order_id == order_id)).all()
    if final.status == "confirmed":
        assert len(charges) == 1 and results[1] == ("ok", "confirmed")
    elif results[1][0] == "ChargeRefunded":
        # The cleanup closed the order while the provider was answering: the charge is paid back.
        assert final.status == "expired" and final.payment_status == "refunded"
        assert sorted((p.kind, p.result) for p in charges) == [("charge", "succeeded"), ("refund", "succeeded")]
    else:
        assert final.status == "expired" and charges == []
        assert results[1][0] in ("HoldExpired", "OrderNotPending")
    assert_invariants()


@pytest.mark.mariadb
def test_pay_that_waited_for_the_locks_past_its_hold_is_refused_before_charging(app, factory, sandbox_provider):
    """A's payment starts while its hold is still good, then waits on the seat lock (held here by
    another transaction) until the hold has run out and B wants the seat: whoever gets the lock
    first, A's payment is judged when it got the lock, so it is refused and nothing is charged."""
    event = factory.event(rows=1, columns=2)
    first, second = factory.user(), factory.user()
    event_id, first_id, second_id = event.id, first.id, second.id
    [seat_id] = ids_of(event, 1)
    ttl = timedelta(seconds=app.config["HOLD_TTL_SECONDS"])
    # Expires in 1.5 to 2.5 s: MariaDB keeps the expiry in whole seconds.
    order_id = booking.hold(first, event, [seat_id], now=utcnow() - ttl + timedelta(seconds=2.5)).id
    hold_ends = db.session.get(Order, order_id).hold_expires_at
    db.session.remove()
    results = {}

    def pay():
        with app.app_context():
            try:
                order = db.session.get(Order, order_id)
                results["pay"] = payments.pay_by_card(
                    order, user=db.session.get(User, first_id), card_number=payments.CARD_SUCCEEDS
                ).status
            except Exception as error:
                results["pay"] = error
            finally:
                db.session.remove()

    def take_over():
        with app.app_context():
            try:
                results["hold"] = booking.hold(
                    db.session.get(User, second_id), db.session.get(Event, event_id), [seat_id]
                ).status
            except Exception as error:
                results["hold"] = error
            finally:
                db.session.remove()

    with db.engine.connect() as blocker:
        blocker.execute(sa.text("SELECT id FROM seats WHERE id = :id FOR UPDATE"), {"id": seat_id})
        payer = threading.Thread(target=pay)
        payer.start()
        time.sleep(0.3)  # A is waiting for the lock, with its hold still good
        assert utcnow() < hold_ends and "pay" not in results
        time.sleep(max(0.0, (hold_ends - utcnow()).total_seconds()) + 0.2)
        taker = threading.Thread(target=take_over)
        taker.start()
        time.sleep(0.3)
        blocker.rollback()
    payer.join(30)
    taker.join(30)
    assert isinstance(results["pay"], booking.HoldExpired), results
    assert results["hold"] == "pending", results
    assert list(sandbox_provider.charges) == []
    db.session.expire_all()
    assert db.session.get(Order, order_id).status == "expired"
    assert db.session.scalar(sa.select(sa.func.count(Payment.id)).where(Payment.order_id == order_id)) == 0
    assert_invariants()


def test_concurrent_double_submit_charges_once(app, factory):
    event = factory.event(rows=1, columns=2)
    buyer = factory.user()
    buyer_id = buyer.id
    order_id = booking.hold(buyer, event, ids_of(event, 2)).id

    def attempt(i):
        order = db.session.get(Order, order_id)
        return payments.pay_by_card(
            order, user=db.session.get(User, buyer_id), card_number=payments.CARD_SUCCEEDS
        ).status

    results = run_together(app, 8, attempt)
    assert set(results) == {("ok", "confirmed")}, results
    assert db.session.scalar(sa.select(sa.func.count(Payment.id)).where(Payment.order_id == order_id)) == 1
    assert_invariants()


def test_cancel_event_racing_new_holds(app, factory):
    event = factory.event(rows=2, columns=5)
    event_id = event.id
    seat_ids = ids_of(event)
    buyers = users(factory, 10)

    def attempt(i):
        if i == 0:
            return booking.cancel_event(db.session.get(Event, event_id)).orders
        return booking.hold(db.session.get(User, buyers[i]), db.session.get(Event, event_id), [seat_ids[i]]).id

    results = run_together(app, 10, attempt)
    assert "LEAK" not in {kind for kind, _ in results}, results
    db.session.expire_all()
    live = db.session.scalar(sa.select(sa.func.count(Order.id)).where(Order.status.in_(["pending", "confirmed"])))
    assert live == 0, "an order survived the cancelled event"
    assert_invariants()
