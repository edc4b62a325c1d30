"""The waiting room in headless Chromium: two buyers wait, the first admitted lands on the seat
map, the other watches their place fall; a buyer waiting when the event sells out is told so and
shown the waiting list; and the on-sale countdown turns into selling."""

from datetime import timedelta

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from app.extensions import db
from app.models import Event, Seat, SeatStatus, WaitingRoomMode, utcnow
from app.services import waiting_room
from tests.browser.test_browser_flows import log_in

pytestmark = pytest.mark.browser


@pytest.fixture(autouse=True)
def fresh_room_events():
    from app.booking.waiting_room import forget_room_events

    forget_room_events()
    yield
    forget_room_events()


def test_two_buyers_in_the_room_one_admitted_the_other_moves_up(new_page, factory, app, redis_client):
    app.config["WAITING_ROOM_MIN_ACTIVE"] = 0  # nobody is let in but by the test
    event = factory.event(name="Rush Night", rows=2, columns=5)
    event.waiting_room = WaitingRoomMode.ALWAYS
    db.session.commit()
    waiting_room.forget(event.id)
    first_buyer, second_buyer, third_buyer = factory.user(), factory.user(), factory.user()
    waiting_room.join(third_buyer, event, ip="10.1.1.1")  # someone already in front of both

    first, second = new_page(), new_page()
    for page, user in ((first, first_buyer), (second, second_buyer)):
        log_in(page, user.email)
        page.goto(page.base + f"/events/{event.id}")  # the room is active: the event page sends them there
        expect(page).to_have_url(page.base + f"/events/{event.id}/waiting-room")
    expect(first.locator("#position")).to_have_text("2")
    expect(second.locator("#position")).to_have_text("3")
    expect(second.locator("#ahead")).to_have_text("2")

    waiting_room.admit(db.session.get(Event, event.id), 2)  # the one in front and the first buyer

    expect(first).to_have_url(first.base + f"/events/{event.id}", timeout=15_000)
    expect(first.locator("[data-seat='A1']")).to_be_enabled()
    expect(second.locator("#position")).to_have_text("1", timeout=15_000)
    expect(second.locator("#ahead")).to_have_text("0")
    expect(second).to_have_url(second.base + f"/events/{event.id}/waiting-room")

    first.locator("[data-seat='A1']").click()
    with first.expect_navigation():
        first.click("#hold-button")
    assert "/checkout" in first.url
    assert first.errors == [] and second.errors == []


def set_every_seat(event, status):
    db.session.execute(sa.update(Seat).where(Seat.event_id == event.id).values(status=status))
    db.session.commit()


def test_a_waiting_buyer_is_told_of_the_sell_out_and_the_queue_goes_on_when_seats_come_back(
    page, factory, app, redis_client, monkeypatch
):
    app.config["WAITING_ROOM_MIN_ACTIVE"] = 0  # nobody is let in but by the test
    # A sold-out room's pages look again only every 15-30 s (thousands wait); here every 2 s.
    monkeypatch.setattr(waiting_room, "POLL_MAX_MS", 2000)
    monkeypatch.setattr(waiting_room, "POLL_BEYOND_SEATS_MS", 2000)
    event = factory.event(name="Last Seats", rows=1, columns=4)
    event.waiting_room = WaitingRoomMode.ALWAYS
    db.session.commit()
    waiting_room.forget(event.id)
    log_in(page, factory.user().email)
    room_url = page.base + f"/events/{event.id}/waiting-room"
    page.goto(room_url)
    expect(page.locator("#position")).to_have_text("1")
    expect(page.locator("#waiting-sold-out")).to_be_hidden()

    set_every_seat(event, SeatStatus.BOOKED)
    notice = page.locator("#waiting-sold-out")
    expect(page.locator("#sold-out-final")).to_contain_text("Sold out", timeout=15_000)
    expect(page.locator("#sold-out-for-now")).to_be_hidden()
    expect(page.locator("#waiting-queued")).to_be_hidden()

    page.click("#waiting-room-waitlist")  # the event page, not sent back to the room: its waiting list
    expect(page).to_have_url(page.base + f"/events/{event.id}#waitlist-join")
    expect(page.locator("#waitlist-join")).to_be_visible()

    page.goto(room_url)  # still in the queue, still told
    expect(notice).to_be_visible()
    set_every_seat(event, SeatStatus.AVAILABLE)  # cancelled: the seats are back on sale
    expect(notice).to_be_hidden(timeout=15_000)
    expect(page.locator("#position")).to_have_text("1")
    assert page.errors == []


def test_the_countdown_turns_into_selling_without_a_reload(page, factory, redis_client):
    event = factory.event(name="Soon On Sale", rows=2, columns=5)
    event.waiting_room = WaitingRoomMode.OFF
    event.sales_start_at = utcnow().replace(microsecond=0) + timedelta(seconds=6)
    db.session.commit()
    log_in(page, factory.user().email)
    page.goto(page.base + f"/events/{event.id}")
    expect(page.locator("#sale-notice")).to_contain_text("Tickets go on sale in")
    expect(page.locator("[data-seat='A1']")).to_be_disabled()
    expect(page.locator("#hold-button")).to_be_hidden()
    expect(page.locator("[data-seat='A1']")).to_be_enabled(timeout=15_000)
    expect(page.locator("#sale-notice")).to_be_hidden()
    page.locator("[data-seat='A1']").click()
    with page.expect_navigation():
        page.click("#hold-button")
    assert "/checkout" in page.url
    assert page.errors == []
