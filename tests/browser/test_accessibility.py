"""Accessibility in headless Chromium: axe-core on every page a buyer and an admin see, the seat
map by keyboard alone, and the map at 375 px wide.

axe-core is vendored under tests/browser/vendor/ (from npm, `npm pack axe-core@4.11.0`) and
evaluated in the page by the test only: no production page ever loads it.
"""

import re
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from app.extensions import db
from app.models import Seat
from app.services import booking, events, payments
from tests.support import PASSWORD

pytestmark = pytest.mark.browser

AXE = Path(__file__).parent / "vendor" / "axe-core-4.11.0.min.js"
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]


def axe_violations(page) -> list[str]:
    """The WCAG 2.2 A/AA violations axe-core finds on the page, one line each."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        # Evaluated through DevTools rather than a <script> tag: the page's CSP allows no inline script.
        page.evaluate(AXE.read_text())
    found = page.evaluate(
        """async (tags) => {
            const result = await axe.run(document, { runOnly: { type: "tag", values: tags } });
            return result.violations.map((v) => `${v.id} (${v.impact}): ${v.help} -> ` +
                v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(" | "));
        }""",
        WCAG_TAGS,
    )
    return found


def assert_accessible(page, path, settle=None):
    page.goto(page.base + path)
    page.wait_for_load_state("networkidle")
    if settle:
        settle(page)
    assert axe_violations(page) == [], f"axe-core on {path}"


def log_in(page, email, password=PASSWORD):
    page.goto(page.base + "/auth/login")
    page.fill("#email", email)
    page.fill("#password", password)
    with page.expect_navigation():
        page.click("#submit")


def map_loaded(page):
    expect(page.locator("#seatmap [role=gridcell] button").first).to_be_visible()


def two_category_event(factory, **kwargs):
    return factory.event(
        categories=[
            events.CategorySpec("Premium", Decimal("80.00"), first_row=1, last_row=1),
            events.CategorySpec("Standard", Decimal("40.00")),
        ],
        **kwargs,
    )


def seat_ids(event):
    return list(db.session.scalars(sa.select(Seat.id).where(Seat.event_id == event.id).order_by(Seat.id)))


def test_every_buyer_page_has_no_wcag_violations(page, factory):
    """Guest and buyer pages, the seat map with held, taken and chosen seats, checkout, wallet, order."""
    event = two_category_event(factory, name="Axe Concert", rows=3, columns=5)
    buyer = factory.user(email="axe@example.com")
    other = factory.user()
    sold = booking.hold(other, event, seat_ids(event)[:1])
    payments.pay_by_card(sold, user=other, card_number=payments.CARD_SUCCEEDS)
    booking.hold(factory.user(), event, seat_ids(event)[1:2])
    for path in ("/", "/auth/login", "/auth/register", "/no-such-page"):
        assert_accessible(page, path)
    assert_accessible(page, f"/events/{event.id}", map_loaded)

    log_in(page, "axe@example.com")
    assert_accessible(page, f"/events/{event.id}", map_loaded)
    page.locator("[data-seat='B2']").click()
    expect(page.locator("#total")).to_have_text("€40.00")
    assert axe_violations(page) == [], "the seat map with a seat chosen"

    held = booking.hold(buyer, event, seat_ids(event)[6:8])
    assert_accessible(page, f"/orders/{held.reference}/checkout")
    page.fill("#card_number", "4000 0000 0000 0002")
    with page.expect_navigation():
        page.click("#pay-button")
    assert axe_violations(page) == [], "a declined card's error page"

    wallet_event = two_category_event(factory, name="Wallet Show")
    by_wallet = booking.hold(buyer, wallet_event, seat_ids(wallet_event)[:1])
    payments.start_wallet(by_wallet, user=buyer)
    assert_accessible(page, f"/orders/{by_wallet.reference}/wallet")
    payments.confirm_wallet(by_wallet, user=buyer, approve=True)
    assert_accessible(page, f"/orders/{by_wallet.reference}")
    assert_accessible(page, "/my/bookings")
    assert page.errors == []


def test_every_admin_page_has_no_wcag_violations(page, factory):
    """Dashboard, lists, an event with held and sold seats, forms with errors, confirmations."""
    factory.admin(email="root@example.com")
    event = two_category_event(factory, name="Admin Axe", rows=2, columns=4)
    buyer = factory.user(email="fan@example.com")
    paid = booking.hold(buyer, event, seat_ids(event)[:2])
    payments.pay_by_card(paid, user=buyer, card_number=payments.CARD_SUCCEEDS)
    booking.hold(factory.user(), event, seat_ids(event)[4:5])
    factory.event(name="A draft", status="draft")
    log_in(page, "root@example.com")
    first_booking = paid.bookings[0].id
    for path in (
        "/admin/",
        "/admin/events",
        f"/admin/events/{event.id}",
        "/admin/events/new",
        f"/admin/events/{event.id}/edit",
        f"/admin/events/{event.id}/cancel",
        f"/admin/events/{event.id}/delete",
        "/admin/bookings",
        f"/admin/events/{event.id}/bookings",
        f"/admin/orders/{paid.reference}",
        f"/admin/orders/{paid.reference}/cancel",
        f"/admin/bookings/{first_booking}/cancel",
        "/admin/payments",
        "/admin/users",
        "/admin/users/new",
        f"/admin/users/{buyer.id}/edit",
    ):
        assert_accessible(page, path)
    page.goto(page.base + f"/admin/events/{event.id}")
    sold_seat = page.get_by_role(
        "link", name=re.compile(r"^Row A, seat 1, Premium, €80\.00, booked, A1: booked by fan@")
    )
    expect(sold_seat).to_have_count(1)
    free_seat = page.locator("[data-seat='B4']")
    expect(free_seat).to_contain_text("Row B, seat 4, Standard, €40.00, available")
    page.goto(page.base + "/admin/events/new")
    page.fill("#name", "")
    with page.expect_navigation():
        page.click("#submit")
    assert axe_violations(page) == [], "the event form showing its errors"
    assert page.errors == []


def press(page, key, count=1):
    for _ in range(count):
        page.keyboard.press(key)
    return count


def focused_name(page) -> str:
    return page.evaluate(
        "() => document.activeElement.getAttribute('aria-label') || document.activeElement.textContent.trim()"
    )


def test_keyboard_only_journey_from_the_event_list_to_a_confirmed_order(page, factory):
    """Every step by keyboard, with what a screen reader hears, in far fewer presses than 138 Tabs."""
    event = two_category_event(factory, name="Keyboard Gala", rows=3, columns=5)
    factory.user(email="keys@example.com")
    taken = booking.hold(factory.user(), event, seat_ids(event)[6:7])  # B2, on hold for someone else
    log_in(page, "keys@example.com")
    page.goto(page.base + "/")
    presses = 0

    # To the event: the skip link, then the first link in the main content.
    presses += press(page, "Tab")
    assert focused_name(page) == "Skip to content"
    presses += press(page, "Enter")
    presses += press(page, "Tab")
    assert focused_name(page) == "Keyboard Gala"
    with page.expect_navigation():
        presses += press(page, "Enter")
    map_loaded(page)

    # Into the map: the page's skip link, the map's own skip link, then one stop for all seats.
    first_seat = page.locator("[data-seat='A1']")
    presses += press(page, "Tab")
    assert focused_name(page) == "Skip to content"
    presses += press(page, "Enter")
    presses += press(page, "Tab")
    assert focused_name(page) == "Skip the seat map"
    presses += press(page, "Tab")
    assert focused_name(page) == "Row A, seat 1, Premium, €80.00, available"
    expect(first_seat).to_have_attribute("tabindex", "0")
    assert page.locator("#seatmap [tabindex='0']").count() == 1, "the map is more than one Tab stop"

    presses += press(page, "ArrowDown")  # B1
    presses += press(page, "ArrowRight")  # B2, held by someone else
    assert focused_name(page) == "Row B, seat 2, Standard, €40.00, on hold"
    presses += press(page, "Enter")  # refused, and said so
    expect(page.locator("#seatmap-announcer")).to_have_text("B2 is not free.")
    presses += press(page, "ArrowRight")  # B3
    presses += press(page, "Space")
    assert focused_name(page) == "Row B, seat 3, Standard, €40.00, your choice"
    expect(page.locator("#seatmap-announcer")).to_contain_text("B3 chosen")
    presses += press(page, "End")  # B5
    assert focused_name(page) == "Row B, seat 5, Standard, €40.00, available"
    presses += press(page, "Enter")
    presses += press(page, "Home")  # B1
    assert focused_name(page).startswith("Row B, seat 1,")
    presses += press(page, "ArrowUp")  # A1
    assert focused_name(page).startswith("Row A, seat 1,")
    expect(page.locator("#total")).to_have_text("€80.00")

    # Tab leaves the map for the hold button; its label counts the seats.
    presses += press(page, "Tab")
    assert page.evaluate("() => document.activeElement.id") == "hold-button"
    assert focused_name(page) == "Hold 2 seats"
    with page.expect_navigation():
        presses += press(page, "Enter")
    expect(page.locator("#hold-announcer")).to_contain_text("on hold", timeout=3000)

    # Checkout: skip to the content; the card is the default method; its number field, then pay.
    presses += press(page, "Tab")
    assert focused_name(page) == "Skip to content"
    presses += press(page, "Enter")
    steps = 0
    while page.evaluate("() => document.activeElement.id") != "card_number":
        steps += press(page, "Tab")
        assert steps < 10, "the card number is not reached by Tab"
    presses += steps
    page.keyboard.type("4242 4242 4242 4242")
    presses += 1  # typing the number counts as one step
    presses += press(page, "Enter")
    page.wait_for_url(re.compile(r"/orders/[A-Z0-9-]+(#main)?$"))
    expect(page.locator(".flash-success")).to_contain_text("Payment received")
    expect(page.locator("main")).to_contain_text("B3")
    expect(page.locator("main")).to_contain_text("B5")
    assert presses <= 25, f"{presses} key presses"
    print(f"\nkeyboard journey: {presses} key presses from the event list to a confirmed order")
    assert taken.status == "pending"
    assert page.errors == []


def test_the_seat_map_fits_a_phone_and_200_percent_zoom(new_page, factory):
    """At 375 px the page does not scroll sideways: the map scrolls inside its card, the summary shows."""
    event = factory.event(name="Small Screen", rows=10, columns=20)
    for width in (375, 640):  # 640 px is a 1280 px window at 200% zoom
        page = new_page()
        page.set_viewport_size({"width": width, "height": 800})
        page.goto(page.base + f"/events/{event.id}")
        map_loaded(page)
        page_width = page.evaluate("() => document.documentElement.scrollWidth")
        assert page_width <= width, f"the page scrolls sideways at {width} px ({page_width} px wide)"
        map_box = page.evaluate(
            "() => { const m = document.getElementById('seatmap'); return [m.scrollWidth, m.clientWidth]; }"
        )
        assert map_box[0] > map_box[1], "the wide map should scroll inside its card"
        last = page.locator("[data-seat='A20']")
        page.locator("[data-seat='A1']").focus()
        page.keyboard.press("End")
        expect(last).to_be_focused()
        expect(last).to_be_in_viewport()
        expect(page.locator("#hold-button")).to_be_attached()
        page.locator("#seat-summary").scroll_into_view_if_needed()
        expect(page.locator("#seat-summary h2")).to_be_in_viewport()
        assert axe_violations(page) == [], f"axe-core at {width} px"


def test_the_axe_check_does_find_violations(page):
    """The harness itself: a page made inaccessible on purpose fails it."""
    page.goto(page.base + "/auth/login")
    page.evaluate(
        "() => { document.querySelector('#email').removeAttribute('id'); "
        "const img = document.createElement('img'); img.src = '/static/none.png'; document.body.append(img); }"
    )
    found = " ".join(axe_violations(page))
    assert "image-alt" in found and "label" in found


def test_the_seat_map_formats_prices_in_the_event_currency_and_page_language(page, factory):
    """Intl.NumberFormat with the event's currency: dollars in a German page (whose seat names are
    German too), yen without decimals."""
    dollars = factory.event(name="Dollar Show", rows=1, columns=3)
    dollars.currency = "USD"
    yen = factory.event(
        name="Yen Show", rows=1, columns=3, categories=[events.CategorySpec("Standard", Decimal("8000"))]
    )
    yen.currency = "JPY"
    db.session.commit()
    page.set_extra_http_headers({"Accept-Language": "de"})
    page.goto(page.base + f"/events/{dollars.id}")
    map_loaded(page)
    expect(page.locator("html")).to_have_attribute("lang", "de")
    page.locator("[data-seat='A1']").click()
    page.locator("[data-seat='A2']").click()
    expect(page.locator("#total")).to_have_text("50,00\u00a0$")
    expect(page.locator("[data-seat='A3']")).to_have_attribute(
        "aria-label", "Reihe A, Platz 3, Standard, 25,00\u00a0$, frei"
    )
    page.set_extra_http_headers({"Accept-Language": "en"})
    page.goto(page.base + f"/events/{yen.id}")
    map_loaded(page)
    page.locator("[data-seat='A1']").click()
    expect(page.locator("#total")).to_have_text("¥8,000")
    assert page.errors == []


def test_the_checkout_says_when_the_hold_is_placed_and_about_to_end(new_page, factory, app):
    """Polite announcements: the hold placed on arrival, then once under a minute is left."""
    from datetime import timedelta

    from app.models import utcnow

    event = factory.event(name="Short Hold", rows=1, columns=3)
    buyer = factory.user(email="hurry@example.com")
    fresh = booking.hold(buyer, event, seat_ids(event)[:1])
    page = new_page()
    log_in(page, "hurry@example.com")
    page.goto(page.base + f"/orders/{fresh.reference}/checkout")
    announcer = page.locator("#hold-announcer")
    expect(announcer).to_have_attribute("aria-live", "polite")
    expect(announcer).to_have_text(re.compile(r"Your seats are on hold for [45] minutes"), timeout=3000)

    other = factory.event(name="Ending Hold", rows=1, columns=3)
    ttl = app.config["HOLD_TTL_SECONDS"]
    ending = booking.hold(buyer, other, seat_ids(other)[:1], now=utcnow() - timedelta(seconds=ttl - 30))
    page.goto(page.base + f"/orders/{ending.reference}/checkout")
    expect(announcer).to_have_text("Less than a minute is left on your hold. Pay now to keep your seats.")
    assert page.errors == []


def test_the_skip_link_jumps_past_the_map_to_the_summary(page, factory):
    event = factory.event(name="Skip It", rows=5, columns=10)
    page.goto(page.base + f"/events/{event.id}")
    map_loaded(page)
    skip = page.get_by_role("link", name="Skip the seat map")
    skip.focus()
    expect(skip).to_be_visible()
    page.keyboard.press("Enter")
    expect(page.locator("#seat-summary")).to_be_focused()
    page.keyboard.press("Shift+Tab")  # back into the map lands on its one Tab stop
    expect(page.locator("[data-seat='A1']")).to_be_focused()
    outline = page.locator("[data-seat='A1']").evaluate("seat => getComputedStyle(seat).outlineStyle")
    assert outline == "solid", "a focused seat shows a focus ring"
