"""The admin's main flow in headless Chromium: create an event with price lines, publish, cancel."""

from decimal import Decimal

import pytest
import sqlalchemy as sa
from rq import SimpleWorker

from app import jobs
from app.models import Event
from tests.admin_support import paid_order, seat_ids
from tests.support import PASSWORD

pytestmark = pytest.mark.browser


def log_in(page, user):
    page.goto(page.base + "/auth/login")
    page.fill("#email", user.email)
    page.fill("#password", PASSWORD)
    with page.expect_navigation():
        page.click("input[type=submit]")


def visible_lines(page):
    lines = page.locator("[data-line]")
    return [index for index in range(lines.count()) if lines.nth(index).is_visible()]


def test_admin_creates_publishes_and_cancels_an_event(page, factory, db_session, redis_client):
    from playwright.sync_api import expect

    log_in(page, factory.admin())
    page.goto(page.base + "/admin/events/new")
    expect(page.locator("[data-line='1']")).to_be_hidden()
    assert visible_lines(page) == [0]

    page.fill("#name", "Browser Gala")
    page.fill("#date", "2035-05-01T20:00")
    page.fill("#venue", "Blue Hall")
    page.fill("#rows", "4")
    page.fill("#columns", "5")
    page.fill("#categories-0-name", "Premium")
    page.fill("#categories-0-price", "80.00")
    page.fill("#categories-0-first_row", "A")
    page.fill("#categories-0-last_row", "B")
    page.click("text=Add a price category")
    expect(page.locator("[data-line='1']")).to_be_visible()
    page.fill("#categories-1-name", "Standard")
    page.fill("#categories-1-price", "40")
    page.click("text=Add a price category")
    page.fill("#categories-2-name", "Mistake")
    page.fill("#categories-2-price", "1")
    page.locator("[data-line='2'] .line-remove").click()
    expect(page.locator("[data-line='2']")).to_be_hidden()
    assert page.input_value("#categories-2-name") == ""

    with page.expect_navigation():
        page.click("#submit")
    expect(page.locator(".flash-success")).to_contain_text("Created the draft 'Browser Gala' with 20 seats.")
    event = db_session.scalars(sa.select(Event)).one()
    assert [(c.name, c.price) for c in event.price_categories] == [
        ("Premium", Decimal("80.00")),
        ("Standard", Decimal("40.00")),
    ]
    assert page.locator(".seatmap .seat").count() == 20

    with page.expect_navigation():
        page.click("button:has-text('Publish')")
    expect(page.locator(".flash-success")).to_contain_text("is published")

    paid_order(factory.user(), event, seat_ids(event, 2))
    page.reload()
    expect(page.locator(".seatmap .seat-booked")).to_have_count(2)
    page.goto(page.base + "/admin/")
    expect(page.locator("main")).to_contain_text("Browser Gala")
    expect(page.locator("main")).to_contain_text("€160.00")
    page.goto(page.base + f"/admin/events/{event.id}")

    page.click("text=Cancel event…")
    expect(page.locator("h1")).to_contain_text("Cancel “Browser Gala”?")
    with page.expect_navigation():
        page.click("button:has-text('Cancel the event and refund')")
    expect(page.locator(".flash-success")).to_contain_text("1 order(s) are being cancelled and refunded")
    expect(page.locator(".page-head .badge")).to_have_text("cancelled")
    # The page polls the run while the job works, and shows the outcome once it has finished.
    progress = page.locator("[x-data=cancellationProgress]")
    expect(progress).to_contain_text("Waiting for a worker")
    SimpleWorker([jobs.queue(redis_client)], connection=redis_client).work(burst=True)
    expect(progress).to_contain_text("Finished.")
    expect(progress).to_contain_text("1 of 1 orders done · €160.00 refunded")
    page.goto(page.base + "/admin/payments?status=refunded")
    expect(page.locator("main")).to_contain_text("Browser Gala")
    expect(page.locator("main")).to_contain_text("refunded")
    assert page.errors == []


def test_category_lines_work_without_javascript(chromium, live_server, factory, db_session):
    admin = factory.admin()
    context = chromium.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.base = live_server
        log_in(page, admin)
        page.goto(live_server + "/admin/events/new")
        assert visible_lines(page) == list(range(8))
        assert not page.locator("text=Add a price category").is_visible()
    finally:
        context.close()
