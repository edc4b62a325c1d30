"""Read models for the admin: sales per event, the seat map with its orders, booking and payment lists.

Each report is a handful of aggregate queries, whatever the number of events or seats (no N+1).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
import sqlalchemy.orm as so

from app.extensions import db
from app.models import (
    Booking,
    BookingStatus,
    Event,
    EventStatus,
    Order,
    PaymentStatus,
    Seat,
    SeatStatus,
    Ticket,
    User,
    seat_state,
    utcnow,
)
from app.services import currencies
from app.services.errors import NotFound

ZERO = Decimal("0.00")


@dataclass
class EventSales:
    """Seats sold, held and free, and the money, for one event (or, as totals, for all)."""

    event: Event | None
    seats: int = 0
    sold: int = 0
    held: int = 0
    revenue: Decimal = ZERO
    refunded: Decimal = ZERO
    orders: int = 0

    @property
    def counts_seats(self) -> bool:
        """Whether its seats count as sold, held or free: not those of a cancelled or deleted event."""
        return self.event is None or (self.event.status != EventStatus.CANCELLED and not self.event.is_deleted)

    @property
    def free(self) -> int:
        return self.seats - self.sold - self.held

    @property
    def sold_percent(self) -> int:
        return round(100 * self.sold / self.seats) if self.seats else 0

    def add(self, other: EventSales) -> None:
        if other.counts_seats:
            self.seats += other.seats
            self.sold += other.sold
            self.held += other.held
        self.revenue += other.revenue
        self.refunded += other.refunded
        self.orders += other.orders


def _held(now: datetime):
    return Seat.is_held(now)


def _count_where(condition):
    return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)


def sales_by_event(events: list[Event], now: datetime | None = None) -> list[EventSales]:
    """Sales figures for these events: two grouped queries in all (seats, then orders)."""
    now = now or utcnow()
    ids = [event.id for event in events]
    if not ids:
        return []
    seat_rows = db.session.execute(
        sa.select(
            Seat.event_id,
            sa.func.count(Seat.id),
            _count_where(Seat.status == SeatStatus.BOOKED),
            _count_where(_held(now)),
        )
        .where(Seat.event_id.in_(ids))
        .group_by(Seat.event_id)
    )
    seats = {event_id: (total, sold, held) for event_id, total, sold, held in seat_rows}
    # Net revenue: what confirmed orders paid less what was refunded (whole or per seat).
    money_rows = db.session.execute(
        sa.select(
            Order.event_id,
            sa.func.coalesce(sa.func.sum(Order.total_amount - Order.refunded_amount), 0),
            sa.func.coalesce(sa.func.sum(Order.refunded_amount), 0),
            sa.func.count(Order.id),
        )
        .where(Order.event_id.in_(ids), Order.payment_status.in_((PaymentStatus.PAID, PaymentStatus.REFUNDED)))
        .group_by(Order.event_id)
    )
    money = {
        event_id: (Decimal(revenue), Decimal(refunded), count) for event_id, revenue, refunded, count in money_rows
    }
    report = []
    for event in events:
        total, sold, held = seats.get(event.id, (0, 0, 0))
        revenue, refunded, orders = money.get(event.id, (ZERO, ZERO, 0))
        report.append(EventSales(event, int(total), int(sold), int(held), revenue, refunded, orders))
    return report


def totals(sales: list[EventSales]) -> EventSales:
    """The sum of several events' figures: the money of all, the seats of those still selling."""
    total = EventSales(None)
    for row in sales:
        total.add(row)
    return total


def dashboard(now: datetime | None = None, latest: int = 10) -> dict:
    """Everything the admin dashboard shows: per-event sales, totals, latest orders."""
    now = now or utcnow()
    events = db.session.scalars(sa.select(Event).order_by(Event.date, Event.id)).all()
    # Not listed, but what deleted events took and refunded is money all the same.
    deleted = db.session.scalars(
        sa.select(Event).where(Event.deleted_at.is_not(None)).execution_options(include_deleted=True)
    ).all()
    sales = sales_by_event(events, now)
    everything = sales + sales_by_event(deleted, now)
    return {
        "sales": sales,
        "totals": totals(everything),
        "money_by_currency": money_by_currency(everything),
        "latest_orders": latest_orders(latest),
    }


def money_by_currency(sales: list[EventSales]) -> list[dict]:
    """Revenue and refunds summed per currency (amounts in different currencies never add up)."""
    by_code: dict[str, EventSales] = {}
    for row in sales:
        if row.orders or row.revenue or row.refunded:
            by_code.setdefault(row.event.currency, EventSales(None)).add(row)
    return [dict(currency=code, revenue=row.revenue, refunded=row.refunded) for code, row in sorted(by_code.items())]


def latest_orders(limit: int = 10, event_id: int | None = None) -> list[Order]:
    """The most recent orders, with their buyer, event and seats loaded up front."""
    query = (
        sa.select(Order)
        .options(so.joinedload(Order.user), so.joinedload(Order.event), so.selectinload(Order.bookings))
        .order_by(Order.created_at.desc(), Order.id.desc())
        .limit(limit)
    )
    if event_id is not None:
        query = query.where(Order.event_id == event_id)
    return db.session.scalars(query).unique().all()


# --- the admin's seat map --------------------------------------------------------------------


@dataclass
class SeatView:
    id: int
    row: str
    column: int
    state: str
    category_id: int
    seconds_left: int = 0
    order_reference: str | None = None
    buyer_email: str | None = None

    @property
    def label(self) -> str:
        return f"{self.row}{self.column}"

    @property
    def title(self) -> str:
        if self.state == SeatStatus.RESERVED:
            minutes, seconds = divmod(self.seconds_left, 60)
            return f"{self.label}: held by {self.buyer_email}, {minutes}:{seconds:02d} left ({self.order_reference})"
        if self.state == SeatStatus.BOOKED:
            return f"{self.label}: booked by {self.buyer_email} ({self.order_reference})"
        return f"{self.label}: available"


@dataclass
class SeatMapView:
    rows: list[tuple[str, list[SeatView]]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def taken(self) -> list[SeatView]:
        return [seat for _, seats in self.rows for seat in seats if seat.state != SeatStatus.AVAILABLE]


def seat_map(event: Event, now: datetime | None = None) -> SeatMapView:
    """Every live seat with its state at `now`, and the live order holding or owning it: one query."""
    now = now or utcnow()
    live_booking = so.aliased(Booking)
    rows = db.session.execute(
        sa.select(
            Seat.id,
            Seat.row,
            Seat.column,
            Seat.status,
            Seat.reservation_expires_at,
            Seat.price_category_id,
            Order.reference,
            User.email,
        )
        .outerjoin(live_booking, live_booking.live_seat_id == Seat.id)
        .outerjoin(Order, Order.id == live_booking.order_id)
        .outerjoin(User, User.id == Order.user_id)
        .where(Seat.event_id == event.id)
        .order_by(sa.func.length(Seat.row), Seat.row, Seat.column)
    )
    view = SeatMapView(counts={state: 0 for state in SeatStatus.ALL})
    by_row: dict[str, list[SeatView]] = {}
    for seat_id, row, column, status, expires_at, category_id, reference, email in rows:
        state = seat_state(status, expires_at, now)
        held = state == SeatStatus.RESERVED
        seconds = int((expires_at - now).total_seconds()) if held else 0
        taken = state != SeatStatus.AVAILABLE
        by_row.setdefault(row, []).append(
            SeatView(
                seat_id,
                row,
                column,
                state,
                category_id,
                seconds,
                reference if taken else None,
                email if taken else None,
            )
        )
        view.counts[state] += 1
    view.rows = list(by_row.items())
    return view


# --- lists -----------------------------------------------------------------------------------


def bookings_query(*, event_id: int | None = None, status: str | None = None, now: datetime | None = None):
    """Bookings (one per seat), newest first, with order, buyer, seat and category loaded up front.

    Seats replaced by a newer seat map stay listed with their bookings: history is never hidden.
    The status filter goes by the state at `now`: a hold that has run out is expired, not pending.
    """
    query = (
        sa.select(Booking)
        .options(
            so.joinedload(Booking.order),
            so.joinedload(Booking.user),
            so.joinedload(Booking.event),
            so.joinedload(Booking.seat).joinedload(Seat.price_category),
        )
        .order_by(Booking.created_at.desc(), Booking.id.desc())
    )
    if event_id is not None:
        query = query.where(Booking.event_id == event_id)
    if status:
        query = query.where(_booking_state_is(status, now or utcnow()))
    return query


def _booking_state_is(status: str, now: datetime):
    hold_ran_out = sa.and_(Booking.status == BookingStatus.PENDING, Booking.order.has(Order.hold_expires_at <= now))
    if status == BookingStatus.EXPIRED:
        return sa.or_(Booking.status == BookingStatus.EXPIRED, hold_ran_out)
    if status == BookingStatus.PENDING:
        return sa.and_(Booking.status == BookingStatus.PENDING, ~hold_ran_out)
    return Booking.status == status


def orders_query(*, event_id: int | None = None, payment_status: str | None = None):
    """Orders as payments: amount, method, provider reference, payment status, paid-at; newest first."""
    query = (
        sa.select(Order)
        .options(so.joinedload(Order.user), so.joinedload(Order.event))
        .order_by(Order.created_at.desc(), Order.id.desc())
    )
    if event_id is not None:
        query = query.where(Order.event_id == event_id)
    if payment_status:
        query = query.where(Order.payment_status == payment_status)
    return query


def live_order_counts(event: Event) -> dict:
    """How many orders cancelling this event would close, and how many of them it would refund."""
    row = db.session.execute(
        sa.select(
            sa.func.count(Order.id),
            _count_where(Order.payment_status == PaymentStatus.PAID),
            sa.func.coalesce(
                sa.func.sum(
                    sa.case(
                        (Order.payment_status == PaymentStatus.PAID, Order.total_amount - Order.refunded_amount),
                        else_=0,
                    )
                ),
                0,
            ),
        ).where(Order.event_id == event.id, Order.status.in_((BookingStatus.PENDING, BookingStatus.CONFIRMED)))
    ).one()
    return {"orders": int(row[0]), "paid": int(row[1]), "amount": Decimal(row[2])}


def find_order(reference: str) -> Order:
    """Any buyer's order by its reference, with its bookings and payment ledger; NotFound otherwise."""
    order = db.session.scalar(
        sa.select(Order)
        .where(Order.reference == str(reference or "")[:16])
        .options(so.joinedload(Order.user), so.selectinload(Order.payments))
    )
    if order is None:
        raise NotFound("No order with this reference.")
    return order


def find_booking(booking_id: int) -> Booking:
    booking = db.session.get(Booking, booking_id)
    if booking is None:
        raise NotFound("No such booking.")
    return booking


# --- CSV export ------------------------------------------------------------------------------

CSV_HEADER = [
    "reference",
    "buyer_email",
    "seat",
    "category",
    "amount",
    "currency",
    "status",
    "payment_status",
    "payment_method",
    "created_at",
    "paid_at",
    "ticket_code",
    "checked_in_at",
    "checked_in_door",
]
# A spreadsheet would run a cell starting with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    text = str(value)
    return "'" + text if isinstance(value, str) and text.startswith(FORMULA_STARTS) else text


def bookings_csv(event: Event) -> str:
    """The event's bookings, one seat per line, as CSV text (times in UTC, amounts with their currency code)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    tickets = {
        ticket.booking_id: ticket for ticket in db.session.scalars(sa.select(Ticket).where(Ticket.event_id == event.id))
    }
    for booking in db.session.scalars(bookings_query(event_id=event.id).order_by(None).order_by(Booking.id)).unique():
        ticket = tickets.get(booking.id)
        writer.writerow(
            _cell(value)
            for value in (
                booking.order.reference,
                booking.user.email,
                booking.seat.label,
                booking.seat.price_category.name,
                currencies.plain_amount(booking.total_amount, event.currency),
                event.currency,
                booking.status,
                booking.payment_status,
                booking.payment_method,
                booking.created_at,
                booking.order.paid_at,
                ticket.code if ticket else None,
                ticket.checked_in_at if ticket else None,
                ticket.checked_in_door if ticket else None,
            )
        )
    return out.getvalue()
