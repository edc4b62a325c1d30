"""A public hold racing the expiry of seats the waiting list should get never wins them.

Threads with their own connections. On MariaDB a blocking transaction holds the seat rows while
the two contenders queue behind it in a chosen order, so both orders of arrival are tested; the
barrier race runs on both databases.
"""

import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import Event, Order, Seat, User, WaitlistEntry
from app.services import booking, waitlist
from app.services.errors import DomainError
from tests.concurrency.test_concurrency import run_together
from tests.invariants import assert_invariants
from tests.support import app_with


def seat_ids(event):
    return list(db.session.scalars(sa.select(Seat.id).where(Seat.event_id == event.id).order_by(Seat.id)))


def expired_hold_with_a_waiting_entry(factory, seats=2):
    event = factory.event(rows=1, columns=seats)
    ids = seat_ids(event)
    order = booking.hold(factory.user(), event, ids)
    entry = waitlist.join(factory.user(), event, party_size=seats)
    later = db.session.get(Order, order.id, populate_existing=True).hold_expires_at + timedelta(seconds=1)
    return event, ids, entry, later


def assert_the_list_got_the_seats(entry, ids):
    db.session.expire_all()
    entry = db.session.get(WaitlistEntry, entry.id)
    assert entry.status == "offered"
    offer = db.session.get(Order, entry.offer_order_id)
    assert sorted(b.seat_id for b in offer.bookings if b.status == "pending") == ids
    live = db.session.scalars(sa.select(Order).where(Order.status == "pending")).all()
    assert [o.id for o in live] == [offer.id]  # nobody else holds anything
    assert_invariants()


def lock_waits(connection, database) -> int:
    """Transactions of this test database waiting for a row lock."""
    return connection.execute(
        sa.text(
            "SELECT COUNT(*) FROM information_schema.innodb_trx t "
            "JOIN information_schema.processlist p ON p.id = t.trx_mysql_thread_id "
            "WHERE t.trx_state = 'LOCK WAIT' AND p.db = :db"
        ),
        {"db": database},
    ).scalar()


@pytest.mark.mariadb
@pytest.mark.parametrize("first", ["expiry", "public_hold"])
def test_public_hold_racing_the_expiry_never_wins_either_order(app, factory, first):
    event, ids, entry, later = expired_hold_with_a_waiting_entry(factory)
    event_id, public_id = event.id, factory.user().id
    actions = {
        "expiry": lambda: booking.release_expired(now=later),
        "public_hold": lambda: (
            booking.hold(db.session.get(User, public_id), db.session.get(Event, event_id), ids, now=later).reference
        ),
    }
    second = "expiry" if first == "public_hold" else "public_hold"
    results = {}

    def run(name):
        with patient.app_context():
            try:
                results[name] = ("ok", actions[name]())
            except DomainError as error:
                results[name] = (type(error).__name__, error.message)
            except Exception as error:  # a leak: recorded so the test shows it
                results[name] = ("LEAK", repr(error))
            finally:
                db.session.remove()

    database = db.engine.url.database
    # Contenders wait for row locks as long as the test needs on a busy machine (not 5 s).
    with (
        app_with(app, DB_LOCK_WAIT_SECONDS=120) as patient,
        db.engine.connect() as blocker,
        db.engine.connect() as watcher,
    ):
        transaction = blocker.begin()
        blocker.execute(sa.select(Seat.id).where(Seat.id.in_(ids)).order_by(Seat.id).with_for_update()).all()
        threads = {name: threading.Thread(target=run, args=(name,)) for name in (first, second)}
        for count, name in enumerate((first, second), start=1):
            threads[name].start()
            deadline = time.monotonic() + 60
            while lock_waits(watcher, database) < count and time.monotonic() < deadline:
                time.sleep(0.02)
            assert lock_waits(watcher, database) == count, f"{name} is not waiting for the seat lock: {results}"
        transaction.rollback()
        for thread in threads.values():
            thread.join(120)
    assert results["public_hold"][0] == "SeatUnavailable", results
    assert results["expiry"][0] == "ok", results
    assert_the_list_got_the_seats(entry, ids)


def test_public_holds_racing_the_expiry_job_never_win(app, factory):
    for _ in range(5):
        event, ids, entry, later = expired_hold_with_a_waiting_entry(factory)
        event_id = event.id
        buyers = [factory.user().id for _ in range(3)]

        def attempt(i, event_id=event_id, buyers=buyers, ids=ids, later=later):
            if i == 0:
                return booking.release_expired(now=later)
            return booking.hold(db.session.get(User, buyers[i - 1]), db.session.get(Event, event_id), ids, now=later).id

        results = run_together(app, 4, attempt)
        assert results[0][0] == "ok", results
        assert all(kind in ("SeatUnavailable", "SeatsBusy") for kind, _ in results[1:]), results
        assert_the_list_got_the_seats(entry, ids)
        booking.cancel_order(db.session.get(WaitlistEntry, entry.id).offer_order)  # clear for the next round
        waitlist.set_open(event, False)
