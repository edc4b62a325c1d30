"""Content-Security-Policy in a real browser: colours without inline styles."""

from playwright.sync_api import expect

from tests.browser.test_admin_browser import log_in as log_in_browser
from tests.security.test_security import two_colour_event


def test_category_colours_show_in_chromium_without_inline_styles(page, factory):
    """The events list, the live seat map and the admin's map, coloured, with no CSP violation."""
    event = two_colour_event(factory)
    front = event.price_categories[0]
    brick, booked_grey = "rgb(170, 51, 0)", "rgb(156, 163, 175)"
    page.goto(page.base + "/")
    assert (
        page.locator(f".chip[data-cat='{front.id}']").evaluate(
            "chip => getComputedStyle(chip, '::before').backgroundColor"
        )
        == brick
    )
    page.goto(page.base + f"/events/{event.id}")
    expect(page.locator("[data-seat='A1']")).to_have_css("border-top-color", brick)
    expect(page.locator(".legend-swatch.seat-booked")).to_have_css("border-top-color", booked_grey)
    log_in_browser(page, factory.admin())
    page.goto(page.base + f"/admin/events/{event.id}")
    expect(page.locator("[data-seat='A1']")).to_have_css("border-top-color", brick)
    expect(page.locator(f".legend-swatch[data-cat='{front.id}']")).to_have_css("border-top-color", brick)
    assert page.errors == []
