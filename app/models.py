"""The data model: users, events with price categories and seats, orders, bookings, payments.

Times are naive datetimes in UTC. Money is Numeric(10, 2) and Decimal in Python, never float.
"""

from __future__ import annotations

import secrets
import string
from datetime import UTC, datetime
from decimal import Decimal

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask_login import UserMixin
from sqlalchemy.dialects import mysql
from sqlalchemy.ext.hybrid import hybrid_method
from werkzeug.security import check_password_hash, generate_password_hash

from app.extensions import db, login_manager

Money = sa.Numeric(10, 2)


def utcnow() -> datetime:
    """Now, as the naive UTC datetime the database stores."""
    return datetime.now(UTC).replace(tzinfo=None)


class TimestampMixin:
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)
    updated_at: so.Mapped[datetime] = so.mapped_column(default=utcnow, onupdate=utcnow)


class SoftDeleteMixin:
    """Rows with deleted_at set are left out of every query unless it asks for include_deleted.

    Only the rows a query asks for are filtered, never what their relationships load: an order
    still has its event and a booking its seat after those were deleted or replaced, because
    history shows what was sold. (selectinload is the exception: SQLAlchemy runs its SELECT with
    the query's own options, so load soft-deletable parents with joinedload or lazily.)
    """

    deleted_at: so.Mapped[datetime | None] = so.mapped_column(default=None)

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None

    def soft_delete(self, now: datetime | None = None) -> None:
        self.deleted_at = now or utcnow()


def hide_soft_deleted_rows() -> None:
    """Every ORM select leaves out soft-deleted rows unless it asks for `include_deleted`."""
    if not sa.event.contains(so.Session, "do_orm_execute", _hide_soft_deleted):
        sa.event.listen(so.Session, "do_orm_execute", _hide_soft_deleted)


def _hide_soft_deleted(execute_state):
    if (
        execute_state.is_select
        and not execute_state.is_column_load
        and not execute_state.is_relationship_load
        and not execute_state.execution_options.get("include_deleted", False)
    ):
        execute_state.statement = execute_state.statement.options(
            so.with_loader_criteria(
                SoftDeleteMixin,
                lambda cls: cls.deleted_at.is_(None),
                include_aliases=True,
                # Else eager loads and later lazy loads of the rows found inherit the filter.
                propagate_to_loaders=False,
            )
        )


class User(UserMixin, TimestampMixin, db.Model):
    __tablename__ = "users"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    # Compared exactly (stored lower-cased): an accent-insensitive collation would let other
    # addresses reach this account.
    email: so.Mapped[str] = so.mapped_column(
        sa.String(255).with_variant(mysql.VARCHAR(255, collation="utf8mb4_bin"), "mysql", "mariadb"),
        unique=True,
    )
    name: so.Mapped[str] = so.mapped_column(sa.String(120))
    password_hash: so.Mapped[str] = so.mapped_column(sa.String(255))
    is_admin: so.Mapped[bool] = so.mapped_column(default=False)
    # en, de or es (app.i18n.LANGUAGES); None follows the browser's Accept-Language.
    language: so.Mapped[str | None] = so.mapped_column(sa.String(5), default=None)
    # Door staff may check tickets in and see nothing else of the admin area.
    is_staff: so.Mapped[bool] = so.mapped_column(default=False, server_default=sa.false())

    orders: so.WriteOnlyMapped[Order] = so.relationship(back_populates="user", passive_deletes=True)

    @property
    def can_check_in(self) -> bool:
        """Staff check tickets in at the door; admins can do everything staff can."""
        return self.is_admin or self.is_staff

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)

    def __repr__(self):
        return f"<User {self.email}>"


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    # Every signed-in request runs this; accounts are never soft-deleted, so the soft-delete
    # filter (a loader criterion SQLAlchemy must process on each query) is skipped.
    return db.session.get(User, int(user_id), execution_options={"include_deleted": True})


class EventStatus:
    DRAFT = "draft"
    PUBLISHED = "published"
    CANCELLED = "cancelled"
    ALL = (DRAFT, PUBLISHED, CANCELLED)


class WaitingRoomMode:
    OFF = "off"
    ON_SALE = "on_sale"  # active from the early window before sales_start_at until the queue empties
    ALWAYS = "always"
    ALL = (OFF, ON_SALE, ALWAYS)


class Event(TimestampMixin, SoftDeleteMixin, db.Model):
    __tablename__ = "events"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    name: so.Mapped[str] = so.mapped_column(sa.String(200))
    description: so.Mapped[str] = so.mapped_column(sa.Text, default="")
    date: so.Mapped[datetime] = so.mapped_column(index=True)
    venue: so.Mapped[str] = so.mapped_column(sa.String(200), default="")
    rows: so.Mapped[int] = so.mapped_column(default=0)
    columns: so.Mapped[int] = so.mapped_column(default=0)
    status: so.Mapped[str] = so.mapped_column(sa.String(16), default=EventStatus.DRAFT, index=True)
    # Set by the scheduled job once the event's date has passed; selling also stops by the date alone.
    sales_ended_at: so.Mapped[datetime | None] = so.mapped_column(default=None)
    cancelled_at: so.Mapped[datetime | None] = so.mapped_column(default=None)
    # Where the event happens: `date` stays UTC, the venue's zone is how admins enter it and
    # buyers read it. Prices are in `currency` (ISO 4217), exact to its minor units.
    timezone: so.Mapped[str] = so.mapped_column(sa.String(64), default="UTC", server_default="UTC")
    currency: so.Mapped[str] = so.mapped_column(sa.String(3), default="EUR", server_default="EUR")
    # Holds are refused before this moment (None: on sale once published); see app/services/waiting_room.py.
    sales_start_at: so.Mapped[datetime | None] = so.mapped_column(default=None)
    waiting_room: so.Mapped[str] = so.mapped_column(
        sa.String(16), default=WaitingRoomMode.ON_SALE, server_default=WaitingRoomMode.ON_SALE
    )
    # Buyers admitted per minute; None admits as many as the event can serve.
    waiting_room_rate: so.Mapped[int | None] = so.mapped_column(default=None)

    price_categories: so.Mapped[list[PriceCategory]] = so.relationship(
        back_populates="event", order_by="PriceCategory.position", cascade="all, delete-orphan"
    )
    seats: so.WriteOnlyMapped[Seat] = so.relationship(back_populates="event")

    __table_args__ = (
        sa.CheckConstraint("status IN ('draft', 'published', 'cancelled')", name="status"),
        sa.CheckConstraint("waiting_room IN ('off', 'on_sale', 'always')", name="waiting_room"),
        sa.CheckConstraint("waiting_room_rate IS NULL OR waiting_room_rate > 0", name="waiting_room_rate_positive"),
    )

    def is_on_sale(self, now: datetime) -> bool:
        """Buyers can hold seats: published, not deleted, on-sale time reached, not yet begun, sales not closed."""
        return (
            self.status == EventStatus.PUBLISHED
            and not self.is_deleted
            and self.date > now
            and self.sales_ended_at is None
            and not self.sells_later(now)
        )

    def sells_later(self, now: datetime) -> bool:
        """Published and still before its on-sale time: the map shows, holds wait for the countdown."""
        return (
            self.status == EventStatus.PUBLISHED
            and self.sales_start_at is not None
            and now < self.sales_start_at
            and self.date > now
            and self.sales_ended_at is None
        )

    def __repr__(self):
        return f"<Event {self.id} {self.name!r}>"


class PriceCategory(db.Model):
    """A named price for a range of rows; the category without a range covers every other row."""

    __tablename__ = "price_categories"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    event_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("events.id"), index=True)
    name: so.Mapped[str] = so.mapped_column(sa.String(60))
    price: so.Mapped[Decimal] = so.mapped_column(Money)
    color: so.Mapped[str] = so.mapped_column(sa.String(7), default="#4f7cff")
    first_row: so.Mapped[int | None] = so.mapped_column(default=None)
    last_row: so.Mapped[int | None] = so.mapped_column(default=None)
    position: so.Mapped[int] = so.mapped_column(default=0)

    event: so.Mapped[Event] = so.relationship(back_populates="price_categories")

    __table_args__ = (sa.CheckConstraint("price >= 0", name="price_not_negative"),)

    @property
    def is_default(self) -> bool:
        return self.first_row is None

    def covers_row(self, row_number: int) -> bool:
        return self.first_row is not None and self.first_row <= row_number <= self.last_row


class SeatStatus:
    AVAILABLE = "available"
    RESERVED = "reserved"
    BOOKED = "booked"
    ALL = (AVAILABLE, RESERVED, BOOKED)


def seat_state(status: str, reservation_expires_at: datetime | None, now: datetime) -> str:
    """A seat's state at `now` from its stored columns: a hold that has run out is available.

    The one rule for "is this seat free at time T": Seat.is_free / Seat.is_held (in Python and, as
    hybrid methods, in SQL), the seat maps and the reports all follow it.
    """
    if status == SeatStatus.RESERVED and reservation_expires_at is not None and reservation_expires_at <= now:
        return SeatStatus.AVAILABLE
    return status


def row_label(row_number: int) -> str:
    """1 -> A, 26 -> Z, 27 -> AA: the spreadsheet scheme, so labels never run out."""
    label = ""
    while row_number > 0:
        row_number, remainder = divmod(row_number - 1, 26)
        label = string.ascii_uppercase[remainder] + label
    return label


class Seat(TimestampMixin, SoftDeleteMixin, db.Model):
    __tablename__ = "seats"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    event_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("events.id"), index=True)
    row: so.Mapped[str] = so.mapped_column(sa.String(3))
    column: so.Mapped[int] = so.mapped_column()
    status: so.Mapped[str] = so.mapped_column(sa.String(16), default=SeatStatus.AVAILABLE)
    reservation_expires_at: so.Mapped[datetime | None] = so.mapped_column(default=None)
    price_category_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("price_categories.id"), index=True)
    # 1 while the seat is live, NULL once soft-deleted: the unique key below then ignores old seats.
    live: so.Mapped[int | None] = so.mapped_column(
        sa.Integer, sa.Computed("CASE WHEN deleted_at IS NULL THEN 1 END", persisted=True)
    )

    event: so.Mapped[Event] = so.relationship(back_populates="seats")
    price_category: so.Mapped[PriceCategory] = so.relationship()

    __table_args__ = (
        sa.UniqueConstraint("event_id", "row", "column", "live", name="uq_seats_live_position"),
        sa.Index("ix_seats_status_reservation_expires_at", "status", "reservation_expires_at"),
        sa.CheckConstraint("status IN ('available', 'reserved', 'booked')", name="status"),
    )

    @property
    def label(self) -> str:
        return f"{self.row}{self.column}"

    def hold_has_expired(self, now: datetime) -> bool:
        return self.status == SeatStatus.RESERVED and self.state_at(now) == SeatStatus.AVAILABLE

    @hybrid_method
    def is_free(self, now: datetime) -> bool:
        """Available, or reserved by a hold that has run out (free even before any cleanup)."""
        return seat_state(self.status, self.reservation_expires_at, now) == SeatStatus.AVAILABLE

    @is_free.expression
    def is_free(cls, now: datetime):  # noqa: N805  (a hybrid expression gets the class)
        return sa.or_(
            cls.status == SeatStatus.AVAILABLE,
            sa.and_(cls.status == SeatStatus.RESERVED, cls.reservation_expires_at <= now),
        )

    @hybrid_method
    def is_held(self, now: datetime) -> bool:
        """Reserved by a hold that has not run out."""
        return seat_state(self.status, self.reservation_expires_at, now) == SeatStatus.RESERVED

    @is_held.expression
    def is_held(cls, now: datetime):  # noqa: N805  (a hybrid expression gets the class)
        return sa.and_(cls.status == SeatStatus.RESERVED, cls.reservation_expires_at > now)

    def state_at(self, now: datetime) -> str:
        return seat_state(self.status, self.reservation_expires_at, now)

    def __repr__(self):
        return f"<Seat {self.id} {self.label} {self.status}>"


class OrderStatus:
    PENDING = "pending"
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"
    FAILED = "failed"
    EXPIRED = "expired"
    ALL = (PENDING, CONFIRMED, CANCELLED, FAILED, EXPIRED)
    LIVE = (PENDING, CONFIRMED)


# Bookings share the order's life cycle: one row per seat, mirroring its order's states.
BookingStatus = OrderStatus


class PaymentStatus:
    PENDING = "pending"
    PAID = "paid"
    FAILED = "failed"
    REFUNDED = "refunded"
    ALL = (PENDING, PAID, FAILED, REFUNDED)


def new_reference() -> str:
    """A short public order reference, unambiguous to read aloud (no 0/O, 1/I)."""
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # 32 symbols: each random byte's low 5 bits pick one
    return "SP-" + "".join(alphabet[byte & 31] for byte in secrets.token_bytes(8))


class Order(TimestampMixin, db.Model):
    """One buyer's checkout of one or more seats of one event, paid once."""

    __tablename__ = "orders"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    reference: so.Mapped[str] = so.mapped_column(sa.String(16), unique=True, default=new_reference)
    user_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id"), index=True)
    event_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("events.id"), index=True)
    status: so.Mapped[str] = so.mapped_column(sa.String(16), default=OrderStatus.PENDING)
    payment_status: so.Mapped[str] = so.mapped_column(sa.String(16), default=PaymentStatus.PENDING)
    payment_method: so.Mapped[str | None] = so.mapped_column(sa.String(20), default=None)
    total_amount: so.Mapped[Decimal] = so.mapped_column(Money, default=Decimal("0.00"))
    hold_expires_at: so.Mapped[datetime] = so.mapped_column(index=True)
    card_last4: so.Mapped[str | None] = so.mapped_column(sa.String(4), default=None)
    provider_reference: so.Mapped[str | None] = so.mapped_column(sa.String(64), default=None)
    failure_reason: so.Mapped[str | None] = so.mapped_column(sa.String(255), default=None)
    refunded_amount: so.Mapped[Decimal] = so.mapped_column(Money, default=Decimal("0.00"))
    paid_at: so.Mapped[datetime | None] = so.mapped_column(default=None)
    refunded_at: so.Mapped[datetime | None] = so.mapped_column(default=None)
    # Bumped on every update and checked by it (optimistic locking): a change made from a stale
    # read fails instead of overwriting, also on SQLite where rows cannot be locked.
    version: so.Mapped[int] = so.mapped_column(default=1)
    # The event id while the order is pending, else NULL: with user_id it is unique, so the
    # database itself allows one open checkout per buyer per event.
    pending_event_id: so.Mapped[int | None] = so.mapped_column(
        sa.Integer, sa.Computed("CASE WHEN status = 'pending' THEN event_id END", persisted=True)
    )

    user: so.Mapped[User] = so.relationship(back_populates="orders")
    event: so.Mapped[Event] = so.relationship()
    # Said here, not left to the soft-delete filter, so that every way of loading them agrees.
    bookings: so.Mapped[list[Booking]] = so.relationship(
        back_populates="order",
        primaryjoin="and_(Order.id == Booking.order_id, Booking.deleted_at.is_(None))",
        order_by="Booking.seat_id",
    )
    payments: so.Mapped[list[Payment]] = so.relationship(back_populates="order", order_by="Payment.id")

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        sa.UniqueConstraint("user_id", "pending_event_id", name="uq_orders_one_pending_per_event"),
        sa.Index("ix_orders_status_hold_expires_at", "status", "hold_expires_at"),
        sa.CheckConstraint("status IN ('pending', 'confirmed', 'cancelled', 'failed', 'expired')", name="status"),
        sa.CheckConstraint("payment_status IN ('pending', 'paid', 'failed', 'refunded')", name="payment_status"),
        sa.CheckConstraint("total_amount >= 0", name="total_not_negative"),
    )

    def hold_has_expired(self, now: datetime) -> bool:
        return self.status == OrderStatus.PENDING and self.hold_expires_at <= now

    def seconds_left(self, now: datetime) -> int:
        return max(0, int((self.hold_expires_at - now).total_seconds()))

    def state_at(self, now: datetime) -> str:
        """Its status as of now: a hold that has run out is expired, whether cleaned up or not."""
        return OrderStatus.EXPIRED if self.hold_has_expired(now) else self.status

    def __repr__(self):
        return f"<Order {self.reference} {self.status}/{self.payment_status}>"


class Booking(TimestampMixin, SoftDeleteMixin, db.Model):
    """One seat of an order. Its status and payment_status mirror the order's."""

    __tablename__ = "bookings"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    order_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("orders.id"), index=True)
    user_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id"), index=True)
    event_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("events.id"), index=True)
    seat_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("seats.id"), index=True)
    status: so.Mapped[str] = so.mapped_column(sa.String(16), default=BookingStatus.PENDING)
    total_amount: so.Mapped[Decimal] = so.mapped_column(Money)
    payment_status: so.Mapped[str] = so.mapped_column(sa.String(16), default=PaymentStatus.PENDING)
    payment_method: so.Mapped[str | None] = so.mapped_column(sa.String(20), default=None)
    # The seat id while this booking is live (pending or confirmed), else NULL. Unique, so the
    # database refuses a second live booking for a seat whatever the application does.
    live_seat_id: so.Mapped[int | None] = so.mapped_column(
        sa.Integer,
        sa.Computed(
            "CASE WHEN deleted_at IS NULL AND status IN ('pending', 'confirmed') THEN seat_id END",
            persisted=True,
        ),
        unique=True,
    )

    order: so.Mapped[Order] = so.relationship(back_populates="bookings")
    user: so.Mapped[User] = so.relationship()
    event: so.Mapped[Event] = so.relationship()
    seat: so.Mapped[Seat] = so.relationship()

    __table_args__ = (
        sa.Index("ix_bookings_event_id_status", "event_id", "status"),
        sa.CheckConstraint("status IN ('pending', 'confirmed', 'cancelled', 'failed', 'expired')", name="status"),
        sa.CheckConstraint("payment_status IN ('pending', 'paid', 'failed', 'refunded')", name="payment_status"),
        sa.CheckConstraint("total_amount >= 0", name="total_not_negative"),
    )

    def state_at(self, now: datetime) -> str:
        """Its status as of now: a pending seat shares its order's hold, expired once that runs out."""
        return self.order.state_at(now) if self.status == BookingStatus.PENDING else self.status

    def __repr__(self):
        return f"<Booking {self.id} seat={self.seat_id} {self.status}>"


class PaymentKind:
    CHARGE = "charge"
    REFUND = "refund"


class PaymentMethod:
    CARD = "card"  # charged by the payment provider: its answer may be slow or lost
    WALLET = "wallet"  # approved by the buyer on the wallet's page: moves no money until then


class PaymentResult:
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    DECLINED = "declined"
    ERROR = "error"


class Payment(db.Model):
    """The payment provider's ledger: each charge or refund it was asked to make for an order.

    At most one charge per order (unique key), so a double submit cannot charge twice. Refunds
    cover one seat of the order (booking_id) or the rest of it (no booking_id): at most one of
    each (unique key), so no seat is refunded twice.
    """

    __tablename__ = "payments"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    order_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("orders.id"), index=True)
    booking_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("bookings.id"), index=True, default=None)
    kind: so.Mapped[str] = so.mapped_column(sa.String(10), default=PaymentKind.CHARGE)
    method: so.Mapped[str] = so.mapped_column(sa.String(20))
    amount: so.Mapped[Decimal] = so.mapped_column(Money)
    result: so.Mapped[str] = so.mapped_column(sa.String(16), default=PaymentResult.PENDING)
    # None while the provider has not answered the attempt (it timed out or could not be reached).
    provider_reference: so.Mapped[str | None] = so.mapped_column(sa.String(64), unique=True, default=None)
    # Which try at paying the order this charge is; with the order's reference it makes the
    # idempotency key the provider sees, so trying the same try again never charges twice.
    attempt: so.Mapped[int] = so.mapped_column(default=1, server_default="1")
    card_last4: so.Mapped[str | None] = so.mapped_column(sa.String(4), default=None)
    failure_reason: so.Mapped[str | None] = so.mapped_column(sa.String(255), default=None)
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)
    completed_at: so.Mapped[datetime | None] = so.mapped_column(default=None)
    # The order id on charges, NULL on refunds: unique, so an order is charged at most once.
    charged_order_id: so.Mapped[int | None] = so.mapped_column(
        sa.Integer,
        sa.Computed("CASE WHEN kind = 'charge' THEN order_id END", persisted=True),
        unique=True,
    )
    # On refunds the refunded booking's id, or 0 for the rest of the order; NULL on charges.
    refund_scope: so.Mapped[int | None] = so.mapped_column(
        sa.Integer, sa.Computed("CASE WHEN kind = 'refund' THEN COALESCE(booking_id, 0) END", persisted=True)
    )

    order: so.Mapped[Order] = so.relationship(back_populates="payments")
    booking: so.Mapped[Booking | None] = so.relationship()

    __table_args__ = (
        sa.UniqueConstraint("order_id", "refund_scope", name="uq_payments_order_id_refund_scope"),
        sa.CheckConstraint("kind IN ('charge', 'refund')", name="kind"),
        sa.CheckConstraint("result IN ('pending', 'succeeded', 'declined', 'error')", name="result"),
        sa.CheckConstraint("amount >= 0", name="amount_not_negative"),
    )


class AuditEntry(db.Model):
    """One line of the append-only audit trail: who did what to which object, and when.

    Rows are only ever added (app/services/audit.py refuses updates and deletes). The actor is a
    user or, with no actor_id, the system (a job); actor_label keeps who it was after the account
    is gone. subject_id and event_id are plain numbers, not foreign keys: the trail outlives purges.
    """

    __tablename__ = "audit_log"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow, index=True)
    actor_id: so.Mapped[int | None] = so.mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"), index=True, default=None
    )
    actor_label: so.Mapped[str] = so.mapped_column(sa.String(255), default="system")
    action: so.Mapped[str] = so.mapped_column(sa.String(64), index=True)
    subject_type: so.Mapped[str | None] = so.mapped_column(sa.String(32), default=None)
    subject_id: so.Mapped[int | None] = so.mapped_column(default=None)
    event_id: so.Mapped[int | None] = so.mapped_column(default=None, index=True)
    data: so.Mapped[dict] = so.mapped_column(sa.JSON, default=dict)

    actor: so.Mapped[User | None] = so.relationship()

    __table_args__ = (sa.Index("ix_audit_log_subject", "subject_type", "subject_id"),)

    def __repr__(self):
        return f"<AuditEntry {self.id} {self.action} {self.subject_type}:{self.subject_id}>"


class Ticket(db.Model):
    """The admission of one confirmed seat: an unguessable code and, from it, a signed QR payload.

    Issued when the order is confirmed and never deleted: a refunded or cancelled seat's ticket is
    revoked (void), so the door can tell a void ticket from a forged one.
    """

    __tablename__ = "tickets"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    booking_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("bookings.id"), unique=True)
    order_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("orders.id"), index=True)
    event_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("events.id"), index=True)
    seat_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("seats.id"), index=True)
    # 16 Crockford base32 characters, stored upper-case; compared byte for byte on every database.
    code: so.Mapped[str] = so.mapped_column(
        sa.String(16).with_variant(mysql.VARCHAR(16, collation="utf8mb4_bin"), "mysql", "mariadb"),
        unique=True,
    )
    # The id of the signing key its QR payload was signed with (see app/services/tickets.py).
    kid: so.Mapped[str] = so.mapped_column(sa.String(16))
    issued_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)
    revoked_at: so.Mapped[datetime | None] = so.mapped_column(default=None)
    revoked_reason: so.Mapped[str | None] = so.mapped_column(sa.String(255), default=None)
    checked_in_at: so.Mapped[datetime | None] = so.mapped_column(default=None)
    checked_in_door: so.Mapped[str | None] = so.mapped_column(sa.String(64), default=None)
    checked_in_by_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("users.id"), index=True, default=None)

    booking: so.Mapped[Booking] = so.relationship()
    order: so.Mapped[Order] = so.relationship()
    event: so.Mapped[Event] = so.relationship()
    seat: so.Mapped[Seat] = so.relationship()
    checked_in_by: so.Mapped[User | None] = so.relationship()

    @property
    def is_void(self) -> bool:
        """Revoked: its seat was refunded or cancelled, so it admits nobody."""
        return self.revoked_at is not None

    def __repr__(self):
        return f"<Ticket {self.code} booking={self.booking_id}{' void' if self.is_void else ''}>"


class OutboxStatus:
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    ALL = (PENDING, SENDING, SENT, FAILED)


class OutboxEmail(TimestampMixin, db.Model):
    """An email to send, written in the same transaction as the change it tells of.

    The dedupe key names that change (unique), so one change never queues two emails. A sender
    claims a row with a conditional UPDATE (pending or with a lapsed claim, and due), so two
    workers, or one job run twice, never send it twice.
    """

    __tablename__ = "outbox_emails"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    kind: so.Mapped[str] = so.mapped_column(sa.String(40))
    recipient: so.Mapped[str] = so.mapped_column(sa.String(255))
    # The language the email is written in (the recipient's), "en" when they have none.
    language: so.Mapped[str] = so.mapped_column(sa.String(10), default="en")
    subject: so.Mapped[str] = so.mapped_column(sa.String(255))
    # What the kind's templates need to render, as it was when the change happened.
    data: so.Mapped[dict] = so.mapped_column(sa.JSON, default=dict)
    dedupe_key: so.Mapped[str] = so.mapped_column(sa.String(200), unique=True)
    # SET NULL: purging an old order (flask db-cleanup) keeps the record of what was emailed.
    order_id: so.Mapped[int | None] = so.mapped_column(
        sa.ForeignKey("orders.id", ondelete="SET NULL"), index=True, default=None
    )
    status: so.Mapped[str] = so.mapped_column(sa.String(16), default=OutboxStatus.PENDING)
    attempts: so.Mapped[int] = so.mapped_column(default=0)
    # When it is due: the next try while pending, the end of the claim while sending.
    next_attempt_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)
    last_error: so.Mapped[str | None] = so.mapped_column(sa.String(1000), default=None)
    sent_at: so.Mapped[datetime | None] = so.mapped_column(default=None)

    order: so.Mapped[Order | None] = so.relationship()

    __table_args__ = (
        sa.Index("ix_outbox_emails_status_next_attempt_at", "status", "next_attempt_at"),
        sa.CheckConstraint("status IN ('pending', 'sending', 'sent', 'failed')", name="status"),
    )

    def __repr__(self):
        return f"<OutboxEmail {self.id} {self.kind} {self.status}>"


class CheckinConflict(db.Model):
    """A scan a door accepted offline that, once sent, met an earlier check-in or a void ticket.

    Kept for the admins (the event page lists them): someone may be inside on a copied ticket.
    """

    __tablename__ = "checkin_conflicts"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    event_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("events.id"), index=True)
    ticket_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("tickets.id"), index=True)
    door: so.Mapped[str] = so.mapped_column(sa.String(64))
    staff_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("users.id"), index=True, default=None)
    scanned_at: so.Mapped[datetime]
    # What the server answered once the scan arrived: already_checked_in or void.
    result: so.Mapped[str] = so.mapped_column(sa.String(24))
    first_checked_in_at: so.Mapped[datetime | None] = so.mapped_column(default=None)
    first_door: so.Mapped[str | None] = so.mapped_column(sa.String(64), default=None)
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)

    ticket: so.Mapped[Ticket] = so.relationship()
    staff: so.Mapped[User | None] = so.relationship()


class WaitlistStatus:
    WAITING = "waiting"
    OFFERED = "offered"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    EXPIRED = "expired"
    SKIPPED = "skipped"
    LEFT = "left"
    CLOSED = "closed"
    ALL = (WAITING, OFFERED, ACCEPTED, DECLINED, EXPIRED, SKIPPED, LEFT, CLOSED)
    OPEN = (WAITING, OFFERED)


class Waitlist(db.Model):
    """An event's waiting list: whether it takes entries, and the row every offer step locks last."""

    __tablename__ = "waitlists"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    event_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("events.id"), unique=True)
    is_open: so.Mapped[bool] = so.mapped_column(default=True)
    closed_at: so.Mapped[datetime | None] = so.mapped_column(default=None)


class WaitlistEntry(TimestampMixin, db.Model):
    """A buyer waiting for seats of a sold-out event; the queue is the order of ids."""

    __tablename__ = "waitlist_entries"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    event_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("events.id"))
    user_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id"))
    party_size: so.Mapped[int] = so.mapped_column()
    # None: any category will do.
    price_category_id: so.Mapped[int | None] = so.mapped_column(
        sa.ForeignKey("price_categories.id"), index=True, default=None
    )
    together: so.Mapped[bool] = so.mapped_column(default=False)
    status: so.Mapped[str] = so.mapped_column(sa.String(16), default=WaitlistStatus.WAITING)
    # The pending order that holds the offered seats for this buyer (kept once the offer ends).
    offer_order_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("orders.id"), index=True, default=None)
    offered_at: so.Mapped[datetime | None] = so.mapped_column(default=None)
    offer_expires_at: so.Mapped[datetime | None] = so.mapped_column(default=None)
    ended_at: so.Mapped[datetime | None] = so.mapped_column(default=None)
    # The event id while the entry is waiting or offered, else NULL: with user_id it is unique,
    # so the database itself allows one open entry per buyer per event.
    open_event_id: so.Mapped[int | None] = so.mapped_column(
        sa.Integer, sa.Computed("CASE WHEN status IN ('waiting', 'offered') THEN event_id END", persisted=True)
    )

    user: so.Mapped[User] = so.relationship()
    event: so.Mapped[Event] = so.relationship()
    price_category: so.Mapped[PriceCategory | None] = so.relationship()
    offer_order: so.Mapped[Order | None] = so.relationship()

    __table_args__ = (
        sa.UniqueConstraint("user_id", "open_event_id", name="uq_waitlist_entries_one_open_per_event"),
        sa.Index("ix_waitlist_entries_event_id_status", "event_id", "status"),
        sa.CheckConstraint(
            "status IN ('waiting', 'offered', 'accepted', 'declined', 'expired', 'skipped', 'left', 'closed')",
            name="status",
        ),
        sa.CheckConstraint("party_size >= 1", name="party_size_positive"),
    )

    @property
    def is_open(self) -> bool:
        return self.status in WaitlistStatus.OPEN

    def offer_has_expired(self, now: datetime) -> bool:
        return self.status == WaitlistStatus.OFFERED and self.offer_expires_at <= now

    def state_at(self, now: datetime) -> str:
        """Its status as of now: an offer past its limit is expired, whether tidied up or not."""
        return WaitlistStatus.EXPIRED if self.offer_has_expired(now) else self.status

    def __repr__(self):
        return f"<WaitlistEntry {self.id} event={self.event_id} {self.status}>"


class HoldExtension(db.Model):
    """The one extension a checkout's hold may get (WCAG 2.2.1: let people ask for more time)."""

    __tablename__ = "hold_extensions"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    order_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("orders.id"), unique=True)
    seconds: so.Mapped[int] = so.mapped_column()
    extended_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)
