"""No N+1 on the hot pages: the seat map, its JSON, a hold and the checkout cost the same number of
statements on a 2x3 event as on the largest allowed one, with other buyers' holds and sales on it."""

import contextlib

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import Seat
from app.services import booking, payments, seatmap
from tests.support import csrf_token, log_in


@contextlib.contextmanager
def counted_statements():
    statements = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", count)


def busy_event(factory, rows, columns):
    """An event where other buyers hold some seats and bought others."""
    event = factory.event(rows=rows, columns=columns)
    ids = db.session.scalars(sa.select(Seat.id).where(Seat.event_id == event.id).order_by(Seat.id)).all()
    booking.hold(factory.user(), event, ids[:2])
    buyer = factory.user()
    sold = booking.hold(buyer, event, ids[2:4])
    payments.pay_by_card(sold, user=buyer, card_number=payments.CARD_SUCCEEDS)
    return event, ids[4:6]


def statements_per_page(app, factory, rows, columns):
    """Statements for each hot request of one buyer on a fresh event of the given size."""
    event, free = busy_event(factory, rows, columns)
    client = app.test_client()
    with app.app_context():  # its own `g`, so the logged-in buyer of one size does not leak into the next
        log_in(client, factory.user())
        token = csrf_token(client, "/")
        counts = {}
        with counted_statements() as made:
            client.get(f"/events/{event.id}")
        counts["seat map page"] = len(made)
        seatmap.forget_rendered_maps()  # a cold cache: the map is rendered from the database
        with counted_statements() as made:
            client.get(f"/api/events/{event.id}/seats")
        counts["seat states (uncached)"] = len(made)
        with counted_statements() as made:
            held = client.post(f"/api/events/{event.id}/holds", json={"seat_ids": free}, headers={"X-CSRFToken": token})
        assert held.status_code == 201, held.get_json()
        counts["hold"] = len(made)
        with counted_statements() as made:
            assert client.get(held.get_json()["checkout_url"]).status_code == 200
        counts["checkout page"] = len(made)
    return counts


@pytest.mark.parametrize("page", ["seat map page", "seat states (uncached)", "hold", "checkout page"])
def test_hot_pages_cost_the_same_on_small_and_large_events(app, factory, page):
    small = statements_per_page(app, factory, 2, 3)
    large = statements_per_page(app, factory, app.config["MAX_SEAT_ROWS"], app.config["MAX_SEAT_COLUMNS"])
    assert small[page] == large[page], f"{page}: {small[page]} statements on 6 seats, {large[page]} on 400"
    assert large[page] <= 20, f"{page} takes {large[page]} statements"


def test_a_hold_through_the_api_is_five_statements(app, factory, client):
    """The hot path of a sale: the event locked (with the buyer, their open checkout and the free
    seats in one statement), the seats locked with their prices, the claim, the order and its
    bookings. A re-read, a user load or a per-seat statement added to it shows up here."""
    event, free = busy_event(factory, 2, 3)
    log_in(client, factory.user())
    token = csrf_token(client, "/")
    url = f"/api/events/{event.id}/holds"  # outside the count: reading event.id may reload it
    with counted_statements() as made:
        held = client.post(url, json={"seat_ids": free}, headers={"X-CSRFToken": token})
    assert held.status_code == 201, held.get_json()
    kinds = [" ".join(statement.split()[:3]).upper() for statement in made if statement.strip() != "BEGIN IMMEDIATE"]
    assert [kind.split()[0] for kind in kinds] == ["SELECT", "SELECT", "UPDATE", "INSERT", "INSERT"], kinds
    assert kinds[2:] == ["UPDATE SEATS SET", "INSERT INTO ORDERS", "INSERT INTO BOOKINGS"]
