"""Buyer-facing flows in headless Chromium: accounts, the seat map, paying, and live updates."""

import re
from decimal import Decimal

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from app.models import Order, Seat, utcnow
from app.services import booking, events, payments
from tests.support import PASSWORD

pytestmark = pytest.mark.browser


def log_in(page, email, password=PASSWORD):
    page.goto(page.base + "/auth/login")
    page.fill("#email", email)
    page.fill("#password", password)
    with page.expect_navigation():
        page.click("#submit")


def seat(page, label):
    return page.locator(f"[data-seat='{label}']")


def test_register_log_out_and_log_in(page):
    page.goto(page.base + "/")
    page.click("text=Sign up")
    page.fill("#name", "Grace Hopper")
    page.fill("#email", "grace@example.com")
    page.fill("#password", "compilers-rule")
    page.fill("#password2", "compilers-rule")
    with page.expect_navigation():
        page.click("#submit")
    expect(page.locator(".flash-success")).to_contain_text("Welcome to StagePass, Grace Hopper")
    with page.expect_navigation():
        page.click("text=Log out")
    expect(page.locator(".flash")).to_contain_text("logged out")
    log_in(page, "grace@example.com", "compilers-rule")
    expect(page.locator(".nav-user")).to_contain_text("Grace Hopper")
    assert page.errors == []


def test_demo_admin_lands_on_the_dashboard(page, runner):
    runner.invoke(args=["seed-demo"])
    log_in(page, "admin@example.com", "admin-pass-123")
    assert page.url.endswith("/admin/")
    expect(page.locator("h1")).to_contain_text("Dashboard")


def test_buyer_journey(page, factory):
    event = factory.event(name="Browser Concert", rows=3, columns=5)
    factory.user(email="buyer@example.com")
    log_in(page, "buyer@example.com")
    page.goto(page.base + "/")
    page.click("text=Browser Concert")
    seat(page, "B2").click()
    seat(page, "B3").click()
    expect(page.locator("#total")).to_have_text("€50.00")
    seat(page, "B3").click()
    expect(page.locator("#total")).to_have_text("€25.00")
    seat(page, "B3").click()
    with page.expect_navigation():
        page.click("#hold-button")
    expect(page.locator("#countdown")).to_have_text(re.compile(r"^[45]:\d\d$"))
    first = page.locator("#countdown").inner_text()
    page.wait_for_timeout(1200)
    assert page.locator("#countdown").inner_text() != first, "the countdown does not move"
    page.fill("#card_number", "4242 4242 4242 4242")
    with page.expect_navigation():
        page.click("#pay-button")
    expect(page.locator(".flash-success")).to_contain_text("Payment received")
    reference = page.locator("#order-reference").inner_text()
    expect(page.locator("main")).to_contain_text("B2")
    expect(page.locator("main")).to_contain_text("B3")
    page.click("text=My bookings")
    expect(page.locator(f"#order-{reference}")).to_contain_text("confirmed")
    page.goto(page.base + f"/events/{event.id}")
    expect(seat(page, "B2")).to_have_attribute("data-state", "booked")
    assert page.errors == []


def test_declined_card_says_why_and_frees_the_seats(page, factory, db_session):
    event = factory.event(rows=2, columns=3)
    factory.user(email="unlucky@example.com")
    log_in(page, "unlucky@example.com")
    page.goto(page.base + f"/events/{event.id}")
    seat(page, "A1").click()
    seat(page, "A2").click()
    with page.expect_navigation():
        page.click("#hold-button")
    page.fill("#card_number", payments.CARD_DECLINED)
    with page.expect_navigation():
        page.click("#pay-button")
    expect(page.locator(".flash-error")).to_contain_text("declined")
    expect(page.locator(".flash-error")).to_contain_text("released")
    expect(seat(page, "A1")).to_have_attribute("data-state", "available")
    expect(seat(page, "A2")).to_have_attribute("data-state", "available")
    assert db_session.scalar(sa.select(Order.status)) == "failed"


def test_a_hold_in_one_browser_shows_in_another_within_a_second(new_page, factory):
    event = factory.event(rows=2, columns=4)
    factory.user(email="alice@example.com")
    factory.user(email="bob@example.com")
    alice, bob = new_page(), new_page()
    log_in(alice, "alice@example.com")
    log_in(bob, "bob@example.com")
    for page in (alice, bob):
        page.goto(page.base + f"/events/{event.id}")
        expect(seat(page, "A3")).to_have_attribute("data-state", "available")
    expect(bob.locator("text=Live: seats update")).to_be_visible()
    bob.wait_for_timeout(300)  # let the stream's snapshot land

    seat(alice, "A3").click()
    with alice.expect_navigation():
        alice.click("#hold-button")
    expect(seat(bob, "A3")).to_have_attribute("data-state", "reserved", timeout=1000)

    with alice.expect_navigation():
        alice.click("text=Release seats")
    expect(seat(bob, "A3")).to_have_attribute("data-state", "available", timeout=1000)
    assert alice.errors == [] and bob.errors == []


def test_seat_taken_by_someone_else_is_named(new_page, factory):
    event = factory.event(rows=1, columns=3)
    factory.user(email="carol@example.com")
    factory.user(email="dave@example.com")
    carol, dave = new_page(), new_page()
    log_in(carol, "carol@example.com")
    log_in(dave, "dave@example.com")
    for page in (carol, dave):
        page.goto(page.base + f"/events/{event.id}")
        expect(seat(page, "A1")).to_have_attribute("data-state", "available")
    seat(dave, "A1").click()
    seat(carol, "A1").click()
    with carol.expect_navigation():
        carol.click("#hold-button")
    expect(dave.locator("#seatmap-message")).to_contain_text("A1 was just taken by someone else", timeout=2000)
    expect(dave.locator("#total")).to_have_text("€0.00")


# --- the map stays true: expiry, fallback, event changes, a Redis blip ------------------------


def seat_ids(db_session, event):
    return db_session.scalars(sa.select(Seat.id).where(Seat.event_id == event.id).order_by(Seat.id)).all()


def open_live_map(page, event):
    page.goto(page.base + f"/events/{event.id}")
    expect(page.locator("text=Live: seats update")).to_be_visible()
    page.wait_for_timeout(300)  # let the stream's snapshot land


def test_a_hold_that_runs_out_shows_free_within_a_second(app, page, factory, db_session):
    app.config["HOLD_TTL_SECONDS"] = 4
    event = factory.event(rows=1, columns=3)
    open_live_map(page, event)
    order = booking.hold(factory.user(), event, seat_ids(db_session, event)[:1])
    expect(seat(page, "A1")).to_have_attribute("data-state", "reserved", timeout=1000)
    expect(seat(page, "A1")).to_have_attribute("data-state", "available", timeout=6000)
    late = (utcnow() - order.hold_expires_at).total_seconds()
    assert late < 1.5, f"shown free {late:.2f} s after the hold ran out"
    assert page.errors == []


def test_without_push_the_map_still_follows_within_the_poll_interval(page, factory, db_session):
    event = factory.event(rows=1, columns=3)
    page.route("**/stream", lambda route: route.abort())
    page.goto(page.base + f"/events/{event.id}")
    expect(page.locator("text=Seats refresh every few seconds")).to_be_visible()
    expect(seat(page, "A1")).to_have_attribute("data-state", "available")
    booking.hold(factory.user(), event, seat_ids(db_session, event)[:1])
    expect(seat(page, "A1")).to_have_attribute("data-state", "reserved", timeout=4000)  # polls every 3 s


def test_an_open_map_follows_a_new_size_and_new_prices(page, factory, db_session):
    event = factory.event(rows=1, columns=2)
    open_live_map(page, event)
    expect(page.locator(".seatmap .seat")).to_have_count(2)
    new_size = events.EventDetails(event.name, event.date, 2, 3, [events.CategorySpec("Standard", Decimal("25.00"))])
    events.update_event(event, new_size)
    expect(page.locator(".seatmap .seat")).to_have_count(6, timeout=2000)
    seat(page, "B3").click()
    expect(page.locator("#total")).to_have_text("€25.00")
    new_price = events.EventDetails(event.name, event.date, 2, 3, [events.CategorySpec("Standard", Decimal("40.00"))])
    events.update_event(event, new_price)
    expect(page.locator("#total")).to_have_text("€40.00", timeout=2000)
    expect(seat(page, "B3")).to_have_attribute("title", re.compile("€40.00"))
    assert page.errors == []


def test_an_open_map_shows_a_cancellation_at_once(page, factory):
    event = factory.event(rows=1, columns=2)
    factory.user(email="gina@example.com")
    log_in(page, "gina@example.com")
    open_live_map(page, event)
    expect(page.locator("#sale-notice")).to_be_hidden()
    seat(page, "A1").click()
    booking.cancel_event(event)
    expect(page.locator("#sale-notice")).to_contain_text("This event has been cancelled", timeout=2000)
    expect(page.locator("#hold-button")).to_be_hidden()
    expect(seat(page, "A2")).to_be_disabled()
    expect(page.locator("#total")).to_have_text("€0.00")
    assert page.errors == []


def test_the_map_stays_true_through_a_redis_restart(page, factory, db_session, app_on_private_redis):
    """Redis dies under an open map and comes back empty: the page polls meanwhile, then is live again."""
    event = factory.event(rows=1, columns=3)
    ids = seat_ids(db_session, event)
    open_live_map(page, event)
    app_on_private_redis.stop()
    expect(page.locator("text=Seats refresh every few seconds")).to_be_visible(timeout=2000)
    booking.hold(factory.user(), event, ids[:1])
    expect(seat(page, "A1")).to_have_attribute("data-state", "reserved", timeout=4000)
    app_on_private_redis.start()
    expect(page.locator("text=Live: seats update")).to_be_visible(timeout=4000)
    booking.hold(factory.user(), event, ids[1:2])
    expect(seat(page, "A2")).to_have_attribute("data-state", "reserved", timeout=1000)
    assert page.errors == []


# --- two app servers, one truth (the two_servers fixture is in conftest.py) ----------------


def test_hold_through_one_server_is_pushed_to_a_browser_on_the_other(new_page, factory, two_servers):
    event = factory.event(rows=1, columns=4)
    factory.user(email="erin@example.com")
    factory.user(email="frank@example.com")
    server_a, server_b = two_servers
    erin, frank = new_page(server_a), new_page(server_b)
    log_in(erin, "erin@example.com")
    log_in(frank, "frank@example.com")
    for page in (erin, frank):
        page.goto(page.base + f"/events/{event.id}")
        expect(seat(page, "A2")).to_have_attribute("data-state", "available")
    expect(frank.locator("text=Live: seats update")).to_be_visible()
    frank.wait_for_timeout(300)
    seat(erin, "A2").click()
    with erin.expect_navigation():
        erin.click("#hold-button")
    expect(seat(frank, "A2")).to_have_attribute("data-state", "reserved", timeout=1000)


def test_a_hold_made_on_one_server_while_redis_was_down_reaches_a_browser_on_the_other(
    new_page, factory, db_session, app_on_private_redis, two_servers
):
    """The reported blip: a map open on server B, Redis killed, a hold through server A, Redis
    back (empty) a few seconds later. B's browser shows the hold and is live again."""
    event = factory.event(rows=1, columns=4)
    ids = seat_ids(db_session, event)
    factory.user(email="hana@example.com")
    server_a, server_b = two_servers
    hana, ivan = new_page(server_a), new_page(server_b)
    log_in(hana, "hana@example.com")
    hana.goto(hana.base + f"/events/{event.id}")
    open_live_map(ivan, event)
    app_on_private_redis.stop()
    expect(ivan.locator("text=Seats refresh every few seconds")).to_be_visible(timeout=2000)
    seat(hana, "A2").click()
    with hana.expect_navigation():
        hana.click("#hold-button")
    expect(seat(ivan, "A2")).to_have_attribute("data-state", "reserved", timeout=4000)
    app_on_private_redis.start()
    expect(ivan.locator("text=Live: seats update")).to_be_visible(timeout=5000)
    booking.hold(factory.user(), event, ids[2:3])
    expect(seat(ivan, "A3")).to_have_attribute("data-state", "reserved", timeout=1000)
