"""Venue time zones and currencies: entering, storing, showing, exporting, and refusing bad input."""

import csv
import io
from datetime import datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa
from flask_babel import refresh

from app.models import Event, Seat
from app.services import booking, currencies, events, payments, zones
from app.services.errors import InvalidRequest
from app.templating import local_time, money
from tests.admin_support import event_form, post_form

# Europe/Berlin in 2030: clocks go forward on 31 March (02:00 -> 03:00) and back on 27 October
# (03:00 -> 02:00); America/New_York on 10 March and 3 November.
WINTER_EVENING = "2030-03-30T19:30"
SUMMER_EVENING = "2030-04-01T19:30"
SKIPPED = "2030-03-31T02:30"
REPEATED = "2030-10-27T02:30"


def only_event(db_session):
    return db_session.scalars(sa.select(Event)).one()


def count_events(db_session):
    return db_session.scalar(sa.select(sa.func.count(Event.id)))


# --- the zone rules ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "local, zone, utc",
    [
        (datetime(2030, 3, 30, 19, 30), "Europe/Berlin", datetime(2030, 3, 30, 18, 30)),
        (datetime(2030, 4, 1, 19, 30), "Europe/Berlin", datetime(2030, 4, 1, 17, 30)),
        (datetime(2030, 3, 31, 3, 0), "Europe/Berlin", datetime(2030, 3, 31, 1, 0)),
        (datetime(2030, 3, 9, 20, 0), "America/New_York", datetime(2030, 3, 10, 1, 0)),
        (datetime(2030, 3, 11, 20, 0), "America/New_York", datetime(2030, 3, 12, 0, 0)),
        (datetime(2030, 6, 1, 12, 0), "UTC", datetime(2030, 6, 1, 12, 0)),
        (datetime(2030, 6, 1, 12, 0), "Asia/Kolkata", datetime(2030, 6, 1, 6, 30)),
    ],
)
def test_wall_clock_times_become_utc_across_daylight_saving(local, zone, utc):
    assert zones.to_utc(local, zone) == utc
    assert zones.to_local(utc, zone).replace(tzinfo=None) == local


@pytest.mark.parametrize(
    "local, zone, says",
    [
        (datetime(2030, 3, 31, 2, 30), "Europe/Berlin", "does not exist in Europe/Berlin"),
        (datetime(2030, 3, 10, 2, 15), "America/New_York", "does not exist in America/New_York"),
        (datetime(2030, 10, 27, 2, 30), "Europe/Berlin", "happens twice in Europe/Berlin"),
        (datetime(2030, 11, 3, 1, 30), "America/New_York", "happens twice in America/New_York"),
        (datetime(9999, 12, 31, 23, 0), "America/New_York", "is out of range"),
        (datetime(1, 1, 1, 0, 30), "Europe/Berlin", "is out of range"),
    ],
)
def test_a_skipped_or_repeated_time_is_refused(local, zone, says):
    with pytest.raises(InvalidRequest) as refused:
        zones.to_utc(local, zone)
    assert says in refused.value.message


@pytest.mark.parametrize("name", ["", None, "Mars/Olympus", "europe/berlin", "../../etc/passwd", "CET\x00", "x" * 300])
def test_unknown_zones_are_refused(name):
    with pytest.raises(InvalidRequest):
        zones.check_timezone(name)


# --- the currency rules ------------------------------------------------------------------------


@pytest.mark.parametrize("code, expected", [("EUR", "EUR"), ("usd", "USD"), (" jpy ", "JPY"), ("GBP", "GBP")])
def test_currencies_in_use_are_accepted(code, expected):
    assert currencies.check_currency(code) == expected


@pytest.mark.parametrize("code", ["", None, "XYZ", "EURO", "DEM", "BHD", "XAU", "€", "12"])
def test_unknown_old_or_three_decimal_currencies_are_refused(code):
    with pytest.raises(InvalidRequest):
        currencies.check_currency(code)


def test_prices_have_the_minor_units_of_their_currency():
    currencies.check_price_in(Decimal("8000"), "JPY")
    currencies.check_price_in(Decimal("10.50"), "EUR")
    with pytest.raises(InvalidRequest, match="JPY prices are whole amounts"):
        currencies.check_price_in(Decimal("10.50"), "JPY")
    assert currencies.plain_amount(Decimal("8000.00"), "JPY") == "8000"
    assert currencies.plain_amount(Decimal("80"), "EUR") == "80.00"


def test_money_and_times_are_formatted_for_the_page_language(app):
    """(refresh: the test's app context outlives each request context, and Flask-Babel keeps the locale there)"""
    winter, summer = datetime(2027, 3, 14, 18, 30), datetime(2027, 7, 14, 17, 30)
    with app.test_request_context(headers={"Accept-Language": "en"}):
        refresh()
        assert money(Decimal("80"), "EUR") == "€80.00"
        assert money(Decimal("8000"), "JPY") == "¥8,000"
        assert local_time(winter, "Europe/Berlin") == "Sun 14 Mar 2027, 19:30 CET"
        assert local_time(summer, "Europe/Berlin") == "Wed 14 Jul 2027, 19:30 CEST"
        assert local_time(winter, "UTC") == "Sun 14 Mar 2027, 18:30 UTC"
        assert local_time(winter, "America/New_York") == "Sun 14 Mar 2027, 14:30 EDT"
        assert local_time(winter, "No/Such_Zone") == "Sun 14 Mar 2027, 18:30 UTC"
    with app.test_request_context(headers={"Accept-Language": "de-DE,de;q=0.9"}):
        refresh()
        assert money(Decimal("80"), "EUR") == "80,00\xa0€"
        assert local_time(winter, "Europe/Berlin") == "So., 14. März 2027, 19:30 MEZ"
    with app.test_request_context(headers={"Accept-Language": "es"}):
        refresh()
        assert money(Decimal("1234.5"), "EUR") == "1.234,50\xa0€"


# --- the admin form ----------------------------------------------------------------------------


@pytest.mark.usefixtures("admin")
def test_admin_enters_the_time_in_the_venue_zone_and_buyers_see_it_there(client, db_session, app):
    data = event_form(client, date=WINTER_EVENING, timezone="Europe/Berlin", currency="EUR")
    assert client.post("/admin/events/new", data=data).status_code == 302
    event = only_event(db_session)
    assert (event.date, event.timezone, event.currency) == (datetime(2030, 3, 30, 18, 30), "Europe/Berlin", "EUR")
    admin_page = client.get(f"/admin/events/{event.id}").get_data(as_text=True)
    assert "Sat 30 Mar 2030, 19:30 CET" in admin_page
    edit = client.get(f"/admin/events/{event.id}/edit").get_data(as_text=True)
    assert 'value="2030-03-30T19:30"' in edit and '<option selected value="Europe/Berlin">' in edit

    data = event_form(client, date=SUMMER_EVENING, timezone="Europe/Berlin", currency="EUR")
    assert client.post(f"/admin/events/{event.id}/edit", data=data).status_code == 302
    db_session.refresh(event)
    assert event.date == datetime(2030, 4, 1, 17, 30)
    events.publish_event(event)
    page = app.test_client().get(f"/events/{event.id}").get_data(as_text=True)
    assert "Mon 1 Apr 2030, 19:30 CEST" in page


@pytest.mark.usefixtures("admin")
def test_an_edit_that_keeps_the_date_keeps_it_exactly(client, db_session):
    data = event_form(client, date=WINTER_EVENING, timezone="America/New_York")
    client.post("/admin/events/new", data=data)
    event = only_event(db_session)
    assert event.date == datetime(2030, 3, 30, 23, 30)
    data = event_form(client, date=WINTER_EVENING, timezone="America/New_York", name="Renamed")
    assert client.post(f"/admin/events/{event.id}/edit", data=data).status_code == 302
    db_session.refresh(event)
    assert (event.name, event.date) == ("Renamed", datetime(2030, 3, 30, 23, 30))


@pytest.mark.usefixtures("admin")
def test_an_event_saved_in_a_repeated_hour_can_still_be_edited(client, db_session, factory):
    """02:30 on the night the clocks go back was saved as one moment; saving the form again keeps it."""
    event = factory.event(name="Late Show")
    event.timezone, event.date = "Europe/Berlin", datetime(2030, 10, 27, 0, 30)  # 02:30 CEST, the first one
    db_session.commit()
    edit = client.get(f"/admin/events/{event.id}/edit").get_data(as_text=True)
    assert 'value="2030-10-27T02:30"' in edit
    data = event_form(client, name="Later Show", date=REPEATED, timezone="Europe/Berlin", rows="3", columns="4")
    assert client.post(f"/admin/events/{event.id}/edit", data=data).status_code == 302
    db_session.refresh(event)
    assert (event.name, event.date) == ("Later Show", datetime(2030, 10, 27, 0, 30))
    data = event_form(client, date=REPEATED, timezone="Europe/Paris", rows="3", columns="4")
    response = client.post(f"/admin/events/{event.id}/edit", data=data)
    assert response.status_code == 400 and "happens twice in Europe/Paris" in response.get_data(as_text=True)


@pytest.mark.usefixtures("admin")
def test_a_new_event_takes_the_configured_zone_and_currency(client, db_session, app):
    data = event_form(client)
    del data["csrf_token"]
    app.config.update(DEFAULT_TIMEZONE="Asia/Tokyo", DEFAULT_CURRENCY="JPY")  # restored after each test
    form_page = client.get("/admin/events/new").get_data(as_text=True)
    assert '<option selected value="Asia/Tokyo">' in form_page and 'value="JPY"' in form_page
    response = post_form(client, "/admin/events/new", {**data, "categories-0-price": "5000"})
    assert response.status_code == 302
    event = only_event(db_session)
    assert (event.timezone, event.currency) == ("Asia/Tokyo", "JPY")


@pytest.mark.parametrize(
    "overrides, field_says",
    [
        ({"date": SKIPPED, "timezone": "Europe/Berlin"}, "2030-03-31 02:30 does not exist in Europe/Berlin"),
        ({"date": REPEATED, "timezone": "Europe/Berlin"}, "2030-10-27 02:30 happens twice in Europe/Berlin"),
        ({"date": "9999-12-31T23:00", "timezone": "America/New_York"}, "9999-12-31 23:00 is out of range"),
        ({"timezone": "Mars/Olympus"}, "Choose a time zone from the list"),
        ({"timezone": "<script>"}, "Choose a time zone from the list"),
        ({"currency": "XYZ"}, "Enter a currency as its ISO 4217 code"),
        ({"currency": "BHD"}, "Enter a currency as its ISO 4217 code"),
        ({"currency": "EURO"}, "Enter a currency as its ISO 4217 code"),
        ({"currency": "JPY", "categories-0-price": "10.50"}, "JPY prices are whole amounts, without decimals."),
        ({"currency": "EUR", "categories-0-price": "10.505"}, "Prices have at most two decimals."),
    ],
)
@pytest.mark.usefixtures("admin")
def test_bad_zones_dates_and_currencies_are_form_errors(client, db_session, overrides, field_says):
    response = client.post("/admin/events/new", data=event_form(client, **overrides))
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert field_says in page
    assert "Please correct the errors below." in page
    assert count_events(db_session) == 0


@pytest.mark.usefixtures("admin")
def test_jpy_prices_are_whole_and_shown_without_cents(client, db_session, factory, app):
    data = event_form(client, currency="jpy", categories=(("Standard", "8000", "", ""),))
    assert client.post("/admin/events/new", data=data).status_code == 302
    event = only_event(db_session)
    assert event.currency == "JPY"
    events.publish_event(event)
    assert "¥8,000" in app.test_client().get("/").get_data(as_text=True)
    seat_ids = db_session.scalars(sa.select(Seat.id).where(Seat.event_id == event.id).order_by(Seat.id)).all()
    buyer = factory.user(email="tokyo@example.com")
    order = booking.hold(buyer, event, seat_ids[:2])
    payments.pay_by_card(order, user=buyer, card_number=payments.CARD_SUCCEEDS)
    assert "¥16,000" in client.get(f"/admin/orders/{order.reference}").get_data(as_text=True)
    dashboard = client.get("/admin/").get_data(as_text=True)
    assert "¥16,000" in dashboard
    rows = list(
        csv.DictReader(io.StringIO(client.get(f"/admin/events/{event.id}/bookings.csv").get_data(as_text=True)))
    )
    assert [(row["amount"], row["currency"]) for row in rows] == [("8000", "JPY"), ("8000", "JPY")]


@pytest.mark.usefixtures("admin")
def test_the_dashboard_never_adds_up_two_currencies(client, factory):
    euros = factory.event(name="Euro Night")
    dollars = factory.event(name="Dollar Night")
    dollars.currency = "USD"
    from app.extensions import db

    db.session.commit()
    for event in (euros, dollars):
        buyer = factory.user()
        seat_id = db.session.scalar(sa.select(Seat.id).where(Seat.event_id == event.id).order_by(Seat.id))
        order = booking.hold(buyer, event, [seat_id])
        payments.pay_by_card(order, user=buyer, card_number=payments.CARD_SUCCEEDS)
    page = client.get("/admin/").get_data(as_text=True)
    assert "€25.00" in page and "$25.00" in page
    assert "€50.00" not in page and "$50.00" not in page


@pytest.mark.usefixtures("admin")
def test_the_currency_cannot_change_once_there_are_orders(client, db_session, factory):
    event = factory.event(name="Fixed Money")
    seat_id = db_session.scalar(sa.select(Seat.id).where(Seat.event_id == event.id).order_by(Seat.id))
    booking.hold(factory.user(), event, [seat_id])
    date = events.zones.to_local(event.date, event.timezone).strftime("%Y-%m-%dT%H:%M")
    data = event_form(
        client,
        name="Fixed Money",
        date=date,
        rows="3",
        columns="4",
        currency="USD",
        categories=(("Standard", "25.00", "", ""),),
    )
    response = client.post(f"/admin/events/{event.id}/edit", data=data)
    assert response.status_code == 400
    assert "The currency cannot change once the event has orders" in response.get_data(as_text=True)
    db_session.refresh(event)
    assert event.currency == "EUR"


def test_the_confirmation_email_uses_the_venue_clock_and_the_event_currency(factory, db_session):
    """Rendered in the buyer's language outside any request, as the mail job does."""
    from app.models import OutboxEmail
    from app.services import mail

    event = factory.event(name="Tokyo Night", categories=[events.CategorySpec("Standard", Decimal("8000"))])
    event.currency, event.timezone = "JPY", "Asia/Tokyo"
    event.date = datetime(2030, 6, 1, 10, 0)
    db_session.commit()
    buyer = factory.user(email="yen@example.com")
    seat_id = db_session.scalar(sa.select(Seat.id).where(Seat.event_id == event.id).order_by(Seat.id))
    order = booking.hold(buyer, event, [seat_id])
    payments.pay_by_card(order, user=buyer, card_number=payments.CARD_SUCCEEDS)
    row = db_session.scalars(sa.select(OutboxEmail).where(OutboxEmail.order_id == order.id)).one()
    row.language = "de"
    message = mail.build_message(row)
    text = message.body
    assert "8.000\xa0¥" in text
    assert "Sa., 1. Juni 2030, 19:00" in text
