"""Helpers shared by the admin tests: event form data, paid orders, clients of their own.

The `admin` fixture (a logged-in admin) is in tests/conftest.py."""

from datetime import timedelta

import sqlalchemy as sa

from app.extensions import db
from app.models import Seat, utcnow
from app.services import booking, payments
from tests.support import PASSWORD, csrf_token, log_in

FUTURE = (utcnow() + timedelta(days=40)).replace(hour=20, minute=0, second=0, microsecond=0)


def category_lines(*lines):
    """Form fields for category lines: (name, price, first_row, last_row[, color])."""
    data = {}
    for index, line in enumerate(lines):
        name, price, first_row, last_row, *color = line
        data.update(
            {
                f"categories-{index}-name": name,
                f"categories-{index}-price": price,
                f"categories-{index}-color": color[0] if color else "#4f7cff",
                f"categories-{index}-first_row": first_row,
                f"categories-{index}-last_row": last_row,
            }
        )
    return data


def event_form(client, categories=(("Standard", "40.00", "", ""),), **overrides):
    data = {
        "name": "Spring Gala",
        "description": "An evening of music.",
        "date": FUTURE.strftime("%Y-%m-%dT%H:%M"),
        "venue": "Main Hall",
        "rows": "5",
        "columns": "6",
        "csrf_token": csrf_token(client, "/admin/"),
        **category_lines(*categories),
    }
    data.update(overrides)
    return data


def post_form(client, path, data=None):
    """POST as the logged-in admin, with the session's CSRF token."""
    return client.post(path, data={"csrf_token": csrf_token(client, "/admin/"), **(data or {})})


def seat_ids(event, count=None):
    ids = db.session.scalars(sa.select(Seat.id).where(Seat.event_id == event.id).order_by(Seat.id)).all()
    return ids[:count] if count else ids


def live_seats(event):
    return db.session.scalars(sa.select(Seat).where(Seat.event_id == event.id).order_by(Seat.id)).all()


def paid_order(buyer, event, ids):
    """An order for these seats, paid by card."""
    order = booking.hold(buyer, event, ids)
    return payments.pay_by_card(order, user=buyer, card_number=payments.CARD_SUCCEEDS)


def client_of(app, user=None, password=PASSWORD):
    """A client of its own (each request in its own app context: FreshContextClient), logged in as
    this user when given."""
    client = app.test_client()
    if user is not None:
        log_in(client, user, password)
    return client
