"""The waiting list end to end in Chromium: a sold-out event, a hold that runs out, the offer by
email (a real SMTP server) and on the site, the purchase, and a third buyer who never sees the
seats free."""

import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from app.models import utcnow
from app.services import mail
from tests.mail.conftest import smtp_server  # noqa: F401  (a fixture, used by name)
from tests.support import PASSWORD

pytestmark = pytest.mark.browser

WATCH_FREE_SEATS = """() => {
  window.seenFree = [];
  for (const el of document.querySelectorAll("[data-seat]")) {
    new MutationObserver(() => {
      if (el.dataset.state === "available") window.seenFree.push(el.dataset.seat);
    }).observe(el, { attributes: true, attributeFilter: ["data-state"] });
  }
}"""


def log_in(page, email):
    page.goto(page.base + "/auth/login")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    with page.expect_navigation():
        page.click("#submit")


def seat(page, label):
    return page.locator(f"[data-seat='{label}']")


def test_a_freed_hold_goes_to_the_waiting_buyer_who_gets_the_email_and_buys(app, new_page, factory, smtp_server):  # noqa: F811
    app.config["HOLD_TTL_SECONDS"] = 5
    event = factory.event(name="Waitlist Night", rows=1, columns=2)
    for name in ("holder", "waiter", "third"):
        factory.user(email=f"{name}@example.com")
    holder, waiter, third = new_page(), new_page(), new_page()

    log_in(holder, "holder@example.com")
    holder.goto(holder.base + f"/events/{event.id}")
    seat(holder, "A1").click()
    seat(holder, "A2").click()
    with holder.expect_navigation():
        holder.click("#hold-button")

    log_in(third, "third@example.com")
    third.goto(third.base + f"/events/{event.id}")
    expect(seat(third, "A1")).to_have_attribute("data-state", "reserved")
    third.evaluate(WATCH_FREE_SEATS)

    log_in(waiter, "waiter@example.com")
    waiter.goto(waiter.base + f"/events/{event.id}")
    expect(waiter.locator("#waitlist-join")).to_contain_text("Join the waiting list")
    waiter.fill("#party_size", "2")
    waiter.check("#together")
    with waiter.expect_navigation():
        waiter.click("#join-waitlist")
    expect(waiter.locator("#waitlist-entry")).to_contain_text("Number 1 in line")

    waiter.wait_for_timeout(5500)  # the holder's hold runs out; no cleanup job runs
    waiter.reload()
    expect(waiter.locator("#waitlist-offer")).to_contain_text("Seats are waiting for you")

    assert mail.send_due_emails(now=utcnow() + timedelta(seconds=1)) == 1  # past the row's due time on any database
    [(recipients, message)] = smtp_server.messages
    assert recipients == ["waiter@example.com"]
    assert "Waitlist Night" in message["Subject"]
    assert "A1, A2" in message.get_body(("plain",)).get_content()

    with waiter.expect_navigation():
        waiter.click("#accept-offer")
    waiter.fill("#card_number", "4242 4242 4242 4242")
    with waiter.expect_navigation():
        waiter.click("#pay-button")
    expect(waiter.locator(".flash-success")).to_contain_text("Payment received")

    expect(seat(third, "A1")).to_have_attribute("data-state", "booked", timeout=5000)
    expect(seat(third, "A2")).to_have_attribute("data-state", "booked", timeout=5000)
    assert third.evaluate("window.seenFree") == [], "the third buyer saw the seats free"
    assert holder.errors == waiter.errors == third.errors == []


def test_the_checkout_warns_at_a_minute_and_extends_once(app, page, factory):
    app.config["HOLD_TTL_SECONDS"] = 62
    event = factory.event(rows=1, columns=2)
    factory.user(email="slow@example.com")
    log_in(page, "slow@example.com")
    page.goto(page.base + f"/events/{event.id}")
    seat(page, "A1").click()
    with page.expect_navigation():
        page.click("#hold-button")
    expect(page.locator("#hold-warning")).to_contain_text("Less than a minute left", timeout=5000)
    announcer = page.locator("#hold-announcer")
    assert announcer.get_attribute("aria-live") == "polite"
    expect(announcer).to_contain_text("Less than a minute is left on your hold")
    with page.expect_navigation():
        page.click("#extend-hold")
    expect(page.locator(".flash-success")).to_contain_text("120 more seconds")
    expect(page.locator("#countdown")).to_have_text(re.compile(r"^[23]:\d\d$"))
    expect(page.locator("#extend-hold")).to_have_count(0)
    assert page.errors == []
