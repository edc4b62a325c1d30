"""Housekeeping: closing past events and purging old rows. Never needed for correctness."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa

from app.extensions import db
from app.models import (
    Booking,
    BookingStatus,
    Event,
    EventStatus,
    Order,
    OrderStatus,
    Payment,
    PriceCategory,
    Seat,
    utcnow,
)
from app.services import seat_changes
from app.services.errors import InvalidRequest

CLEANUP_BATCH = 500


def close_past_events(now: datetime | None = None) -> int:
    """Mark published events whose date has passed as no longer selling; returns how many."""
    now = now or utcnow()
    ids = db.session.scalars(
        sa.select(Event.id).where(Event.status == EventStatus.PUBLISHED, Event.date <= now, Event.sales_ended_at.is_(None))
    ).all()
    if ids:
        db.session.execute(
            sa.update(Event).where(Event.id.in_(ids)).values(sales_ended_at=now).execution_options(synchronize_session=False)
        )
        for event_id in ids:
            seat_changes.mark_changed(event_id, [])
    db.session.commit()
    return len(ids)


@dataclass
class CleanupReport:
    cutoff: datetime
    dry_run: bool
    deleted: dict[str, int] = field(default_factory=dict)


def _ids(statement, limit):
    return list(db.session.scalars(statement.limit(limit).execution_options(include_deleted=True)))


def db_cleanup(older_than_days: int, *, dry_run: bool = False, batch_size: int = CLEANUP_BATCH,
               now: datetime | None = None) -> CleanupReport:
    """Purge rows older than the cutoff that no one needs any more, in batches.

    Goes: bookings that died (expired, failed, cancelled without money) or were soft-deleted;
    orders left with no bookings and no payments (money history is never purged); soft-deleted
    seats nothing refers to; soft-deleted events with nothing left. Confirmed bookings are kept,
    and so is every row of an event that has not taken place yet.
    """
    if older_than_days is None or older_than_days < 1:
        raise InvalidRequest("--older-than must be at least 1 day.")
    now = now or utcnow()
    cutoff = now - timedelta(days=older_than_days)
    report = CleanupReport(cutoff=cutoff, dry_run=dry_run)
    upcoming = sa.select(Event.id).where(Event.date > now).execution_options(include_deleted=True)
    has_payment = sa.exists().where(Payment.booking_id == Booking.id)

    plans = {
        "bookings": (
            Booking,
            sa.select(Booking.id).where(
                Booking.updated_at < cutoff,
                Booking.event_id.not_in(upcoming),
                ~has_payment,
                sa.or_(
                    Booking.deleted_at.is_not(None),
                    Booking.status.in_((BookingStatus.EXPIRED, BookingStatus.FAILED)),
                    sa.and_(Booking.status == BookingStatus.CANCELLED, Booking.payment_status == "pending"),
                ),
            ),
        ),
        "orders": (
            Order,
            sa.select(Order.id).where(
                Order.updated_at < cutoff,
                Order.status.not_in(OrderStatus.LIVE),
                Order.event_id.not_in(upcoming),
                ~sa.exists().where(Booking.order_id == Order.id),
                ~sa.exists().where(Payment.order_id == Order.id),
            ),
        ),
        "seats": (
            Seat,
            sa.select(Seat.id).where(
                Seat.deleted_at.is_not(None),
                Seat.deleted_at < cutoff,
                ~sa.exists().where(Booking.seat_id == Seat.id),
            ),
        ),
        "events": (
            Event,
            sa.select(Event.id).where(
                Event.deleted_at.is_not(None),
                Event.deleted_at < cutoff,
                ~sa.exists().where(Seat.event_id == Event.id),
                ~sa.exists().where(Order.event_id == Event.id),
                ~sa.exists().where(Booking.event_id == Event.id),
            ),
        ),
    }
    for table, (model, statement) in plans.items():
        if dry_run:
            count = db.session.scalar(
                sa.select(sa.func.count()).select_from(statement.subquery()).execution_options(include_deleted=True)
            )
            report.deleted[table] = count
            continue
        report.deleted[table] = 0
        while ids := _ids(statement, batch_size):
            if model is Event:
                db.session.execute(sa.delete(PriceCategory).where(PriceCategory.event_id.in_(ids)))
            db.session.execute(sa.delete(model).where(model.id.in_(ids)).execution_options(synchronize_session=False))
            db.session.commit()
            report.deleted[table] += len(ids)
    db.session.rollback()
    return report
