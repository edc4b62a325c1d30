"""History shows what was sold: orders and bookings keep their seats and events after those are
replaced by a new seat map or deleted, while normal queries still hide soft-deleted rows."""

import html
import re
from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from app.models import Booking, Event, Order, Seat, User, utcnow
from app.services import booking, catalog, events, reports
from app.services.events import CategorySpec
from tests.admin_support import client_of, paid_order, seat_ids


def text(response):
    assert response.status_code == 200, response.status_code
    return html.unescape(response.get_data(as_text=True))


def resize(event, rows, columns):
    """Give the event a new seat map, as the admin's edit form does."""
    details = events.EventDetails(event.name, event.date, rows, columns, [CategorySpec("Standard", Decimal("25.00"))])
    events.update_event(event, details)


@pytest.fixture
def people(app, factory):
    """An admin's and a buyer's clients, each request in its own app context."""
    buyer = factory.user(email="fan@example.com")
    return client_of(app, factory.admin()), client_of(app, buyer), buyer


def test_a_cancelled_order_keeps_its_seats_after_the_map_is_regenerated(app, factory, people):
    admin, fan, buyer = people
    event = factory.event(rows=3, columns=4)
    order = paid_order(buyer, event, seat_ids(event, 2))
    booking.cancel_order(order)
    resize(event, 4, 4)

    admin_page = text(admin.get(f"/admin/orders/{order.reference}"))
    assert "A1" in admin_page and "A2" in admin_page and "Standard" in admin_page
    buyer_page = text(fan.get(f"/orders/{order.reference}"))
    assert "A1" in buyer_page and "A2" in buyer_page and "Standard" in buyer_page
    assert "Seats A1, A2" in text(fan.get("/my/bookings"))
    listed = text(admin.get(f"/admin/events/{event.id}/bookings"))
    assert order.reference in listed and "A1" in listed


def test_an_expired_hold_keeps_its_seats_after_the_map_is_resized(app, factory, people):
    admin, fan, buyer = people
    event = factory.event(rows=3, columns=4)
    order = booking.hold(buyer, event, seat_ids(event, 2), now=utcnow() - timedelta(minutes=30))
    resize(event, 2, 2)

    assert "Seats A1, A2" in text(fan.get("/my/bookings"))
    assert "A2" in text(fan.get(f"/orders/{order.reference}"))
    assert "A2" in text(admin.get(f"/admin/orders/{order.reference}"))


def test_a_deleted_event_stays_on_its_orders(app, factory, people):
    admin, fan, buyer = people
    event = factory.event(name="Jazz Night", rows=2, columns=2)
    order = paid_order(buyer, event, seat_ids(event, 1))
    booking.cancel_event(event)
    events.delete_event(event)

    for path in ("/admin/payments", "/admin/", f"/admin/orders/{order.reference}", "/admin/bookings"):
        page = text(admin.get(path))
        assert order.reference in page and "Jazz Night" in page, path
    mine = text(fan.get("/my/bookings"))
    assert "Jazz Night" in mine and f"{event.date:%Y}" in mine and "event cancelled" in mine
    assert "Jazz Night" in text(fan.get(f"/orders/{order.reference}"))
    detail = text(admin.get(f"/admin/orders/{order.reference}"))
    assert "deleted" in detail and "event cancelled" in detail and f"/admin/events/{event.id}" not in detail
    assert f"/admin/events/{event.id}/bookings" not in text(admin.get("/admin/bookings"))
    assert admin.get(f"/admin/events/{event.id}").status_code == 404
    assert fan.get(f"/events/{event.id}").status_code == 404


def test_history_queries_load_retired_seats_and_deleted_events(factory, db_session):
    event = factory.event(rows=2, columns=2)
    order = paid_order(factory.user(), event, seat_ids(event, 1))
    booking.cancel_event(event)
    db_session.get(Seat, order.bookings[0].seat_id).soft_delete()
    db_session.commit()
    events.delete_event(event)
    buyer_id, reference, name = order.user_id, order.reference, event.name
    db_session.expunge_all()

    (loaded,) = catalog.orders_of(db_session.get(User, buyer_id))
    assert loaded.event.name == name and loaded.bookings[0].seat.label == "A1"
    db_session.expunge_all()
    (latest,) = reports.latest_orders()
    assert latest.event is not None and latest.bookings[0].seat.price_category.name == "Standard"
    db_session.expunge_all()
    found = reports.find_order(reference)
    assert found.event.is_deleted and found.bookings[0].seat.is_deleted
    db_session.expunge_all()
    (listed,) = db_session.scalars(reports.orders_query()).unique()
    assert listed.event.name == name


def test_normal_queries_still_hide_what_history_keeps(factory, db_session):
    event = factory.event(rows=2, columns=2)
    order = paid_order(factory.user(), event, seat_ids(event, 1))
    booking.cancel_event(event)
    events.delete_event(event)
    event_id, order_id = event.id, order.id
    db_session.expunge_all()

    assert db_session.get(Event, event_id) is None
    assert db_session.scalars(sa.select(Event)).all() == []
    assert db_session.scalars(sa.select(Order.id).join(Order.event)).all() == []
    # Loading an order's event does not make the event visible to the next plain query.
    assert db_session.get(Order, order_id).event.id == event_id
    assert db_session.scalars(sa.select(Event.id)).all() == []
    assert db_session.scalar(sa.select(sa.func.count(Booking.id))) == 1


def words(response):
    """The page's text without tags, spaces collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", text(response)).split()).replace(" ,", ",")


def test_my_bookings_marks_a_cancelled_seat_and_shows_what_was_kept(app, factory, people):
    admin, fan, buyer = people
    event = factory.event(rows=1, columns=2, categories=[CategorySpec("Standard", Decimal("80.00"))])
    order = paid_order(buyer, event, seat_ids(event))
    booking.cancel_booking(order.bookings[0])

    mine = words(fan.get("/my/bookings"))
    assert "confirmed paid Seats A1 cancelled refunded, A2 · €80.00 (€160.00 paid, €80.00 refunded)" in mine
    booking.cancel_order(order)
    mine = words(fan.get("/my/bookings"))
    assert "cancelled refunded Seats A1, A2 · €0.00 (€160.00 paid, €160.00 refunded)" in mine
