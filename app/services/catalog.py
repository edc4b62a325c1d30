"""What buyers browse: events on sale, seats left, their own orders."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
import sqlalchemy.orm as so

from app.extensions import db
from app.models import Booking, Event, EventStatus, Order, Seat, User, utcnow


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
