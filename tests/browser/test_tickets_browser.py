"""Buying in Chromium ends with tickets: QR codes on the tickets page, and a PDF that downloads."""

import io

import pypdf
import pytest
import zxingcpp
from PIL import Image
from playwright.sync_api import expect

from app.services import tickets
from tests.browser.test_browser_flows import log_in, seat
from tests.tickets.test_ticket_pages import decoded_qr_codes

pytestmark = pytest.mark.browser


def test_buy_then_see_the_qr_codes_and_download_the_pdf(page, factory, tmp_path):
    event = factory.event(name="Ticket Night", rows=3, columns=5, venue="Blue Room")
    factory.user(email="holder@example.com", name="Holder Person")
    log_in(page, "holder@example.com")
    page.goto(page.base + f"/events/{event.id}")
    seat(page, "B2").click()
    seat(page, "B3").click()
    with page.expect_navigation():
        page.click("#hold-button")
    page.fill("#card_number", "4242 4242 4242 4242")
    with page.expect_navigation():
        page.click("#pay-button")
    expect(page.locator(".flash-success")).to_contain_text("Payment received")
    reference = page.locator("#order-reference").inner_text()

    with page.expect_navigation():
        page.click("text=Show my tickets")
    qr_codes = page.locator("svg.ticket-qr")
    expect(qr_codes).to_have_count(2)
    expect(page.locator("main")).to_contain_text("Row B, seat 2")
    expect(page.locator("main")).to_contain_text("Row B, seat 3")
    # What the buyer's phone shows is a QR code a real decoder reads back to a genuine payload.
    shown = Image.open(io.BytesIO(qr_codes.first.screenshot()))
    # One QR code on the screenshot. A decoder reading every format may also report a false
    # positive of another format, or the same code twice: only the QR payloads count.
    qr_results = zxingcpp.read_barcodes(shown, formats=zxingcpp.BarcodeFormat.QRCode)
    [payload] = {result.text for result in qr_results}
    kid, event_id, code = tickets.verify_payload(payload)
    assert event_id == event.id
    expect(page.locator(f"#ticket-{code}")).to_contain_text(tickets.grouped(code))

    with page.expect_download() as download_info:
        page.click("#tickets-pdf")
    download = download_info.value
    assert download.suggested_filename == f"stagepass-{reference}.pdf"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    data = saved.read_bytes()
    pages = pypdf.PdfReader(io.BytesIO(data)).pages
    assert len(pages) == 2
    assert "Ticket Night" in pages[0].extract_text() and "Holder Person" in pages[0].extract_text()
    printed = [payload for page_codes in decoded_qr_codes(data) for payload in page_codes]
    assert len(printed) == 2 and all(tickets.verify_payload(payload)[1] == event.id for payload in printed)
    assert code in {tickets.verify_payload(payload)[2] for payload in printed}
    assert page.errors == []
