"""Row locks, in the one order every unit of work takes them, so two of them never wait on each other in a circle.

Lock order, everywhere:

    1. the event row       shared (holds, payments) or exclusive (edit, publish, cancel the event)
    2. seats               in ascending id
    3. orders              in ascending id
    4. bookings            (only through their order: no helper locks a booking row alone)
    5. tickets             (tickets.revoke*, after the order and its bookings)
    6. the event's waiting list row, then its entries (waitlist.py; its offer step may add seats
       already on sale with SKIP LOCKED, which never waits, so it does not count as going back up)

A unit of work may skip a level but never go back up one: one that holds an order lock must not
then lock a seat. Payment rows are written only with their order locked, so they need no lock of
their own. A charge never calls the payment provider with any of these locks held (payments.py);
the refund of an admin's cancellation still does (payments.refund, inside the cancellation's unit
of work, so a refused refund changes nothing), and automatic refunds do not.

Each helper re-reads the rows (populate_existing) and refuses to run outside `run_unit_of_work`:
a lock taken outside a transaction that commits or rolls back would be held by nobody in charge.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask_babel import gettext as _

from app.extensions import db
from app.models import Booking, Event, Order, PriceCategory, Seat
from app.services.errors import NotFound
from app.services.precompiled import Precompiled

UNIT_OF_WORK = "stagepass_unit_of_work"


class LockOutsideUnitOfWork(RuntimeError):
    """A lock helper was called outside run_unit_of_work: a programming error, not a user's."""


def in_unit_of_work() -> bool:
    """Whether the current session is inside run_unit_of_work."""
    return bool(db.session.info.get(UNIT_OF_WORK))


def _require_unit_of_work() -> None:
    if not in_unit_of_work():
        raise LockOutsideUnitOfWork("You cannot take row locks outside a unit of work (run_unit_of_work).")


def lock_event(event_id: int, *, shared: bool = False, include_deleted: bool = False) -> Event | None:
    """Lock the event row, shared (many at once: holds) or exclusive (changes to the event)."""
    _require_unit_of_work()
    return db.session.scalar(event_lock_query(event_id, shared=shared, include_deleted=include_deleted))


def event_lock_query(event_id: int, *, shared: bool = False, include_deleted: bool = False):
    """The locking SELECT of lock_event, for a caller that adds to it (run it in a unit of work)."""
    _require_unit_of_work()
    return (
        sa.select(Event)
        .where(Event.id == event_id)
        .with_for_update(read=shared)
        .execution_options(populate_existing=True, include_deleted=include_deleted)
    )


def get_locked_event(event_id: int, *, include_deleted: bool = False) -> Event:
    """Lock the event row exclusively; raises NotFound if there is none."""
    event = lock_event(event_id, include_deleted=include_deleted)
    if event is None:
        raise NotFound(_("No such event."))
    return event


def seats_query(seat_ids, event_id: int | None = None):
    """The seats (of the event, if given) in ascending id order, fresh values, not the session's."""
    query = sa.select(Seat).where(Seat.id.in_(sorted(set(seat_ids)))).order_by(Seat.id)
    if event_id is not None:
        query = query.where(Seat.event_id == event_id)
    return query.execution_options(populate_existing=True)


def lock_seats(seat_ids, event_id: int | None = None) -> list[Seat]:
    """SELECT ... FOR UPDATE the seats, in ascending id order."""
    _require_unit_of_work()
    return list(db.session.scalars(seats_query(seat_ids, event_id).with_for_update()))


def lock_seats_with_prices(connection, event_id: int, seat_ids) -> dict:
    """Lock the event's seats among `seat_ids` as lock_seats does, on the unit of work's connection,
    reading only what a hold decides on: {seat_id: row of (id, status, reservation_expires_at,
    price)}. No objects are built; a seat of another event is not locked, nor in the answer.

    The price comes from a subquery, which locks no category row (holds of one category do not
    queue on it). It cannot be stale: re-pricing locks the event exclusively, and a hold reads
    seats only after its shared lock on the event was granted.
    """
    _require_unit_of_work()
    rows = _SEATS_WITH_PRICES.rows(connection, {"seat_ids": sorted(set(seat_ids)), "seats_event": event_id})
    return {row.id: row for row in rows}


def _seats_with_prices_statement():
    """Every hold runs it, only the seat ids change."""
    price = sa.select(PriceCategory.price).where(PriceCategory.id == Seat.price_category_id).scalar_subquery()
    return (
        sa.select(Seat.id, Seat.status, Seat.reservation_expires_at, price.label("price"))
        .where(
            Seat.id.in_(sa.bindparam("seat_ids", expanding=True)),
            Seat.event_id == sa.bindparam("seats_event"),
            Seat.deleted_at.is_(None),
        )
        .order_by(Seat.id)
        .with_for_update()
        .execution_options(include_deleted=True)  # said in the statement itself
    )


_SEATS_WITH_PRICES = Precompiled(_seats_with_prices_statement)


def lock_event_seats(event_id: int) -> list[Seat]:
    """Lock every live seat of the event, in ascending id order."""
    _require_unit_of_work()
    return list(
        db.session.scalars(
            sa.select(Seat)
            .where(Seat.event_id == event_id)
            .order_by(Seat.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    )


def lock_orders(*conditions) -> list[Order]:
    """Lock the orders matching `conditions`, in ascending id, with their bookings and payments."""
    _require_unit_of_work()
    return list(
        db.session.scalars(
            sa.select(Order)
            .where(*conditions)
            .order_by(Order.id)
            .with_for_update()
            .execution_options(populate_existing=True)
            .options(so.selectinload(Order.bookings), so.selectinload(Order.payments))
        )
    )


def lock_order(order_id: int) -> Order:
    """Lock one order (its seats must already be locked, if the caller changes them)."""
    [order] = lock_orders(Order.id == order_id)
    return order


def order_seat_ids(order_id: int) -> list[int]:
    """The ids of every seat the order ever had a booking for."""
    return list(db.session.scalars(sa.select(Booking.seat_id).where(Booking.order_id == order_id)))


def lock_order_with_seats(order_id: int) -> Order:
    """Lock an order's seats (ascending) and then the order itself, and return it fresh."""
    lock_seats(order_seat_ids(order_id))
    return lock_order(order_id)
