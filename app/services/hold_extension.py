"""One more stretch of time for a checkout's hold (WCAG 2.2.1, timing adjustable).

The server decides: once per order, only while the hold is still running, by
HOLD_EXTENSION_SECONDS, and never past the limit of a waiting-list offer (its seats are due to
the next person waiting).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _

from app.extensions import db
from app.models import BookingStatus, HoldExtension, Order, OrderStatus, Seat, User, WaitlistEntry, utcnow
from app.services import locking, seat_changes
from app.services.errors import DomainError
from app.services.transactions import run_unit_of_work


class ExtensionRefused(DomainError):
    code = "extension_refused"


def extension_seconds() -> int:
    return current_app.config["HOLD_EXTENSION_SECONDS"]


def is_offer(order: Order) -> bool:
    """Whether the order holds seats a waiting list offered to its buyer."""
    return db.session.scalar(sa.select(sa.exists().where(WaitlistEntry.offer_order_id == order.id)))


def _was_extended(order_id: int) -> bool:
    return db.session.scalar(sa.select(sa.exists().where(HoldExtension.order_id == order_id)))


def can_extend(order: Order, now: datetime | None = None) -> bool:
    """Whether the checkout page may offer the extension (the server checks again on the click)."""
    now = now or utcnow()
    return (
        extension_seconds() > 0
        and order.status == OrderStatus.PENDING
        and not order.hold_has_expired(now)
        and not _was_extended(order.id)
        and not is_offer(order)
    )


def extend_hold(order: Order, *, user: User, now: datetime | None = None) -> Order:
    """Give the buyer's running hold HOLD_EXTENSION_SECONDS more, once."""
    from app.services import booking

    if order.user_id != user.id:
        raise booking.OrderNotFound()
    order_id = order.id

    def work():
        moment = now or utcnow()
        locked = locking.lock_order_with_seats(order_id)
        if locked.status != OrderStatus.PENDING or locked.hold_has_expired(moment):
            raise ExtensionRefused(_("This hold has already ended, so it cannot be extended."))
        if _was_extended(order_id):
            raise ExtensionRefused(_("This hold was already extended once."))
        if is_offer(locked):
            raise ExtensionRefused(_("Seats offered from the waiting list cannot be held past the offer's limit."))
        seconds = extension_seconds()
        if seconds <= 0:
            raise ExtensionRefused(_("Holds cannot be extended here."))
        locked.hold_expires_at = locked.hold_expires_at + timedelta(seconds=seconds)
        seat_ids = [b.seat_id for b in locked.bookings if b.status == BookingStatus.PENDING]
        db.session.execute(
            sa.update(Seat)
            .where(Seat.id.in_(seat_ids))
            .values(reservation_expires_at=locked.hold_expires_at, updated_at=moment)
            .execution_options(synchronize_session=False)
        )
        db.session.add(HoldExtension(order_id=order_id, seconds=seconds, extended_at=moment))
        seat_changes.mark_changed(locked.event_id, seat_ids)
        return locked

    return run_unit_of_work(work)
