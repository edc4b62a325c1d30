"""The footer's language switcher in headless Chromium: a guest picks German, then Spanish."""

import pytest

pytestmark = pytest.mark.browser


def test_a_guest_switches_the_language_in_the_footer_and_it_sticks(page, factory):
    from playwright.sync_api import expect

    factory.event(name="Hamlet")
    page.goto(page.base + "/auth/login")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("h1")).to_have_text("Log in")

    page.select_option("#language-choice", "de")
    with page.expect_navigation():
        page.click(".language-switcher button[type=submit]")
    assert page.url.endswith("/auth/login")
    expect(page.locator("html")).to_have_attribute("lang", "de")
    expect(page.locator("h1")).to_have_text("Anmelden")
    expect(page.locator(".flash")).to_contain_text("Die Seiten werden jetzt auf Deutsch angezeigt.")

    page.goto(page.base + "/")  # another page, same session: still German
    expect(page.locator("h1")).to_have_text("Kommende Veranstaltungen")
    expect(page.locator("#language-choice")).to_have_value("de")

    page.select_option("#language-choice", "es")
    with page.expect_navigation():
        page.click(".language-switcher button[type=submit]")
    expect(page.locator("html")).to_have_attribute("lang", "es")
    expect(page.locator("h1")).to_have_text("Próximos eventos")
    assert page.errors == []
