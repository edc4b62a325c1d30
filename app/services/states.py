"""The state machines of seats, orders/bookings and payments, enforced in this one place.

Every status change goes through `move`, which refuses an illegal transition before touching
anything, so a refused change never half-applies.
"""

from flask_babel import gettext as _

from app.i18n import status_label
from app.models import OrderStatus, PaymentStatus, SeatStatus
from app.services.errors import IllegalTransition

SEAT_TRANSITIONS = {
    SeatStatus.AVAILABLE: {SeatStatus.RESERVED},
    # reserved -> reserved renews an expired hold for a new buyer.
    SeatStatus.RESERVED: {SeatStatus.BOOKED, SeatStatus.AVAILABLE, SeatStatus.RESERVED},
    SeatStatus.BOOKED: {SeatStatus.AVAILABLE},
}

ORDER_TRANSITIONS = {
    OrderStatus.PENDING: {
        OrderStatus.CONFIRMED,
        OrderStatus.FAILED,
        OrderStatus.EXPIRED,
        OrderStatus.CANCELLED,
    },
    OrderStatus.CONFIRMED: {OrderStatus.CANCELLED},
    OrderStatus.FAILED: set(),
    OrderStatus.EXPIRED: set(),
    OrderStatus.CANCELLED: set(),
}
BOOKING_TRANSITIONS = ORDER_TRANSITIONS

PAYMENT_TRANSITIONS = {
    PaymentStatus.PENDING: {PaymentStatus.PAID, PaymentStatus.FAILED},
    PaymentStatus.PAID: {PaymentStatus.REFUNDED},
    PaymentStatus.FAILED: set(),
    PaymentStatus.REFUNDED: set(),
}


def sources(transitions: dict, new: str) -> list[str]:
    """The states from which `new` may be reached (for conditional UPDATE ... WHERE status IN)."""
    return sorted(state for state, targets in transitions.items() if new in targets and state != new)


def check(transitions: dict, current: str, new: str, what: str) -> None:
    """Raise IllegalTransition unless current -> new is allowed."""
    if new not in transitions.get(current, set()):
        raise IllegalTransition(
            _(
                "A %(what)s cannot go from %(current)s to %(new)s.",
                what=what,
                current=status_label(current),
                new=status_label(new),
            ),
            what=what,
            current=current,
            new=new,
        )


def move(obj, attribute: str, transitions: dict, new: str, what: str) -> None:
    check(transitions, getattr(obj, attribute), new, what)
    setattr(obj, attribute, new)


def move_order(order, status: str | None = None, payment_status: str | None = None, bookings=None) -> None:
    """Change an order and its bookings (all of them unless given) together: checks every
    transition first, then applies."""
    targets = [order, *(order.bookings if bookings is None else bookings)]
    for target in targets:
        what = "booking" if target is not order else "order"
        if status is not None and status != target.status:
            check(ORDER_TRANSITIONS, target.status, status, what)
        if payment_status is not None and payment_status != target.payment_status:
            check(PAYMENT_TRANSITIONS, target.payment_status, payment_status, f"{what} payment")
    for target in targets:
        if status is not None:
            target.status = status
        if payment_status is not None:
            target.payment_status = payment_status
