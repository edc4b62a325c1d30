"""Opening and closing orders: the one place that moves an order, its bookings and their seats together.

Both `booking` (holds, releases, cancellations) and `payments` (confirming, failing) change orders
only through these functions, so a seat is `reserved` exactly while one pending booking holds it
and `booked` exactly while one confirmed booking does, whoever made the change. Every function
runs inside the caller's unit of work with the order's seats and the order locked (locking.py).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from app.extensions import db
from app.models import (
    Booking,
    BookingStatus,
    Order,
    OrderStatus,
    Payment,
    PaymentKind,
    PaymentMethod,
    PaymentResult,
    PaymentStatus,
    Seat,
    SeatStatus,
)
from app.services import mail, seat_changes, states, tickets, waitlist
from app.services.transactions import Conflict

PAYMENT_NEVER_COMPLETED = "The payment was not completed before the hold expired."


def move_seats(seat_ids, new: str, now: datetime, *, only_unclaimed: bool = False) -> int:
    """Move seats to `new` with one conditional UPDATE that only matches legal source states.

    With only_unclaimed, a seat that some live booking still holds is left alone: the caller has
    already closed its own bookings, so such a booking is another buyer's (it took over an expired
    hold). This guard holds even where rows cannot be locked (SQLite).
    """
    if not seat_ids:
        return 0
    conditions = [Seat.id.in_(list(seat_ids)), Seat.status.in_(states.sources(states.SEAT_TRANSITIONS, new))]
    if only_unclaimed:
        db.session.flush()
        conditions.append(~sa.exists().where(Booking.live_seat_id == Seat.id))
    values = {"status": new, "updated_at": now}
    if new != SeatStatus.RESERVED:
        values["reservation_expires_at"] = None
    result = db.session.execute(
        sa.update(Seat).where(*conditions).values(**values).execution_options(synchronize_session=False)
    )
    return result.rowcount


def change_state(
    order: Order,
    status: str,
    now: datetime,
    *,
    bookings: list[Booking] | None = None,
    payment_status: str | None = None,
    reason: str | None = None,
    whole_order: bool = True,
) -> list[int]:
    """Move the order (unless whole_order is False) and `bookings` (default: its live ones) to
    `status`, and their seats with them: booked when confirmed, free otherwise. Every transition is
    checked before anything changes. Returns the ids of the seats that moved.
    """
    if bookings is None:
        bookings = [b for b in order.bookings if b.status in OrderStatus.LIVE]
    if whole_order:
        states.move_order(order, status=status, payment_status=payment_status, bookings=bookings)
    else:
        for booking in bookings:
            states.check(states.BOOKING_TRANSITIONS, booking.status, status, "booking")
        for booking in bookings:
            booking.status = status
    if reason and whole_order:
        order.failure_reason = reason[:255]
    seat_ids = [b.seat_id for b in bookings]
    if status == OrderStatus.CONFIRMED:
        if move_seats(seat_ids, SeatStatus.BOOKED, now) != len(seat_ids):
            raise Conflict("the held seats changed while paying")
    else:
        move_seats(seat_ids, SeatStatus.AVAILABLE, now, only_unclaimed=True)
    seat_changes.mark_changed(order.event_id, seat_ids)
    if status != OrderStatus.CONFIRMED:  # freed seats go to the waiting list first
        waitlist.seats_freed(order.event_id, seat_ids, now, closed_order=order if whole_order else None)
    return seat_ids


def bookings_to_pay(order: Order) -> list[Booking]:
    """The seats an order still pays for: all but those an admin cancelled while it was pending."""
    return [b for b in order.bookings if b.status != BookingStatus.CANCELLED]


def seats_still_held(order: Order) -> bool:
    """Whether the pending order still holds every seat it pays for (none given up to another buyer)."""
    return order.status == OrderStatus.PENDING and all(
        b.status == BookingStatus.PENDING for b in bookings_to_pay(order)
    )


def confirm(order: Order, payment: Payment, now: datetime) -> None:
    """The order is paid: confirm it and its seats, keep what the payment says on the order, issue
    the tickets and queue the confirmation email."""
    change_state(order, OrderStatus.CONFIRMED, now, bookings=bookings_to_pay(order), payment_status=PaymentStatus.PAID)
    copy_payment(order, payment)
    order.paid_at = now
    tickets.issue_for_order(order, now)
    mail.enqueue_order_confirmation(order, now=now)


def copy_payment(order: Order, payment: Payment) -> None:
    """Keep the method, card digits and provider reference of the order's charge on the order."""
    order.payment_method = payment.method
    order.card_last4 = payment.card_last4
    order.provider_reference = payment.provider_reference
    for booking in bookings_to_pay(order):
        booking.payment_method = payment.method


def awaiting_buyer(order: Order) -> Payment | None:
    """The charge still waiting for the buyer (a wallet payment not yet approved), if any.

    A card charge waiting for the provider's answer is not one: money may have moved, so only
    its answer (or reconciliation) may settle it.
    """
    return next(
        (
            p
            for p in order.payments
            if p.kind == PaymentKind.CHARGE and p.result == PaymentResult.PENDING and p.method == PaymentMethod.WALLET
        ),
        None,
    )


def close_pending(order: Order, status: str, now: datetime, reason: str | None = None) -> None:
    """Close a pending order as expired, failed or cancelled, freeing the seats it still holds and
    ending the wallet payment still waiting for the buyer, whichever way the order closes."""
    open_charge = awaiting_buyer(order)
    if open_charge is not None and status == OrderStatus.EXPIRED:
        # The buyer began paying and did not finish before the hold ran out: that payment failed.
        status, reason = OrderStatus.FAILED, PAYMENT_NEVER_COMPLETED
    holding = [b for b in order.bookings if b.status == BookingStatus.PENDING]
    payment_status = PaymentStatus.FAILED if status == OrderStatus.FAILED else None
    change_state(order, status, now, bookings=holding, payment_status=payment_status, reason=reason)
    if open_charge is not None:
        open_charge.result = PaymentResult.ERROR
        open_charge.failure_reason = (reason or PAYMENT_NEVER_COMPLETED)[:255]
        open_charge.completed_at = now


def close_expired(order: Order, now: datetime) -> None:
    """Close a pending order whose hold ran out (or whose seats another buyer took over)."""
    close_pending(order, OrderStatus.EXPIRED, now)
