"""The invariants every test of concurrent or random behaviour checks at the end."""

import json
from collections import Counter, defaultdict
from decimal import Decimal

import sqlalchemy as sa

from app.extensions import db
from app.models import Booking, Order, Payment, PaymentKind, PaymentResult, Seat, WaitlistEntry


def succeeded(payments, kind):
    """What the provider actually moved: the amounts of its successful charges or refunds."""
    return sum((p.amount for p in payments if p.kind == kind and p.result == PaymentResult.SUCCEEDED), Decimal("0"))


def assert_invariants():
    """At most one live booking per seat; seat states match their bookings; money adds up, per
    order and in total (counting only what the provider says succeeded)."""
    db.session.expire_all()
    bookings = db.session.scalars(sa.select(Booking).execution_options(include_deleted=True)).all()
    _assert_seats_match_bookings(bookings)
    for order in db.session.scalars(sa.select(Order)):
        _assert_order_adds_up(order)
    _assert_money_adds_up()
    assert_ticket_invariants(bookings)
    _assert_waitlist_offers_are_exclusive()


def _assert_seats_match_bookings(bookings):
    live_per_seat = Counter(
        b.seat_id for b in bookings if b.status in ("pending", "confirmed") and b.deleted_at is None
    )
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
        for b in by_seat[seat.id]:
            if b.status in ("pending", "confirmed"):
                # prices of held or booked seats cannot change, so a live booking costs its seat's price
                assert b.total_amount == seat.price_category.price, (seat, b, b.total_amount)


def _assert_order_adds_up(order):
    booking_states = {b.status for b in order.bookings}
    if order.status == "confirmed":
        assert order.payment_status == "paid" and order.paid_at is not None, order
    if order.status in ("expired", "failed", "cancelled"):
        assert "pending" not in booking_states, (order, booking_states)
        assert all(p.result != PaymentResult.PENDING for p in order.payments), (order, "a payment is still pending")
    if order.status == "pending":
        # an admin's cancelled seat leaves the total; a seat whose hold ran out still counts until cleanup
        owed = sum((b.total_amount for b in order.bookings if b.status != "cancelled"), Decimal("0"))
        assert order.total_amount == owed, (order, order.total_amount, owed)
    charges = [p for p in order.payments if p.kind == "charge" and p.result == "succeeded"]
    assert len(charges) <= 1, order
    if order.payment_status in ("paid", "refunded"):
        assert len(charges) == 1 and charges[0].amount == order.total_amount, order
    refunded = succeeded(order.payments, PaymentKind.REFUND)
    kept = sum((b.total_amount for b in order.bookings if b.status == "confirmed"), Decimal("0"))
    assert succeeded(order.payments, PaymentKind.CHARGE) - refunded == kept, (order, order.payments, kept)
    assert order.refunded_amount == refunded, (order, order.refunded_amount, refunded)


def _assert_money_adds_up():
    payments = db.session.scalars(sa.select(Payment)).all()
    kept = db.session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(Booking.total_amount), 0)).where(Booking.status == "confirmed")
    )
    charged, refunded = succeeded(payments, PaymentKind.CHARGE), succeeded(payments, PaymentKind.REFUND)
    assert charged - refunded == Decimal(kept), (charged, refunded, kept)


def _assert_waitlist_offers_are_exclusive():
    """One open entry per buyer per event; an open offer is a pending order of its entry's buyer
    and event; no seat is offered to two entries; no offered seat is sold to anyone else."""
    entries = db.session.scalars(sa.select(WaitlistEntry)).all()
    open_per_buyer = Counter((e.user_id, e.event_id) for e in entries if e.status in ("waiting", "offered"))
    assert all(count == 1 for count in open_per_buyer.values()), open_per_buyer
    offered_to = defaultdict(list)
    for entry in entries:
        if entry.status == "offered":
            assert entry.offer_order_id is not None and entry.offer_expires_at is not None, entry
        if entry.offer_order_id is None:
            continue
        offer = db.session.get(Order, entry.offer_order_id)
        assert (offer.user_id, offer.event_id) == (entry.user_id, entry.event_id), (entry, offer)
        if entry.status in ("offered", "accepted") and offer.status == "pending":
            for booking in offer.bookings:
                if booking.status == "pending":
                    offered_to[booking.seat_id].append(entry.id)
                    seat = db.session.get(Seat, booking.seat_id)
                    others = db.session.scalars(
                        sa.select(Booking).where(
                            Booking.seat_id == seat.id,
                            Booking.status.in_(("pending", "confirmed")),
                            Booking.order_id != offer.id,
                        )
                    ).all()
                    assert seat.status == "reserved" and not others, (entry, seat, others)
    assert all(len(ids) == 1 for ids in offered_to.values()), offered_to


def assert_ticket_invariants(bookings):
    """A confirmed seat has exactly one valid ticket; every other seat's ticket, if it had one, is void."""
    from app.models import Ticket

    tickets = {t.booking_id: t for t in db.session.scalars(sa.select(Ticket))}
    for b in bookings:
        ticket = tickets.get(b.id)
        if b.status == "confirmed" and b.deleted_at is None:
            assert ticket is not None and not ticket.is_void, (b, ticket)
            assert (ticket.order_id, ticket.event_id, ticket.seat_id) == (b.order_id, b.event_id, b.seat_id), ticket
        elif ticket is not None:
            assert ticket.is_void, (b, ticket)
    assert set(tickets) <= {b.id for b in bookings}


def snapshot_rows() -> dict[str, list[tuple]]:
    """Every row of every table (soft-deleted ones too), in primary-key order: equal snapshots mean
    nothing changed. Read on a connection of its own, so it sees what other sessions committed."""
    with db.engine.connect() as connection:
        return {
            table.name: [
                tuple(_hashable(value) for value in row)
                for row in connection.execute(table.select().order_by(*table.primary_key.columns))
            ]
            for table in db.metadata.sorted_tables
        }


def _hashable(value):
    # JSON columns (the audit trail's details) load as dicts, which a set of rows cannot hold.
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else value


def changed_rows(before: dict, after: dict) -> dict[str, dict]:
    """The rows that differ between two snapshots, per table: {"users": {"gone": [...], "new": [...]}}."""
    changes = {}
    for table in before.keys() | after.keys():
        old, new = set(before.get(table, ())), set(after.get(table, ()))
        if old != new:
            changes[table] = {"gone": sorted(old - new, key=repr), "new": sorted(new - old, key=repr)}
    return changes


def hold_rows() -> dict[str, list[tuple]]:
    """Every row of the tables a hold writes (seats, orders, bookings), read past the session."""
    return {name: rows for name, rows in snapshot_rows().items() if name in ("seats", "orders", "bookings")}
