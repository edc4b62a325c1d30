"""The invariants every test of concurrent or random behaviour checks at the end."""
from collections import Counter, defaultdict
from decimal import Decimal

import sqlalchemy as sa

from app.extensions import db
from app.models import Booking, Order, Payment, Seat


def assert_invariants():
    """At most one live booking per seat; seat states match their bookings; money adds up."""
    db.session.expire_all()
    bookings = db.session.scalars(sa.select(Booking).execution_options(include_deleted=True)).all()
    live_per_seat = Counter(b.seat_id for b in bookings if b.status in ("pending", "confirmed") and b.deleted_at is None)
    assert all(count == 1 for count in live_per_seat.values()), live_per_seat

    by_seat = defaultdict(list)
    for b in bookings:
        by_seat[b.seat_id].append(b)
    for seat in db.session.scalars(sa.select(Seat)):
        statuses = [b.status for b in by_seat[seat.id]]
        if seat.status == "booked":
            assert statuses.count("confirmed") == 1, (seat, statuses)
        elif seat.status == "reserved":
            assert statuses.count("pending") == 1 and "confirmed" not in statuses, (seat, statuses)
        else:
            assert "pending" not in statuses and "confirmed" not in statuses, (seat, statuses)

    for order in db.session.scalars(sa.select(Order)):
        booking_states = {b.status for b in order.bookings}
        if order.status == "confirmed":
            assert order.payment_status == "paid" and order.paid_at is not None, order
        if order.status in ("expired", "failed", "cancelled"):
            assert "pending" not in booking_states, (order, booking_states)
        charges = [p for p in order.payments if p.kind == "charge" and p.result == "succeeded"]
        assert len(charges) <= 1, order
        if order.payment_status in ("paid", "refunded"):
            assert len(charges) == 1 and charges[0].amount == order.total_amount, order

    charged = db.session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(Payment.amount), 0)).where(Payment.kind == "charge", Payment.result == "succeeded")
    )
    refunded = db.session.scalar(sa.select(sa.func.coalesce(sa.func.sum(Payment.amount), 0)).where(Payment.kind == "refund"))
    kept = db.session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(Booking.total_amount), 0)).where(Booking.status == "confirmed")
    )
    assert Decimal(charged) - Decimal(refunded) == Decimal(kept), (charged, refunded, kept)


def hold_rows():
    """Every row of the tables a hold writes (seats, orders, bookings), read past the session."""
    with db.engine.connect() as connection:
        return {
            table.name: connection.execute(sa.select(table).order_by(*table.primary_key.columns)).all()
            for table in (Seat.__table__, Order.__table__, Booking.__table__)
        }
