"""Holding seats, releasing them and closing orders: the rules that sell every seat at most once.

Rows are locked only through app/services/locking.py, whose docstring is the lock order.
Every function here is one short unit of work that commits (or changes nothing and raises).
A seat is `reserved` exactly while one pending booking holds it and `booked` exactly while one
confirmed booking does; the unique `bookings.live_seat_id` key makes the database refuse a second.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.i18n import N_, status_label
from app.models import (
    Booking,
    BookingStatus,
    Event,
    EventStatus,
    Order,
    OrderStatus,
    PaymentStatus,
    Seat,
    SeatStatus,
    User,
    new_reference,
    seat_state,
    utcnow,
)
from app.services import audit, locking, mail, orders, payments, seat_changes, seatmap, states, tickets, waitlist
from app.services.errors import DomainError, HoldExpired, InvalidRequest, OrderNotFound, OrderNotPending
from app.services.precompiled import Precompiled
from app.services.transactions import SeatsBusy, end_read, run_unit_of_work

if TYPE_CHECKING:
    from app.identity import SignedIn

__all__ = ["HoldExpired", "OrderNotPending", "SeatsBusy"]  # re-exported: callers catch booking.<Error>

PAYMENT_NEVER_COMPLETED = orders.PAYMENT_NEVER_COMPLETED


class SeatUnavailable(DomainError):
    """Those seats were just taken by someone else."""

    default_message = _l("Those seats were just taken by someone else.")

    code = "seat_unavailable"


class TooManySeats(InvalidRequest):
    code = "too_many_seats"


class NoSeatsChosen(InvalidRequest):
    """Choose at least one seat."""

    default_message = _l("Choose at least one seat.")

    code = "no_seats"


class UnknownSeats(InvalidRequest):
    """Some of those seats do not exist at this event."""

    default_message = _l("Some of those seats do not exist at this event.")

    code = "unknown_seats"


class EventNotOnSale(DomainError):
    """This event is not on sale."""

    default_message = _l("This event is not on sale.")

    code = "not_on_sale"


class NotOnSaleYet(DomainError):
    code = "not_on_sale_yet"


class CheckoutAlreadyOpen(DomainError):
    """You already have seats on hold for this event: pay for them or release them first."""

    default_message = _l("You already have seats on hold for this event: pay for them or release them first.")

    code = "checkout_open"


class PaymentUnsettled(DomainError):
    """The buyer's card payment for this order is unanswered by the provider: cancel the whole order, or wait."""

    default_message = _l(
        "The buyer's card payment for this order is unanswered by the provider: cancel the whole order, or wait."
    )

    code = "payment_unsettled"


@dataclass
class CancelSummary:
    orders: int = 0
    refunded: int = 0
    amount_refunded: Decimal = Decimal("0.00")


# --- reading ---------------------------------------------------------------------------------


def find_order_for_user(reference: str, user: User) -> Order:
    """The user's order with this reference; someone else's is 'not found', never 'forbidden'."""
    order = db.session.scalar(
        sa.select(Order).where(Order.reference == str(reference or "")[:16], Order.user_id == user.id)
    )
    if order is None:
        raise OrderNotFound()
    return order


def pending_order_for(user: User, event: Event) -> Order | None:
    """The buyer's open checkout for this event, if any (its hold may have run out)."""
    return _pending_order(user.id, event.id)


def _pending_order(user_id: int, event_id: int) -> Order | None:
    return db.session.scalar(
        sa.select(Order).where(
            Order.user_id == user_id, Order.event_id == event_id, Order.status == OrderStatus.PENDING
        )
    )


# --- holding ---------------------------------------------------------------------------------


MAX_ROW_ID = 2**31 - 1
SEAT_ID_TEXT = re.compile("[0-9]{1,10}")


def _seat_id(value) -> int:
    """A seat id as a whole positive number: a JSON integer or a string of ASCII digits.

    1.5, True, "1e3", " 1 ", "²" or "٣" are refused, never rounded or read into a seat.
    """
    if isinstance(value, str) and SEAT_ID_TEXT.fullmatch(value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ROW_ID:
        raise UnknownSeats(_("Seat ids must be whole positive numbers."))
    return value


def _checked_seat_ids(seat_ids) -> list[int]:
    # Shape and length first: a body of two million ids is refused without looking at each one.
    if not isinstance(seat_ids, list):
        raise UnknownSeats(_("Send the seat ids as a list."))
    if not seat_ids:
        raise NoSeatsChosen()
    limit = current_app.config["MAX_SEATS_PER_ORDER"]
    if len(seat_ids) > limit:
        raise TooManySeats(_("You can hold at most %(limit)s seats per order.", limit=limit), limit=limit)
    ids = [_seat_id(seat_id) for seat_id in seat_ids]
    if len(set(ids)) != len(ids):
        raise UnknownSeats(_("The same seat was chosen twice."))
    return sorted(ids)


def _check_on_sale(event: Event | None, now: datetime) -> Event:
    if event is None or event.is_deleted:
        raise EventNotOnSale(_("This event does not exist or was removed."))
    if event.status == EventStatus.CANCELLED:
        raise EventNotOnSale(_("This event has been cancelled."))
    if event.status != EventStatus.PUBLISHED:
        raise EventNotOnSale(_("This event is not on sale yet."))
    if event.date <= now or event.sales_ended_at is not None:
        raise EventNotOnSale(_("Sales for this event have ended."))
    if event.sells_later(now):
        raise NotOnSaleYet(
            _("Tickets go on sale at %(moment)s UTC.", moment=event.sales_start_at.strftime("%Y-%m-%d %H:%M:%S")),
            sales_start_at=event.sales_start_at.isoformat() + "Z",
        )
    return event


def hold(user: User | SignedIn, event: Event | int, seat_ids, *, now: datetime | None = None, admit=None) -> Order:
    """Hold all of the seats for the buyer, or none (see place_hold): the new pending order."""
    return _known_order(place_hold(user, event, seat_ids, now=now, admit=admit))


@dataclass(frozen=True)
class PlacedHold:
    """A hold just placed: its pending order as written, with no order object built."""

    order_id: int
    reference: str
    user_id: int
    event_id: int
    total_amount: Decimal
    hold_expires_at: datetime
    placed_at: datetime

    ORDER_COLUMNS = (
        "reference",
        "user_id",
        "event_id",
        "status",
        "payment_status",
        "total_amount",
        "refunded_amount",
        "hold_expires_at",
        "version",
        "created_at",
        "updated_at",
    )

    def order_row(self) -> dict:
        """The order's columns as they were inserted (all but its id): ORDER_COLUMNS."""
        return {
            "reference": self.reference,
            "user_id": self.user_id,
            "event_id": self.event_id,
            "status": OrderStatus.PENDING,
            "payment_status": PaymentStatus.PENDING,
            "total_amount": self.total_amount,
            "refunded_amount": Decimal("0.00"),
            "hold_expires_at": self.hold_expires_at,
            "version": 1,
            "created_at": self.placed_at,
            "updated_at": self.placed_at,
        }


def place_hold(
    user: User | SignedIn, event: Event | int, seat_ids, *, now: datetime | None = None, admit=None
) -> PlacedHold:
    """Hold all of the seats for the buyer, or none: one pending order, one pending booking per seat.

    `user` may be known only by its id (SignedIn): the account is read in the hold's first
    statement, and refused if it is gone or an administrator's. `event` is the event or its id.
    `admit(event)`, if given, is the caller's gate (the event page's 404, the waiting room): it
    runs under the event's shared lock, with the locked event or None, and refuses by raising.
    The hot path reads only the columns it decides on, and its five statements run precompiled
    (app.services.precompiled) on the session's connection: they build no objects, so the
    session has nothing to add.
    """
    ids = _checked_seat_ids(seat_ids)
    event_id = event if isinstance(event, int) else event.id
    user_id = user.id

    def work():
        moment = now or utcnow()
        connection = db.session.connection()
        # A shared lock on the event: holds do not block each other, but cancelling the event
        # (an exclusive lock) waits for them and they wait for it.
        start = _lock_event_for_hold(connection, event_id, user_id, ids, moment)
        _check_buyer(start.buyer_is_admin)
        if admit is not None:
            admit(start.event)
        _check_on_sale(start.event, moment)
        stale = _stale_checkout(start.open_checkout_id, moment)
        if start.free_seats != len(ids):
            _refuse_early(ids, event_id, moment)
        locked = _lock_seats_closing(connection, event_id, ids, stale, moment)
        if _free_seats_of(locked, ids, moment) and _offered_to_waiting_list(event_id, ids, moment):
            return None  # committed: the waiting list had the first claim on those seats
        expires_at = moment + timedelta(seconds=current_app.config["HOLD_TTL_SECONDS"])
        _claim_seats(connection, event_id, ids, moment, expires_at)
        prices = {seat_id: locked[seat_id].price for seat_id in ids}
        return _add_order(connection, user_id, event_id, prices, moment, expires_at)

    try:
        placed = run_unit_of_work(work)
    except IntegrityError as error:
        # Only reachable where row locks do not exist (SQLite): the unique keys decided the race.
        if "pending_event_id" in str(error.orig) or "one_pending" in str(error.orig):
            raise CheckoutAlreadyOpen() from None
        raise _unavailable(_seats_taken_now(ids)) from None
    if placed is None:
        raise _unavailable(_seats_taken_now(ids))
    return placed


@dataclass(frozen=True)
class HoldStart:
    event: Event | None
    open_checkout_id: int | None
    free_seats: int
    buyer_is_admin: bool | None  # None: no such account


class NotSignedIn(DomainError):
    code = "login_required"
    status = 401
    default_message = _l("Log in to hold seats.")


class AdministratorsCannotBuy(DomainError):
    code = "forbidden"
    status = 403
    default_message = _l("Administrators cannot buy tickets; use a buyer account.")


def _check_buyer(is_admin: bool | None) -> None:
    if is_admin is None:
        raise NotSignedIn()  # the account was deleted since its session began
    if is_admin:
        raise AdministratorsCannotBuy()


def _lock_event_for_hold(connection, event_id: int, user_id: int, ids, now: datetime) -> HoldStart:
    """One statement: the event, locked shared; the buyer's account (is it an administrator's);
    the id of the buyer's open checkout for the event, if any; and how many of the seats asked
    for are this event's and free, before any seat lock.

    The last three are plain reads (a subquery locks nothing): the open checkout's unique key and
    the locked checks later decide. When every seat looks free, which is most holds, there is
    no separate early read of the seats.

    The event comes back as a snapshot outside the session holding only HOLD_EVENT_COLUMNS (and
    its id): everything a hold, its gate and its answer decide on, without building a loaded row.
    """
    row = _HOLD_START.first(
        connection, {"hold_event": event_id, "hold_user": user_id, "hold_seats": ids, "hold_now": now}
    )
    if row is None:
        buyer = db.session.scalar(sa.select(User.is_admin).where(User.id == user_id))
        return HoldStart(None, None, 0, buyer)
    snapshot = Event(id=event_id, **{column.key: getattr(row, column.key) for column in HOLD_EVENT_COLUMNS})
    return HoldStart(snapshot, row.open_checkout_id, row.free_seats, row.buyer_is_admin)


# What a hold decides on (and its gate, the waiting room, reads): nothing else is read. Every
# column costs the driver a description to parse on every hold.
HOLD_EVENT_COLUMNS = (
    Event.status,
    Event.deleted_at,
    Event.date,
    Event.sales_ended_at,
    Event.sales_start_at,
    Event.waiting_room,
)


# Every hold runs the statements below, with only their parameters changing: each is built once.


def _hold_start_statement():
    # pending_event_id is the event's id only while the order is pending: one lookup in the unique
    # key (user_id, pending_event_id) that allows one open checkout per buyer and event.
    open_checkout = (
        sa.select(Order.id)
        .where(Order.user_id == sa.bindparam("hold_user"), Order.pending_event_id == Event.id)
        .scalar_subquery()
    )
    free_seats = (
        sa.select(sa.func.count(Seat.id))
        .where(
            Seat.id.in_(sa.bindparam("hold_seats", expanding=True)),
            Seat.event_id == Event.id,
            Seat.deleted_at.is_(None),
            Seat.is_free(sa.bindparam("hold_now")),
        )
        .scalar_subquery()
    )
    buyer_is_admin = sa.select(User.is_admin).where(User.id == sa.bindparam("hold_user")).scalar_subquery()
    return (
        sa.select(
            *HOLD_EVENT_COLUMNS,
            buyer_is_admin.label("buyer_is_admin"),
            open_checkout.label("open_checkout_id"),
            free_seats.label("free_seats"),
        )
        .where(Event.id == sa.bindparam("hold_event"))
        .with_for_update(read=True)
        .execution_options(include_deleted=True)
    )


_HOLD_START = Precompiled(_hold_start_statement)


@functools.cache
def _seats_now_statement():
    return (
        sa.select(Seat.id, Seat.row, Seat.column, Seat.status, Seat.reservation_expires_at)
        .where(
            Seat.id.in_(sa.bindparam("hold_seats", expanding=True)),
            Seat.event_id == sa.bindparam("hold_event"),
            Seat.deleted_at.is_(None),
        )
        .execution_options(include_deleted=True)  # said in the statement itself
    )


def _stale_checkout(order_id: int | None, moment: datetime) -> Order | None:
    """The buyer's earlier checkout of this event if its hold ran out (it closes with this hold);
    one still running refuses the hold."""
    if order_id is None:
        return None
    stale = db.session.get(Order, order_id, populate_existing=True)
    if stale is not None and not stale.hold_has_expired(moment):
        raise CheckoutAlreadyOpen(order_reference=stale.reference)
    return stale


def _refuse_early(ids, event_id: int, now: datetime) -> None:
    """Without row locks, seats already taken fail fast: in a rush most buyers stop here instead
    of queueing for the seats' row locks only to find them gone. The locked check decides."""
    seats = db.session.execute(_seats_now_statement(), {"hold_seats": ids, "hold_event": event_id}).all()
    if len(seats) != len(ids):
        raise UnknownSeats()
    taken = [seat for seat in seats if not _free_at(seat, now)]
    if taken:
        raise _unavailable([SeatLabel(seat.id, f"{seat.row}{seat.column}") for seat in taken])


def _free_at(seat_row, now: datetime) -> bool:
    return seat_state(seat_row.status, seat_row.reservation_expires_at, now) == SeatStatus.AVAILABLE


@dataclass(frozen=True)
class SeatLabel:
    id: int
    label: str


def _lock_seats_closing(connection, event_id: int, ids, stale: Order | None, moment: datetime) -> dict:
    """Lock the event's seats (and those of the buyer's earlier checkout of it, in one ascending
    pass), then close that checkout, whose hold ran out. {seat_id: locked seat row, with its price}."""
    stale_seat_ids = locking.order_seat_ids(stale.id) if stale is not None else []
    locked = locking.lock_seats_with_prices(connection, event_id, ids + stale_seat_ids)
    if stale is not None:
        stale = locking.lock_order(stale.id)
        if stale.status == OrderStatus.PENDING:
            if not stale.hold_has_expired(moment):
                raise CheckoutAlreadyOpen(order_reference=stale.reference)
            orders.close_pending(stale, OrderStatus.EXPIRED, moment)
    return locked


def _free_seats_of(locked: dict, ids, moment: datetime) -> bool:
    """Refuse unless every seat asked for is this event's and free at `moment`; whether some of
    them are free only because a hold on them ran out."""
    rows = [locked[seat_id] for seat_id in ids if seat_id in locked]
    if len(rows) != len(ids):  # only the event's seats were locked
        raise UnknownSeats()
    if not all(_free_at(row, moment) for row in rows):
        raise _unavailable(_seats_taken_now(ids))
    return any(row.status == SeatStatus.RESERVED for row in rows)


def _offered_to_waiting_list(event_id: int, ids, moment: datetime) -> bool:
    """Holds that ran out on these seats give way; True when the seats went to the waiting list."""
    _expire_stale_bookings(ids)
    return waitlist.offer_expired_seats(event_id, locking.lock_seats(ids), moment)


def _add_order(
    connection, user_id: int, event_id: int, prices: dict[int, Decimal], moment: datetime, expires_at: datetime
) -> PlacedHold:
    """The pending order and one pending booking per seat, at the seats' prices."""
    total = sum(prices.values(), Decimal("0.00"))
    placed = PlacedHold(
        order_id=0,  # known once the order is inserted, below
        reference=new_reference(),
        user_id=user_id,
        event_id=event_id,
        total_amount=total,
        hold_expires_at=expires_at,
        placed_at=moment,
    )
    # Plain INSERTs: the order and its bookings are new, so the session has nothing to track.
    order_id = _INSERT_ORDER.inserted_id(connection, placed.order_row())
    bookings = {
        "order_id": order_id,
        "user_id": user_id,
        "event_id": event_id,
        "status": BookingStatus.PENDING,
        "payment_status": PaymentStatus.PENDING,
        "moment": moment,
    }
    for n, (seat_id, price) in enumerate(prices.items()):
        bookings[f"seat_{n}"], bookings[f"price_{n}"] = seat_id, price
    _insert_bookings(len(prices)).rowcount(connection, bookings)
    seat_changes.mark_changed(event_id, list(prices), state=seatmap.STATE_CODES[SeatStatus.RESERVED])
    return dataclasses.replace(placed, order_id=order_id)


# A parameter given as a column's value takes the column's type (and its conversions).
_INSERT_ORDER = Precompiled(
    lambda: sa.insert(Order.__table__).values({column: sa.bindparam(column) for column in PlacedHold.ORDER_COLUMNS})
)


@functools.cache
def _insert_bookings(count: int) -> Precompiled:
    """One INSERT of `count` pending bookings of one order (a statement per number of seats)."""

    def build():
        shared = ("order_id", "user_id", "event_id", "status", "payment_status")
        same_in_every_row = {column: sa.bindparam(column) for column in shared}
        same_in_every_row |= {"created_at": sa.bindparam("moment"), "updated_at": sa.bindparam("moment")}
        # Typed here: a multi-row INSERT gives only its first row's parameters their columns' types.
        seat, price = Booking.seat_id.type, Booking.total_amount.type
        rows = [
            {
                **same_in_every_row,
                "seat_id": sa.bindparam(f"seat_{n}", type_=seat),
                "total_amount": sa.bindparam(f"price_{n}", type_=price),
            }
            for n in range(count)
        ]
        return sa.insert(Booking.__table__).values(rows)

    return Precompiled(build)


def _known_order(placed: PlacedHold) -> Order:
    """The order just inserted, in the session as if loaded, from the values written: no re-read."""
    order = Order(
        id=placed.order_id,
        **placed.order_row(),
        payment_method=None,
        card_last4=None,
        provider_reference=None,
        failure_reason=None,
        paid_at=None,
        refunded_at=None,
        pending_event_id=placed.event_id,
    )
    so.make_transient_to_detached(order)
    db.session.add(order)
    return order


def _unavailable(seats) -> SeatUnavailable:
    labels = [seat.label for seat in seats]
    noun = "Seat" if len(labels) == 1 else "Seats"
    verb = "was" if len(labels) == 1 else "were"
    return SeatUnavailable(
        f"{noun} {', '.join(labels)} {verb} just taken by someone else. Nothing was held; please choose again.",
        seats=labels,
        seat_ids=[seat.id for seat in seats],
    )


def _seats_now(ids) -> list[Seat]:
    return db.session.scalars(locking.seats_query(ids)).all()


def _seats_taken_now(ids) -> list[Seat]:
    now = utcnow()
    seats = _seats_now(ids)
    return [seat for seat in seats if not seat.is_free(now)] or list(seats)


def _claim_seats(connection, event_id: int, ids, now: datetime, expires_at: datetime) -> None:
    """Reserve the seats with one conditional UPDATE that must match every seat, or nothing is held.

    The conditions repeat what was checked under the row locks (seats free, event on sale), so the
    claim stays atomic where rows cannot be locked (SQLite) and a concurrent cancellation wins.
    It runs on the connection, so what the session changed first (a stale checkout closed) is
    flushed before it, as an ORM statement's autoflush would.
    """
    db.session.flush()
    claimed = _CLAIM.rowcount(
        connection, {"claim_ids": ids, "claim_now": now, "claim_until": expires_at, "claim_event": event_id}
    )
    if claimed != len(ids):
        _check_on_sale(db.session.get(Event, event_id, populate_existing=True), now)
        raise _unavailable(_seats_taken_now(ids))


def _claim_statement():
    """The claim's UPDATE: every hold runs it, only its parameters change."""
    now = sa.bindparam("claim_now")
    on_sale = sa.exists().where(
        Event.id == sa.bindparam("claim_event"),
        Event.status == EventStatus.PUBLISHED,
        Event.deleted_at.is_(None),
        Event.sales_ended_at.is_(None),
        Event.date > now,
    )
    return (
        sa.update(Seat)
        .where(Seat.id.in_(sa.bindparam("claim_ids", expanding=True)), Seat.is_free(now), on_sale)
        .values(status=SeatStatus.RESERVED, reservation_expires_at=sa.bindparam("claim_until"), updated_at=now)
        .execution_options(synchronize_session=False)
    )


_CLAIM = Precompiled(_claim_statement)


def _expire_stale_bookings(seat_ids) -> None:
    """Bookings of holds that ran out on these seats give way (their orders close on cleanup)."""
    stale = db.session.scalars(
        sa.select(Booking).where(Booking.live_seat_id.in_(seat_ids), Booking.status == BookingStatus.PENDING)
    ).all()
    for booking in stale:
        states.check(states.BOOKING_TRANSITIONS, booking.status, BookingStatus.EXPIRED, "booking")
        booking.status = BookingStatus.EXPIRED
    db.session.flush()


# --- closing orders --------------------------------------------------------------------------


def release(order: Order, *, user: User, now: datetime | None = None) -> Order:
    """The buyer gives up a hold before paying: the seats are free again at once."""
    if order.user_id != user.id:
        raise OrderNotFound()
    order_id = order.id

    def work():
        moment = now or utcnow()
        locked = locking.lock_order_with_seats(order_id)
        if locked.status != OrderStatus.PENDING:
            raise OrderNotPending(_("This booking is already %(status)s.", status=status_label(locked.status)))
        if locked.hold_has_expired(moment):
            orders.close_expired(locked, moment)
        else:
            orders.close_pending(locked, OrderStatus.CANCELLED, moment, reason=N_("Released by the buyer."))
        return locked

    return run_unit_of_work(work)


def expire_if_due(order: Order, now: datetime | None = None) -> Order:
    """Close this order now if its hold has run out (so pages show the truth without a cron)."""
    moment = now or utcnow()
    if not order.hold_has_expired(moment):
        return order
    order_id = order.id

    def work():
        locked = locking.lock_order_with_seats(order_id)
        if locked.hold_has_expired(moment):
            orders.close_expired(locked, moment)
        return locked

    return run_unit_of_work(work)


def release_expired(now: datetime | None = None, *, batch_size: int = 200) -> int:
    """Close every pending order whose hold has run out, in batches; returns how many it closed."""
    moment = now or utcnow()
    closed = 0
    seen = set()
    while True:
        ids = list(
            db.session.scalars(
                sa.select(Order.id)
                .where(Order.status == OrderStatus.PENDING, Order.hold_expires_at <= moment)
                .order_by(Order.id)
                .limit(batch_size)
            )
        )
        end_read()
        ids = [order_id for order_id in ids if order_id not in seen]
        if not ids:
            return closed
        seen.update(ids)
        closed += run_unit_of_work(lambda batch=ids: _close_expired_batch(batch, moment))


def _close_expired_batch(order_ids, now: datetime) -> int:
    seat_ids = db.session.scalars(sa.select(Booking.seat_id).where(Booking.order_id.in_(order_ids))).all()
    locking.lock_seats(seat_ids)
    closed = 0
    for order in locking.lock_orders(Order.id.in_(order_ids)):
        if order.hold_has_expired(now):
            orders.close_expired(order, now)
            closed += 1
    return closed


# --- admin cancellations ---------------------------------------------------------------------


def _cancel_locked_order(order: Order, now: datetime, reason: str) -> Decimal:
    """Cancel a locked live order, refunding what was paid; returns the amount refunded."""
    if order.status == OrderStatus.PENDING:
        orders.close_pending(order, OrderStatus.CANCELLED, now, reason=reason)
        return Decimal("0.00")
    if order.status != OrderStatus.CONFIRMED:
        raise OrderNotPending(_("This order is already %(status)s.", status=status_label(order.status)))
    live = [b for b in order.bookings if b.status == BookingStatus.CONFIRMED]
    refunded = Decimal("0.00")
    if order.payment_status == PaymentStatus.PAID:
        refunded = payments.refund(order, now=now).amount
    tickets.revoke_for_order(order, reason, now)
    orders.change_state(order, OrderStatus.CANCELLED, now, bookings=live, reason=reason)
    mail.enqueue_seats_cancelled(order, live, refunded=refunded, reason=reason, now=now)
    return refunded


def cancel_order(
    order: Order,
    *,
    now: datetime | None = None,
    reason: str = N_("Cancelled by the organiser."),
    actor=None,
    actor_label: str | None = None,
) -> Order:
    """Admin: cancel a live order, refund it in full if paid, and free its seats."""
    order_id = order.id

    def work():
        moment = now or utcnow()
        locked = locking.lock_order_with_seats(order_id)
        was = locked.status
        refunded = _cancel_locked_order(locked, moment, reason)
        audit.record(
            "order.cancelled",
            actor=actor,
            actor_label=actor_label,
            subject=locked,
            data={"reference": locked.reference, "was": was, "reason": reason, "refunded": refunded},
            now=moment,
        )
        return locked

    return run_unit_of_work(work)


def cancel_booking(
    booking: Booking, *, now: datetime | None = None, reason: str = N_("Cancelled by the organiser."), actor=None
) -> Booking:
    """Admin: cancel one seat of an order, refund that seat if it was paid, and free the seat."""
    booking_id, order_id, seat_id = booking.id, booking.order_id, booking.seat_id

    def work():
        moment = now or utcnow()
        locking.lock_seats([seat_id])
        order = locking.lock_order(order_id)
        target = next(b for b in order.bookings if b.id == booking_id)
        if target.status not in OrderStatus.LIVE:
            raise OrderNotPending(_("This booking is already %(status)s.", status=status_label(target.status)))
        others_live = [b for b in order.bookings if b.id != booking_id and b.status in OrderStatus.LIVE]
        audit.record(
            "booking.cancelled",
            actor=actor,
            subject=target,
            data={"reference": order.reference, "seat": target.seat.label, "was": target.status, "reason": reason},
            now=moment,
        )
        if not others_live:
            refunded = _cancel_locked_order(order, moment, reason)
            audit.record(
                "order.cancelled",
                actor=actor,
                subject=order,
                data={"reference": order.reference, "reason": reason, "refunded": refunded, "last_seat": True},
                now=moment,
            )
            return target
        if order.status == OrderStatus.PENDING and any(payments.is_unanswered(p) for p in order.payments):
            raise PaymentUnsettled(
                _(
                    "The buyer's card payment for this order got no answer from the provider and may have been charged "
                    "in full, so one seat cannot be taken off it now. Cancel the whole order, or try again once the "
                    "payment is settled or the hold has run out."
                ),
                order_reference=order.reference,
            )
        if target.status == BookingStatus.CONFIRMED and target.payment_status == PaymentStatus.PAID:
            payments.refund(order, now=moment, booking=target)
        tickets.revoke(target, reason, moment)
        orders.change_state(order, BookingStatus.CANCELLED, moment, bookings=[target], whole_order=False)
        if order.status == OrderStatus.PENDING:
            order.total_amount -= target.total_amount
        mail.enqueue_seats_cancelled(order, [target], reason=reason, now=moment)
        return target

    return run_unit_of_work(work)


def cancel_pending_orders_of_event(event_id: int, now: datetime, reason: str) -> list[Order]:
    """Close every pending order of the event as cancelled, freeing its holds.

    Inside the caller's unit of work, with the event row already locked (so no new hold starts):
    locks the held seats in ascending id, then the orders, and re-checks each one under its lock.
    """
    held = sa.select(Booking.seat_id).join(Order, Order.id == Booking.order_id)
    locking.lock_seats(db.session.scalars(held.where(Order.event_id == event_id, Order.status == OrderStatus.PENDING)))
    pending = locking.lock_orders(Order.event_id == event_id, Order.status == OrderStatus.PENDING)
    for order in pending:
        orders.close_pending(order, OrderStatus.CANCELLED, now, reason=reason)
    return pending


def cancel_event(event: Event, *, now: datetime | None = None) -> CancelSummary:
    """Admin: cancel the event, cancel every live order (refunding paid ones) and free every seat."""
    event_id = event.id

    def work():
        moment = now or utcnow()
        locked_event = locking.get_locked_event(event_id)
        if locked_event.status == EventStatus.CANCELLED:
            raise DomainError(_("This event is already cancelled."))
        locked_event.status = EventStatus.CANCELLED
        locked_event.cancelled_at = moment
        seat_changes.mark_changed(event_id, [])
        locking.lock_event_seats(event_id)
        summary = CancelSummary()
        for order in locking.lock_orders(Order.event_id == event_id, Order.status.in_(OrderStatus.LIVE)):
            amount = _cancel_locked_order(order, moment, N_("The event was cancelled."))
            summary.orders += 1
            if amount:
                summary.refunded += 1
                summary.amount_refunded += amount
        waitlist.close_for_cancelled_event(event_id, moment)
        return summary

    return run_unit_of_work(work)
