"""Helpers of the door tests: staff accounts and events with sold tickets."""

import sqlalchemy as sa
from flask import current_app

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
    """`count` seats of the event (the first ones, or of `seats`) paid by one buyer in orders of at
    most MAX_SEATS_PER_ORDER, with their tickets (issued here if the payment did not)."""
    buyer = buyer or factory.user()
    wanted = (seats or seat_ids(event))[:count]
    per_order = current_app.config["MAX_SEATS_PER_ORDER"]
    order_ids = []
    for start in range(0, len(wanted), per_order):
        order = paid_order(buyer, event, wanted[start : start + per_order])
        tickets.issue_for_order(order, utcnow())
        db.session.commit()
        order_ids.append(order.id)
    return list(db.session.scalars(sa.select(Ticket).where(Ticket.order_id.in_(order_ids)).order_by(Ticket.seat_id)))
