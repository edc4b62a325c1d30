"""What buyers browse: events on sale, seats left, their own orders."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
import sqlalchemy.orm as so

from app.extensions import db
from app.models import Booking, Event, EventStatus, Order, Seat, SeatStatus, User, utcnow
from app.services import waitlist


class SaleState:
    """What is left to sell of an event: seats to take, seats only held (they may come back), or none."""

    AVAILABLE = "available"
    TAKEN_FOR_NOW = "taken_for_now"
    SOLD_OUT = "sold_out"


def upcoming_events(now: datetime | None = None) -> list[Event]:
    """Published events that have not begun, soonest first, with their price categories."""
    now = now or utcnow()
    return list(
        db.session.scalars(
            sa.select(Event)
            .where(Event.status == EventStatus.PUBLISHED, Event.date > now, Event.sales_ended_at.is_(None))
            .order_by(Event.date)
            .options(so.selectinload(Event.price_categories))
        )
    )


def seats_left(event_ids, now: datetime | None = None) -> dict[int, int]:
    """Free seats per event (an expired hold counts as free), in one query."""
    now = now or utcnow()
    free = Seat.is_free(now)
    rows = db.session.execute(
        sa.select(Seat.event_id, sa.func.count(Seat.id))
        .where(Seat.event_id.in_(list(event_ids)), free)
        .group_by(Seat.event_id)
    )
    counts = dict(rows.all())
    return {event_id: counts.get(event_id, 0) for event_id in event_ids}


def sale_state(event: Event, now: datetime | None = None) -> str:
    """Whether a buyer could take a seat now, or all are taken for now (held: a hold that runs out,
    or a waiting-list offer turned down, puts seats back), or the event is sold out (all booked)."""
    now = now or utcnow()
    if any(waitlist.free_seat_counts(event, now).values()):
        return SaleState.AVAILABLE
    reserved = db.session.scalar(
        sa.select(sa.func.count(Seat.id)).where(Seat.event_id == event.id, Seat.status == SeatStatus.RESERVED)
    )
    return SaleState.TAKEN_FOR_NOW if reserved else SaleState.SOLD_OUT


def orders_of(user: User) -> list[Order]:
    """The buyer's orders, newest first, with their event and seats loaded in a fixed number of queries."""
    return list(
        db.session.scalars(
            sa.select(Order)
            .where(Order.user_id == user.id)
            .order_by(Order.created_at.desc(), Order.id.desc())
            .options(
                so.joinedload(Order.event),
                so.selectinload(Order.bookings).joinedload(Booking.seat).joinedload(Seat.price_category),
            )
        )
    )
