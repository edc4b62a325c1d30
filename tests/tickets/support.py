"""Helpers for the ticket tests: a confirmed order in a few lines."""

import sqlalchemy as sa

from app.models import Seat


def paid_order(db_session, factory, *, seats=2, buyer=None, event=None, card="4242424242424242"):
    """A buyer's confirmed, paid order of the first `seats` seats of an event (made if not given)."""
    from app.services import booking, payments

    event = event or factory.event(name="Night Show", venue="Grand Hall", rows=3, columns=4)
    buyer = buyer or factory.user(name="Ada Lovelace")
    free = db_session.scalars(
        sa.select(Seat.id).where(Seat.event_id == event.id, Seat.status == "available").order_by(Seat.id)
    ).all()
    order = booking.hold(buyer, event, list(free[:seats]))
    return payments.pay_by_card(order, user=buyer, card_number=card), buyer, event
