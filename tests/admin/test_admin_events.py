"""Admin events: the form's validation, seat maps and their regeneration, prices, the life cycle."""

import html
from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from app.models import Event, PriceCategory, Seat, utcnow
from app.services import booking, events
from app.services.events import CategorySpec, EventDetails
from tests.admin_support import event_form, live_seats, paid_order, post_form, seat_ids


def count(db_session, model):
    return db_session.scalar(sa.select(sa.func.count()).select_from(model).execution_options(include_deleted=True))


def only_event(db_session):
    return db_session.scalars(sa.select(Event)).one()


# --- creating --------------------------------------------------------------------------------


def test_create_event_makes_a_draft_with_its_seat_map(client, admin, db_session):
    response = client.post("/admin/events/new", data=event_form(client, rows="3", columns="4"))
    assert response.status_code == 302
    event = only_event(db_session)
    assert response.headers["Location"].endswith(f"/admin/events/{event.id}")
    assert (event.name, event.status, event.rows, event.columns) == ("Spring Gala", "draft", 3, 4)
    assert [seat.label for seat in live_seats(event)] == [f"{row}{column}" for row in "ABC" for column in range(1, 5)]
    assert {seat.status for seat in live_seats(event)} == {"available"}
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Spring Gala" in page and "Created the draft" in page


def test_largest_map_is_generated_in_one_short_transaction(client, admin, db_session, app):
    from app.extensions import db

    inserts = []

    def count_inserts(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO SEATS"):
            inserts.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", count_inserts)
    try:
        data = event_form(client, rows="20", columns="20")
        assert client.post("/admin/events/new", data=data).status_code == 302
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", count_inserts)
    seats = live_seats(only_event(db_session))
    assert len(seats) == 400
    assert seats[-1].label == "T20"
    # 400 seats in bulk: a handful of statements, not one per seat.
    assert 1 <= len(inserts) <= 5


@pytest.mark.parametrize(
    "overrides, categories, message",
    [
        ({"rows": "0"}, None, "Rows must be between 1 and 20."),
        ({"rows": "21"}, None, "Rows must be between 1 and 20."),
        ({"columns": "0"}, None, "Columns must be between 1 and 20."),
        ({"columns": "21"}, None, "Columns must be between 1 and 20."),
        ({"rows": "-3"}, None, "Rows must be between 1 and 20."),
        ({"rows": "many"}, None, "Not a valid integer value."),
        ({"name": ""}, None, "The event needs a name."),
        ({"name": "   "}, None, "The event needs a name."),
        ({"name": "x" * 201}, None, "at most 200 characters"),
        ({"date": ""}, None, "Enter the date and time."),
        ({"date": "2020-01-01T20:00"}, None, "The date must be in the future."),
        ({"date": "tomorrow"}, None, "Not a valid datetime value."),
        ({}, [("Standard", "-5", "", "")], "Prices must be between 0.00 and 10,000.00."),
        ({}, [("Standard", "10000.01", "", "")], "Prices must be between 0.00 and 10,000.00."),
        ({}, [("Standard", "12.345", "", "")], "Prices have at most two decimals."),
        ({}, [("Standard", "NaN", "", "")], "Enter a price such as 40 or 12.50."),
        ({}, [("Standard", "cheap", "", "")], "Not a valid decimal value."),
        ({}, [("Standard", "", "", "")], "Enter a price."),
        ({}, [("", "40", "", "")], "Name this category."),
        ({}, [], "An event needs at least one price."),
        ({}, [("Standard", "40", "", ""), ("Balcony", "20", "", "")], "Only one price category can cover"),
        (
            {},
            [("Premium", "80", "A", "C"), ("Balcony", "60", "C", "D"), ("Standard", "40", "", "")],
            "'Premium' (rows A-C) and 'Balcony' (rows C-D) both cover row C.",
        ),
        ({}, [("Premium", "80", "A", "Z"), ("Standard", "40", "", "")], "must be a range within rows A-E"),
        ({}, [("Premium", "80", "C", "A"), ("Standard", "40", "", "")], "must be a range within rows A-E"),
        ({}, [("Premium", "80", "1", "2"), ("Standard", "40", "", "")], "is not a row"),
        ({}, [("Premium", "80", "A", "B")], "Rows C, D, E have no price"),
        ({}, [("Premium", "80", "A", "B"), ("premium", "40", "", "")], "Two price categories are called"),
        ({}, [("Standard", "40", "", "", "blue")], "Colours are written #rrggbb"),
    ],
)
def test_bad_event_input_shows_an_error_and_saves_nothing(client, admin, db_session, overrides, categories, message):
    kwargs = {} if categories is None else {"categories": categories}
    response = client.post("/admin/events/new", data=event_form(client, **kwargs, **overrides))
    assert response.status_code == 400
    assert message in html.unescape(response.get_data(as_text=True))
    assert count(db_session, Event) == 0
    assert count(db_session, Seat) == 0
    assert count(db_session, PriceCategory) == 0


def test_max_dimensions_follow_the_config(client, admin, db_session, app):
    app.config["MAX_SEAT_ROWS"] = 26
    response = client.post("/admin/events/new", data=event_form(client, rows="26", columns="2"))
    assert response.status_code == 302
    assert live_seats(only_event(db_session))[-1].label == "Z2"


def test_price_categories_price_their_rows(client, admin, db_session):
    categories = [("Premium", "80.00", "a", "b", "#c2410c"), ("Standard", "40", "", ""), ("Back", "25.5", "E", "")]
    response = client.post("/admin/events/new", data=event_form(client, categories=categories))
    assert response.status_code == 302
    event = only_event(db_session)
    names = [(c.name, c.price, c.first_row, c.last_row, c.color) for c in event.price_categories]
    assert names == [
        ("Premium", Decimal("80.00"), 1, 2, "#c2410c"),
        ("Standard", Decimal("40.00"), None, None, "#4f7cff"),
        ("Back", Decimal("25.50"), 5, 5, "#4f7cff"),
    ]
    prices = {seat.row: seat.price_category.price for seat in live_seats(event)}
    assert prices == {
        "A": Decimal("80.00"),
        "B": Decimal("80.00"),
        "C": Decimal("40.00"),
        "D": Decimal("40.00"),
        "E": Decimal("25.50"),
    }


def test_ranges_covering_every_row_need_no_default(client, admin, db_session):
    categories = [("Front", "50", "A", "B"), ("Back", "30", "C", "E")]
    assert client.post("/admin/events/new", data=event_form(client, categories=categories)).status_code == 302
    assert {seat.price_category.name for seat in live_seats(only_event(db_session))} == {"Front", "Back"}


def test_blank_category_lines_are_ignored(client, admin, db_session):
    data = event_form(client, categories=[("", "", "", ""), ("Standard", "40", "", ""), ("", "", "", "")])
    assert client.post("/admin/events/new", data=data).status_code == 302
    assert [c.name for c in only_event(db_session).price_categories] == ["Standard"]


def test_the_form_has_a_fixed_number_of_category_lines_and_the_script(client, admin):
    page = client.get("/admin/events/new").get_data(as_text=True)
    for index in range(8):
        assert f'name="categories-{index}-name"' in page
    assert 'name="categories-8-name"' not in page
    assert 'x-data="categoryLines"' in page
    script = page.index("js/admin-event-form.js")
    assert script < page.index("alpine-csp")


# --- editing and seat maps ---------------------------------------------------------------------


def edit(client, event, **kwargs):
    path = f"/admin/events/{event.id}/edit"
    return client.post(path, data=event_form(client, **kwargs))


def test_edit_form_shows_the_event(client, admin, factory):
    event = factory.event(
        rows=4,
        categories=[
            CategorySpec("Premium", Decimal("80.00"), "#c2410c", 1, 2),
            CategorySpec("Standard", Decimal("40.00")),
        ],
    )
    page = client.get(f"/admin/events/{event.id}/edit").get_data(as_text=True)
    assert f'value="{event.name}"' in page
    assert 'name="categories-0-first_row" placeholder="A" size="3" type="text" value="A"' in page or 'value="A"' in page
    assert 'value="80.00"' in page and 'value="Standard"' in page


def test_changing_the_size_regenerates_the_seat_map(client, admin, factory, db_session):
    event = factory.event(rows=3, columns=4, status="draft")
    old_ids = set(seat_ids(event))
    response = edit(client, event, rows="2", columns="3", name="Renamed")
    assert response.status_code == 302
    db_session.expire_all()
    seats = live_seats(event)
    assert [seat.label for seat in seats] == ["A1", "A2", "A3", "B1", "B2", "B3"]
    assert not old_ids & {seat.id for seat in seats}
    retired = db_session.scalars(
        sa.select(Seat).where(Seat.id.in_(old_ids)).execution_options(include_deleted=True)
    ).all()
    assert len(retired) == 12 and all(seat.deleted_at is not None for seat in retired)
    assert (event.name, event.rows, event.columns) == ("Renamed", 2, 3)


def test_regeneration_is_refused_while_a_seat_is_held(client, admin, factory, db_session):
    event = factory.event(rows=3, columns=4)
    booking.hold(factory.user(), event, seat_ids(event, 1))
    response = edit(client, event, rows="4", name="Renamed")
    assert response.status_code == 400
    assert "cannot be regenerated while seats are held or booked (A1)" in response.get_data(as_text=True)
    db_session.expire_all()
    assert (event.rows, event.name) == (3, event.name)
    assert event.name != "Renamed"
    assert len(live_seats(event)) == 12


def test_regeneration_is_refused_while_a_seat_is_booked(client, admin, factory, db_session):
    event = factory.event(rows=3, columns=4)
    paid_order(factory.user(), event, seat_ids(event)[-2:])
    response = edit(client, event, columns="5")
    assert response.status_code == 400
    assert "(C3, C4)" in response.get_data(as_text=True)
    assert len(live_seats(event)) == 12


def test_an_expired_hold_does_not_block_regeneration(client, admin, factory, db_session):
    event = factory.event(rows=3, columns=4)
    booking.hold(factory.user(), event, seat_ids(event, 1), now=utcnow() - timedelta(minutes=10))
    assert edit(client, event, rows="2", columns="4").status_code == 302
    assert len(live_seats(event)) == 8


def test_changing_prices_of_unsold_rows_is_allowed_while_others_are_sold(client, admin, factory, db_session):
    event = factory.event(
        rows=3,
        columns=2,
        categories=[
            CategorySpec("Premium", Decimal("80.00"), "#c2410c", 1, 1),
            CategorySpec("Standard", Decimal("40.00")),
        ],
    )
    paid_order(factory.user(), event, seat_ids(event, 1))  # A1, Premium
    response = edit(
        client,
        event,
        rows="3",
        columns="2",
        categories=[("Premium", "80.00", "A", "A"), ("Standard", "45.00", "", ""), ("Back", "20", "C", "C")],
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    db_session.expire_all()
    prices = {seat.label: seat.price_category.price for seat in live_seats(event)}
    assert prices == {
        "A1": Decimal("80.00"),
        "A2": Decimal("80.00"),
        "B1": Decimal("45.00"),
        "B2": Decimal("45.00"),
        "C1": Decimal("20.00"),
        "C2": Decimal("20.00"),
    }


def test_changing_the_price_of_a_booked_seat_is_refused(client, admin, factory, db_session):
    event = factory.event(
        rows=3,
        columns=2,
        categories=[
            CategorySpec("Premium", Decimal("80.00"), "#c2410c", 1, 1),
            CategorySpec("Standard", Decimal("40.00")),
        ],
    )
    paid_order(factory.user(), event, seat_ids(event, 1))
    response = edit(client, event, rows="3", columns="2", categories=[("Standard", "40.00", "", "")])
    assert response.status_code == 400
    assert "would change seats that are held or booked (A1)" in response.get_data(as_text=True)
    db_session.expire_all()
    assert [c.name for c in event.price_categories] == ["Premium", "Standard"]
    assert live_seats(event)[0].price_category.name == "Premium"


def test_renaming_and_recolouring_a_sold_category_is_allowed(client, admin, factory, db_session):
    event = factory.event(rows=2, columns=2)
    paid_order(factory.user(), event, seat_ids(event, 1))
    response = edit(client, event, rows="2", columns="2", categories=[("Stalls", "25.00", "", "", "#123456")])
    assert response.status_code == 302
    db_session.expire_all()
    assert [(c.name, c.color) for c in event.price_categories] == [("Stalls", "#123456")]


def test_dropping_a_category_moves_its_seats_even_old_ones(client, admin, factory, db_session):
    event = factory.event(
        rows=2,
        columns=2,
        status="draft",
        categories=[
            CategorySpec("Standard", Decimal("40.00")),
            CategorySpec("Premium", Decimal("80.00"), "#c2410c", 1, 1),
        ],
    )
    assert edit(client, event, rows="3", columns="2").status_code == 302  # regenerated: old seats retired
    assert edit(client, event, rows="3", columns="2", categories=[("Standard", "40", "", "")]).status_code == 302
    db_session.expire_all()
    assert [c.name for c in event.price_categories] == ["Standard"]
    assert count(db_session, PriceCategory) == 1


def test_a_past_event_keeps_its_date_when_other_fields_change(client, admin, factory, db_session):
    event = factory.event(status="draft")
    event.date = (utcnow() - timedelta(days=1)).replace(microsecond=0)
    db_session.commit()
    path = f"/admin/events/{event.id}/edit"
    response = client.post(
        path, data=event_form(client, rows="3", columns="4", name="Late", date=event.date.strftime("%Y-%m-%dT%H:%M"))
    )
    assert response.status_code == 302
    db_session.expire_all()
    assert event.name == "Late" and event.date < utcnow()


def test_a_cancelled_event_cannot_be_edited(client, admin, factory, db_session):
    event = factory.event()
    booking.cancel_event(event)
    response = edit(client, event, name="Changed")
    assert response.status_code == 302
    db_session.expire_all()
    assert event.name != "Changed"
    with pytest.raises(events.EventNotEditable):
        events.update_event(
            event, EventDetails("X", utcnow() + timedelta(days=1), 3, 4, [CategorySpec("S", Decimal("1"))])
        )


def test_update_service_refuses_bad_input_without_saving(factory, db_session):
    event = factory.event(status="draft")
    with pytest.raises(events.InvalidRequest):
        events.update_event(event, EventDetails("", event.date, 3, 4, [CategorySpec("S", Decimal("1"))]))
    with pytest.raises(events.InvalidRequest):
        events.update_event(event, EventDetails("Name", event.date, 30, 4, [CategorySpec("S", Decimal("1"))]))
    db_session.expire_all()
    assert event.rows == 3 and len(live_seats(event)) == 12


@pytest.mark.parametrize("label, number", [("A", 1), ("z", 26), ("AA", 27), ("AZ", 52), ("BA", 53)])
def test_row_numbers_invert_row_labels(label, number):
    from app.models import row_label

    assert events.row_number(label) == number
    assert row_label(number) == label.upper()


# --- the event page ----------------------------------------------------------------------------


def test_event_page_shows_seat_states_and_occupancy(client, admin, factory):
    event = factory.event(rows=2, columns=3)
    ids = seat_ids(event)
    held = booking.hold(factory.user(), event, [ids[0]])
    sold = paid_order(factory.user(), event, ids[1:3])
    page = client.get(f"/admin/events/{event.id}").get_data(as_text=True)
    assert 'class="seat seat-reserved"' in page and 'class="seat seat-booked"' in page
    assert held.reference in page and sold.reference in page
    assert "left" in page  # the hold's time left
    assert "<strong>2</strong><span>booked</span>" in page
    assert "<strong>1</strong><span>on hold now</span>" in page
    assert "<strong>3</strong><span>available</span>" in page
    assert "33%" in page  # 2 of 6 sold


# --- life cycle --------------------------------------------------------------------------------


def test_publish_a_draft(client, admin, factory, db_session):
    event = factory.event(status="draft")
    response = post_form(client, f"/admin/events/{event.id}/publish")
    assert response.status_code == 302
    db_session.expire_all()
    assert event.status == "published"


def retire_seats(db_session, event):
    db_session.execute(sa.update(Seat).where(Seat.event_id == event.id).values(deleted_at=utcnow()))


def move_into_the_past(db_session, event):
    event.date = utcnow() - timedelta(hours=1)


@pytest.mark.parametrize("spoil, message", [(retire_seats, "no seat map"), (move_into_the_past, "date has passed")])
def test_publishing_is_refused_without_seats_or_in_the_past(client, admin, factory, db_session, spoil, message):
    event = factory.event(status="draft")
    spoil(db_session, event)
    db_session.commit()
    response = post_form(client, f"/admin/events/{event.id}/publish")
    assert message in client.get(response.headers["Location"]).get_data(as_text=True)
    db_session.expire_all()
    assert event.status == "draft"


def test_publishing_twice_is_refused(client, admin, factory, db_session):
    event = factory.event()
    response = post_form(client, f"/admin/events/{event.id}/publish")
    assert "Only a draft can be published" in client.get(response.headers["Location"]).get_data(as_text=True)


def test_publish_needs_post(client, admin, factory):
    event = factory.event(status="draft")
    assert client.get(f"/admin/events/{event.id}/publish").status_code == 405


def test_delete_asks_for_confirmation_then_soft_deletes(client, admin, factory, db_session):
    event = factory.event(status="draft")
    page = client.get(f"/admin/events/{event.id}/delete").get_data(as_text=True)
    assert "Delete the event" in page
    db_session.expire_all()
    assert event.deleted_at is None
    response = post_form(client, f"/admin/events/{event.id}/delete")
    assert response.headers["Location"].endswith("/admin/events")
    db_session.expire_all()
    stored = db_session.scalars(sa.select(Event).execution_options(include_deleted=True)).one()
    assert stored.deleted_at is not None
    assert client.get(f"/admin/events/{event.id}").status_code == 404
    assert event.name not in client.get("/admin/events").get_data(as_text=True)


def test_deleting_an_event_with_sales_is_refused(client, admin, factory, db_session):
    event = factory.event()
    paid_order(factory.user(), event, seat_ids(event, 1))
    response = post_form(client, f"/admin/events/{event.id}/delete")
    assert "cancel the event first" in client.get(response.headers["Location"]).get_data(as_text=True)
    db_session.expire_all()
    assert event.deleted_at is None


def test_a_deleted_event_is_not_on_sale(factory, db_session):
    event = factory.event()
    events.delete_event(event)
    with pytest.raises(booking.EventNotOnSale):
        booking.hold(factory.user(), event, seat_ids(event, 1) or [1])


# --- the list ----------------------------------------------------------------------------------


def test_event_list_filters_by_status_and_name(client, admin, factory, db_session):
    factory.event(name="Hamlet", status="draft")
    factory.event(name="Jazz Night")
    ended = factory.event(name="Old Jazz")
    ended.date = utcnow() - timedelta(days=1)
    factory.event(name="Cancelled 50% off", status="cancelled")
    db_session.commit()

    def names(query):
        page = client.get(f"/admin/events?{query}").get_data(as_text=True)
        return {name for name in ("Hamlet", "Jazz Night", "Old Jazz", "Cancelled 50% off") if name in page}

    assert names("") == {"Hamlet", "Jazz Night", "Old Jazz", "Cancelled 50% off"}
    assert names("status=draft") == {"Hamlet"}
    assert names("status=published") == {"Jazz Night"}
    assert names("status=ended") == {"Old Jazz"}
    assert names("status=cancelled") == {"Cancelled 50% off"}
    assert names("q=jazz") == {"Jazz Night", "Old Jazz"}
    assert names("q=50%25") == {"Cancelled 50% off"}
    assert names("q=_") == set()
    assert names("status=bogus") == names("")


def test_buyers_see_only_published_events_that_are_still_on_sale(client, factory, db_session):
    draft = factory.event(name="Secret Draft", status="draft")
    factory.event(name="On Sale Now")
    cancelled = factory.event(name="Called Off")
    booking.cancel_event(cancelled)
    page = client.get("/").get_data(as_text=True)
    assert "On Sale Now" in page and "Secret Draft" not in page and "Called Off" not in page
    events.publish_event(draft)
    assert "Secret Draft" in client.get("/").get_data(as_text=True)


def test_a_past_event_stops_selling_by_its_date_alone(factory, db_session):
    event = factory.event()
    with pytest.raises(booking.EventNotOnSale):
        booking.hold(factory.user(), event, seat_ids(event, 1), now=event.date + timedelta(seconds=1))
