"""Content-Security-Policy in a real browser: colours without inline styles."""

import re

from playwright.sync_api import expect

from tests.browser.test_admin_browser import log_in as log_in_browser
from tests.security.test_security import two_colour_event


def test_category_colours_show_in_chromium_without_inline_styles(page, factory):
    """The events list, the live seat map and the admin's map, coloured, with no CSP violation."""
    event = two_colour_event(factory)
    front = event.price_categories[0]
    # A seat's category colour is the bar at its foot (an inset shadow); its outline is dark for
    # contrast whatever the colour, and a taken seat is grey and crossed out.
    brick, booked_grey = "rgb(170, 51, 0)", "rgb(107, 114, 128)"
    bar = re.compile(r"rgb\(170, 51, 0\) 0px -5px 0px 0px inset")
    page.goto(page.base + "/")
    assert (
        page.locator(f".chip[data-cat='{front.id}']").evaluate(
            "chip => getComputedStyle(chip, '::before').backgroundColor"
        )
        == brick
    )
    page.goto(page.base + f"/events/{event.id}")
    expect(page.locator("[data-seat='A1']")).to_have_css("box-shadow", bar)
    expect(page.locator(".legend-swatch.seat-booked")).to_have_css("border-top-color", booked_grey)
    log_in_browser(page, factory.admin())
    page.goto(page.base + f"/admin/events/{event.id}")
    expect(page.locator("[data-seat='A1']")).to_have_css("box-shadow", bar)
    expect(page.locator(f".legend-swatch[data-cat='{front.id}']")).to_have_css("background-color", brick)
    assert page.errors == []
