"""Helpers of the door tests: staff accounts and events with sold tickets."""

import sqlalchemy as sa

from app.extensions import db
from app.models import Ticket, User, utcnow
from app.services import tickets
from tests.admin_support import paid_order, seat_ids


def staff_user(factory, **kwargs) -> User:
    """A committed door staff account (not an admin)."""
    user = factory.user(**kwargs)
    user.is_staff = True
    db.session.commit()
    return user


def sold_tickets(factory, event, count=2, buyer=None, seats=None) -> list[Ticket]:
    """`count` seats of the event (the first ones, or of `seats`) paid by one buyer, with their
    tickets (issued here if the payment did not)."""
    buyer = buyer or factory.user()
    order = paid_order(buyer, event, (seats or seat_ids(event))[:count])
    tickets.issue_for_order(order, utcnow())
    db.session.commit()
    return list(db.session.scalars(sa.select(Ticket).where(Ticket.order_id == order.id).order_by(Ticket.seat_id)))
