"""The buyer's ticket pages: QR codes on the page, a printable PDF whose QR decodes, 404 for others."""

import io
import re

import pypdf
import pypdfium2
import pytest
import sqlalchemy as sa
import zxingcpp

from app.models import Order, Ticket
from app.services import booking, tickets
from tests.tickets.support import paid_order


def tickets_of(db_session, order):
    db_session.expire_all()
    return db_session.scalars(sa.select(Ticket).where(Ticket.order_id == order.id).order_by(Ticket.seat_id)).all()


def pdf_pages_text(data):
    return [page.extract_text() for page in pypdf.PdfReader(io.BytesIO(data)).pages]


def decoded_qr_codes(data, dpi=150):
    """Each page of the PDF rendered at `dpi` (as a printer would), and the QR codes a real decoder reads on it."""
    document = pypdfium2.PdfDocument(data)
    try:
        return [
            [result.text for result in zxingcpp.read_barcodes(page.render(scale=dpi / 72).to_pil())]
            for page in document
        ]
    finally:
        document.close()


def test_the_tickets_page_shows_each_ticket_with_its_qr_code(client, login, db_session, factory):
    order, buyer, event = paid_order(db_session, factory, seats=2)
    login(buyer)
    response = client.get(f"/orders/{order.reference}/tickets")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert html.count("<svg") == 2 and html.count('class="ticket-qr"') == 2
    for ticket in tickets_of(db_session, order):
        assert tickets.grouped(ticket.code) in html
        assert f"Row {ticket.seat.row}, seat {ticket.seat.column}" in html
    assert "Standard" in html and "Night Show" in html and "Grand Hall" in html
    assert f'/orders/{order.reference}/tickets.pdf"' in html
    assert "no-store" in response.headers["Cache-Control"]


def test_the_inline_qr_codes_carry_no_style_attribute(client, login, db_session, factory):
    order, buyer, _ = paid_order(db_session, factory, seats=1)
    login(buyer)
    response = client.get(f"/orders/{order.reference}/tickets")
    svg = re.search(r"<svg.*?</svg>", response.get_data(as_text=True), re.S).group(0)
    assert not re.search(r"\sstyle\s*=", svg) and "<style" not in svg
    assert "style-src 'self';" in response.headers["Content-Security-Policy"]


def test_a_void_ticket_is_shown_void_without_a_qr_code(client, login, db_session, factory):
    order, buyer, _ = paid_order(db_session, factory, seats=2)
    booking.cancel_booking(order.bookings[0], reason="Seat broken.")
    voided, kept = tickets_of(db_session, order)
    login(buyer)
    html = client.get(f"/orders/{order.reference}/tickets").get_data(as_text=True)
    void_card = re.search(rf'<article[^>]*id="ticket-{voided.code}".*?</article>', html, re.S).group(0)
    kept_card = re.search(rf'<article[^>]*id="ticket-{kept.code}".*?</article>', html, re.S).group(0)
    assert "void" in void_card and "Seat broken." in void_card and "<svg" not in void_card
    assert "<svg" in kept_card


def test_a_pending_order_has_no_tickets_yet(client, login, db_session, factory):
    event = factory.event()
    buyer = factory.user()
    seat = db_session.scalar(sa.text("SELECT id FROM seats WHERE event_id = :e ORDER BY id"), {"e": event.id})
    order = booking.hold(buyer, event, [seat])
    login(buyer)
    page = client.get(f"/orders/{order.reference}/tickets")
    assert page.status_code == 200 and "once the order is paid" in page.get_data(as_text=True)
    assert "<svg" not in page.get_data(as_text=True)
    pdf = client.get(f"/orders/{order.reference}/tickets.pdf")
    assert pdf.status_code == 404 and "no valid tickets" in pdf.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/orders/{ref}/tickets", "/orders/{ref}/tickets.pdf"])
def test_another_buyers_or_a_missing_order_is_not_found(client, login, db_session, factory, path):
    order, _, _ = paid_order(db_session, factory, seats=1)
    login(factory.user())
    assert client.get(path.format(ref=order.reference)).status_code == 404
    assert client.get(path.format(ref="SP-NOSUCHREF")).status_code == 404
    assert client.get(path.format(ref="x" * 300)).status_code == 404


def test_guests_are_sent_to_log_in(client, db_session, factory):
    order, _, _ = paid_order(db_session, factory, seats=1)
    response = client.get(f"/orders/{order.reference}/tickets.pdf")
    assert response.status_code == 302 and "/auth/login" in response.headers["Location"]


def test_the_pdf_has_a_page_per_valid_ticket_with_everything_the_door_needs(client, login, db_session, factory):
    order, buyer, _ = paid_order(db_session, factory, seats=3)
    booking.cancel_booking(order.bookings[2])
    login(buyer)
    response = client.get(f"/orders/{order.reference}/tickets.pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert f"stagepass-{order.reference}.pdf" in response.headers["Content-Disposition"]
    valid = [t for t in tickets_of(db_session, order) if not t.is_void]
    texts = pdf_pages_text(response.data)
    assert len(texts) == len(valid) == 2
    for text, ticket in zip(texts, valid, strict=True):
        for expected in (
            "Night Show",
            "Grand Hall",
            f"Row {ticket.seat.row}, seat {ticket.seat.column}",
            "Standard",
            "Ada Lovelace",
            tickets.grouped(ticket.code),
            order.reference,
        ):
            assert expected in text, (expected, text)


def test_the_printed_qr_code_decodes_to_the_signed_payload(db_session, factory):
    order, _, event = paid_order(db_session, factory, seats=2)
    data = tickets.pdf_for_order(db_session.get(Order, order.id))
    decoded = decoded_qr_codes(data)
    expected = [[tickets.payload_for(ticket)] for ticket in tickets_of(db_session, order)]
    assert decoded == expected
    for [payload], ticket in zip(decoded, tickets_of(db_session, order), strict=True):
        assert tickets.verify_payload(payload) == ("test", event.id, ticket.code)


def test_the_qr_code_still_decodes_from_a_coarse_print(db_session, factory):
    order, _, _ = paid_order(db_session, factory, seats=1)
    [[payload]] = decoded_qr_codes(tickets.pdf_for_order(db_session.get(Order, order.id)), dpi=72)
    assert tickets.verify_payload(payload)


def test_the_pdf_is_made_outside_a_request_for_emails(app, db_session, factory):
    order, _, _ = paid_order(db_session, factory, seats=1)
    with app.app_context():
        data = tickets.pdf_for_order(db_session.get(Order, order.id))
    assert data.startswith(b"%PDF") and len(pdf_pages_text(data)) == 1


def test_text_beyond_western_europe_uses_the_unicode_font(app, db_session, factory):
    event = factory.event(name="Концерт — Ōkami", venue="Зал №1")
    order, _, _ = paid_order(db_session, factory, seats=1, event=event)
    [text] = pdf_pages_text(tickets.pdf_for_order(db_session.get(Order, order.id)))
    assert "Концерт — Ōkami" in text and "Зал №1" in text


def test_without_the_unicode_font_other_scripts_degrade_instead_of_failing(app, db_session, factory):
    app.config["TICKET_PDF_FONT"] = "/nonexistent/font.ttf"
    event = factory.event(name="Концерт Night")
    order, _, _ = paid_order(db_session, factory, seats=1, event=event)
    data = tickets.pdf_for_order(db_session.get(Order, order.id))
    [text] = pdf_pages_text(data)
    assert "Night" in text
    assert [len(codes) for codes in decoded_qr_codes(data)] == [1]


def test_a_cancelled_orders_pdf_is_not_found(client, login, db_session, factory):
    order, buyer, _ = paid_order(db_session, factory, seats=1)
    booking.cancel_order(order)
    login(buyer)
    assert client.get(f"/orders/{order.reference}/tickets.pdf").status_code == 404
    html = client.get(f"/orders/{order.reference}/tickets").get_data(as_text=True)
    assert "void" in html and "<svg" not in html


def test_the_order_page_and_my_bookings_link_the_tickets(client, login, db_session, factory):
    order, buyer, _ = paid_order(db_session, factory, seats=1)
    login(buyer)
    order_page = client.get(f"/orders/{order.reference}").get_data(as_text=True)
    bookings_page = client.get("/my/bookings").get_data(as_text=True)
    for html in (order_page, bookings_page):
        assert f"/orders/{order.reference}/tickets" in html
        assert f"/orders/{order.reference}/tickets.pdf" in html
