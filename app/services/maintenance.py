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
    OutboxEmail,
    OutboxStatus,
    Payment,
    PriceCategory,
    Seat,
    utcnow,
)
from app.services import seat_changes
from app.services.errors import InvalidRequest
from app.services.transactions import end_read, run_unit_of_work

CLEANUP_BATCH = 500


def close_past_events(now: datetime | None = None) -> int:
    """Mark published events whose date has passed as no longer selling; returns how many."""
    now = now or utcnow()

    def work():
        ids = db.session.scalars(
            sa.select(Event.id).where(
                Event.status == EventStatus.PUBLISHED, Event.date <= now, Event.sales_ended_at.is_(None)
            )
        ).all()
        if ids:
            db.session.execute(
                sa.update(Event)
                .where(Event.id.in_(ids))
                .values(sales_ended_at=now)
                .execution_options(synchronize_session=False)
            )
            for event_id in ids:
                seat_changes.mark_changed(event_id, [])
        return len(ids)

    return run_unit_of_work(work)


@dataclass
class CleanupReport:
    cutoff: datetime
    dry_run: bool
    deleted: dict[str, int] = field(default_factory=dict)


def _ids(statement, limit):
    return list(db.session.scalars(statement.limit(limit).execution_options(include_deleted=True)))


def _count(statement) -> int:
    return db.session.scalar(
        sa.select(sa.func.count()).select_from(statement.subquery()).execution_options(include_deleted=True)
    )


def _ids_where(model, *conditions):
    # correlate(None): each set is nested inside the next ones' EXISTS clauses on the same tables
    # and must stay a set of its own, not turn into a condition on the outer row.
    return sa.select(model.id).where(*conditions).correlate(None)


def cleanup_plan(cutoff: datetime, now: datetime) -> dict[str, tuple[type, sa.Select]]:
    """What db-cleanup deletes, table by table in the order it deletes them.

    Each set counts the rows of the sets before it as gone, so it is the same before and after
    those are deleted: a dry run counts exactly what the real run deletes.
    """
    emails = _ids_where(
        OutboxEmail,
        OutboxEmail.updated_at < cutoff,
        OutboxEmail.status.in_((OutboxStatus.SENT, OutboxStatus.FAILED)),
    )
    upcoming = _ids_where(Event, Event.date > now, Event.deleted_at.is_(None))
    deleted_events = _ids_where(Event, Event.deleted_at < cutoff)
    bookings = _ids_where(
        Booking,
        Booking.updated_at < cutoff,
        Booking.event_id.not_in(upcoming),
        ~sa.exists().where(Payment.booking_id == Booking.id),
        sa.or_(
            Booking.deleted_at.is_not(None),
            Booking.status.in_((BookingStatus.EXPIRED, BookingStatus.FAILED)),
            sa.and_(Booking.status == BookingStatus.CANCELLED, Booking.payment_status == "pending"),
        ),
    )
    orders = _ids_where(
        Order,
        Order.updated_at < cutoff,
        Order.status.not_in(OrderStatus.LIVE),
        Order.event_id.not_in(upcoming),
        ~sa.exists().where(Booking.order_id == Order.id, Booking.id.not_in(bookings)),
        ~sa.exists().where(Payment.order_id == Order.id),
        ~sa.exists().where(OutboxEmail.order_id == Order.id, OutboxEmail.id.not_in(emails)),
    )
    seats = _ids_where(
        Seat,
        sa.or_(Seat.deleted_at < cutoff, Seat.event_id.in_(deleted_events)),
        ~sa.exists().where(Booking.seat_id == Seat.id, Booking.id.not_in(bookings)),
    )
    events = _ids_where(
        Event,
        Event.deleted_at < cutoff,
        ~sa.exists().where(Seat.event_id == Event.id, Seat.id.not_in(seats)),
        ~sa.exists().where(Order.event_id == Event.id, Order.id.not_in(orders)),
        ~sa.exists().where(Booking.event_id == Event.id, Booking.id.not_in(bookings)),
    )
    price_categories = _ids_where(PriceCategory, PriceCategory.event_id.in_(events))
    return {
        "outbox_emails": (OutboxEmail, emails),
        "bookings": (Booking, bookings),
        "orders": (Order, orders),
        "seats": (Seat, seats),
        "price_categories": (PriceCategory, price_categories),
        "events": (Event, events),
    }


def db_cleanup(
    older_than_days: int, *, dry_run: bool = False, batch_size: int = CLEANUP_BATCH, now: datetime | None = None
) -> CleanupReport:
    """Purge rows older than the cutoff that no one needs any more, in batches.

    Goes: emails sent or given up on; bookings that died without money (expired, failed, cancelled
    unpaid) or were soft-deleted; orders left with no bookings, payments or waiting emails; seats
    soft-deleted, or of an event soft-deleted, before the cutoff that no booking refers to; then
    events soft-deleted before the cutoff with nothing left, with their price categories. Payments
    are never purged, nor the orders and bookings they refer to; confirmed bookings stay, and so
    does every row of a live event that has not taken place yet, and every email still waiting to
    be sent (with its order). A dry run only counts (0 days is allowed there).
    """
    if older_than_days is None or older_than_days < (0 if dry_run else 1):
        raise InvalidRequest("--older-than must be at least 1 day (0 is allowed with --dry-run).")
    now = now or utcnow()
    cutoff = now - timedelta(days=older_than_days)
    report = CleanupReport(cutoff=cutoff, dry_run=dry_run)
    for table, (model, statement) in cleanup_plan(cutoff, now).items():
        if dry_run:
            report.deleted[table] = _count(statement)
            continue
        report.deleted[table] = 0
        while ids := _ids(statement, batch_size):
            run_unit_of_work(
                lambda model=model, ids=ids: db.session.execute(
                    sa.delete(model).where(model.id.in_(ids)).execution_options(synchronize_session=False)
                )
            )
            report.deleted[table] += len(ids)
    end_read()
    return report
