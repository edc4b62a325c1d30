"""The outbox: an email per change, written in its transaction, sent once by a job after the commit."""

import io
import threading
from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from pypdf import PdfReader

from app.extensions import db
from app.models import Booking, Order, OutboxEmail, utcnow
from app.services import booking, mail, payments, tickets
from app.services.errors import DomainError
from tests.booking.test_booking_service import seat_ids

CARD_OK = "4242 4242 4242 4242"
CARD_DECLINED = "4000 0000 0000 0002"


def paid_order(db_session, factory, seats=2, name="Ada Buyer"):
    event = factory.event(name="Hamlet")
    buyer = factory.user(name=name)
    order = booking.hold(buyer, event, seat_ids(db_session, event, seats))
    return payments.pay_by_card(order, user=buyer, card_number=CARD_OK), buyer


def outbox(db_session):
    db_session.expire_all()
    return db_session.scalars(sa.select(OutboxEmail).order_by(OutboxEmail.id)).all()


def parts(message):
    """The message's text body, HTML body and attachments."""
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    return text, html, list(message.iter_attachments())


def test_confirming_an_order_queues_one_confirmation_that_goes_out_once(db_session, factory, smtp_server):
    order, buyer = paid_order(db_session, factory)
    [row] = outbox(db_session)
    assert (row.kind, row.recipient, row.status, row.order_id) == ("order.confirmed", buyer.email, "pending", order.id)
    assert row.dedupe_key == f"order.confirmed:{order.id}"

    assert mail.send_due_emails() == 1
    assert mail.send_due_emails(ids=[row.id]) == 0  # the job run twice
    assert mail.send_due_emails() == 0  # and the sweep after it

    [(recipients, message)] = smtp_server.messages
    assert recipients == [buyer.email]
    assert message["To"] == buyer.email
    assert message["Subject"] == f"Your tickets for Hamlet (order {order.reference})"
    assert message["From"] == "StagePass <tickets@stagepass.invalid>"
    assert message["Message-ID"] == mail.message_id(row)
    text, html, attachments = parts(message)
    assert "Hello Ada Buyer," in text and order.reference in text and "A1" in text and "€50.00" in text
    assert "<strong>Hamlet</strong>" in html and "€50.00" in html
    assert "Your tickets are attached as a PDF" in text
    [attachment] = attachments
    assert attachment.get_filename() == f"tickets-{order.reference}.pdf"
    assert attachment.get_content_type() == "application/pdf"
    pdf = PdfReader(io.BytesIO(attachment.get_content()))
    assert len(pdf.pages) == 2  # a page per ticket
    codes = [ticket.code for ticket in tickets.valid_tickets_of(db_session.get(Order, order.id))]
    for code, page in zip(codes, pdf.pages, strict=True):
        assert tickets.grouped(code) in page.extract_text() and order.reference in page.extract_text()
    [sent] = outbox(db_session)
    assert (sent.status, sent.attempts, sent.last_error) == ("sent", 1, None)
    assert sent.sent_at is not None


def test_a_rolled_back_change_queues_nothing(db_session, factory):
    event = factory.event()
    buyer = factory.user()
    order = booking.hold(buyer, event, seat_ids(db_session, event, 1))
    with pytest.raises(DomainError):
        payments.pay_by_card(order, user=buyer, card_number=CARD_DECLINED)
    assert outbox(db_session) == []


def test_the_same_change_never_queues_two_emails(db_session, factory):
    order, _ = paid_order(db_session, factory)
    again = mail.enqueue_order_confirmation(order)
    db_session.commit()
    [row] = outbox(db_session)
    assert again.id == row.id


def test_smtp_down_the_order_is_confirmed_and_the_email_waits_until_the_server_is_back(
    db_session, factory, smtp_server
):
    smtp_server.stop()
    order, buyer = paid_order(db_session, factory)
    assert order.status == "confirmed"
    now = utcnow().replace(microsecond=0) + timedelta(seconds=1)  # MariaDB keeps whole seconds

    assert mail.send_due_emails(now=now) == 0
    [row] = outbox(db_session)
    assert (row.status, row.attempts) == ("pending", 1)
    assert "Connection" in row.last_error or "refused" in row.last_error
    assert row.next_attempt_at == now + timedelta(seconds=60)
    assert db_session.get(Order, order.id).status == "confirmed"

    smtp_server.start()
    assert mail.send_due_emails(now=now + timedelta(seconds=30)) == 0  # not due yet: backing off
    assert smtp_server.messages == []
    later = now + timedelta(seconds=61)
    assert mail.send_due_emails(now=later) == 1
    assert mail.send_due_emails(now=later) == 0
    assert mail.send_due_emails(now=later, ids=[row.id]) == 0
    assert [recipients for recipients, _ in smtp_server.messages] == [[buyer.email]]
    [attachment] = parts(smtp_server.messages[0][1])[2]
    assert len(PdfReader(io.BytesIO(attachment.get_content())).pages) == 2
    [sent] = outbox(db_session)
    assert (sent.status, sent.attempts, sent.last_error) == ("sent", 2, None)


def test_failed_sends_back_off_exponentially_and_give_up(app, db_session, factory):
    app.config.update(MAIL_RETRY_SECONDS=10, MAIL_RETRY_MAX_SECONDS=45, MAIL_MAX_ATTEMPTS=4)
    assert [mail.retry_delay(attempt).total_seconds() for attempt in (1, 2, 3, 4)] == [10, 20, 40, 45]
    paid_order(db_session, factory)  # MAIL_PORT 9: nothing listens
    now = utcnow().replace(microsecond=0) + timedelta(seconds=1)  # MariaDB keeps whole seconds
    waits = []
    for _ in range(4):
        mail.send_due_emails(now=now)
        [row] = outbox(db_session)
        waits.append((row.status, (row.next_attempt_at - now).total_seconds()))
        now = row.next_attempt_at
    assert waits == [("pending", 10), ("pending", 20), ("pending", 40), ("failed", 45)]
    assert mail.send_due_emails(now=now + timedelta(days=1)) == 0  # given up: an admin can resend


def test_a_claimed_email_is_left_alone_until_its_claim_lapses(app, db_session, factory, smtp_server):
    paid_order(db_session, factory)
    [row] = outbox(db_session)
    now = utcnow().replace(microsecond=0) + timedelta(seconds=1)  # MariaDB keeps whole seconds
    # A worker claimed it and died before it could say how the send went.
    assert mail._claim(row.id, now) == 1
    assert mail.send_due_emails(now=now + timedelta(seconds=60)) == 0
    assert smtp_server.messages == []
    lapsed = now + timedelta(seconds=app.config["MAIL_CLAIM_SECONDS"])
    assert mail.send_due_emails(now=lapsed) == 1
    [sent] = outbox(db_session)
    assert (sent.status, sent.attempts) == ("sent", 2)
    assert len(smtp_server.messages) == 1


def test_two_workers_sending_the_same_rows_at_once_send_each_once(app, db_session, factory, smtp_server):
    for number in range(3):
        paid_order(db_session, factory, seats=1, name=f"Buyer {number}")
    ids = [row.id for row in outbox(db_session)]
    barrier = threading.Barrier(2)
    sent, errors = [], []

    def worker():
        try:
            with app.app_context():
                barrier.wait(timeout=10)
                sent.append(mail.send_due_emails(ids=ids))
                db.session.remove()
        except Exception as error:  # reported below: a thread's exception would vanish
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert sum(sent) == 3
    assert len(smtp_server.messages) == 3
    assert {row.status for row in outbox(db_session)} == {"sent"}


def test_a_batch_of_emails_shares_one_smtp_session(db_session, factory, smtp_server):
    for number in range(3):
        paid_order(db_session, factory, seats=1, name=f"Buyer {number}")
    assert mail.send_due_emails() == 3
    assert (len(smtp_server.messages), smtp_server.inbox.sessions) == (3, 1)


def test_cancelling_a_paid_seat_emails_the_buyer_with_the_refund(db_session, factory, smtp_server):
    order, buyer = paid_order(db_session, factory, seats=2)
    target = db_session.scalars(sa.select(Booking).where(Booking.order_id == order.id).order_by(Booking.id)).first()
    booking.cancel_booking(target, reason="The stage was moved; this seat no longer exists.")
    rows = outbox(db_session)
    assert [row.kind for row in rows] == ["order.confirmed", "order.seats_cancelled"]
    assert rows[1].dedupe_key == f"order.seats_cancelled:{order.id}:{target.id}"
    assert rows[1].data["refunded"] == "25.00"

    assert mail.send_due_emails() == 2
    _, cancelled = smtp_server.messages[1]
    assert cancelled["Subject"] == f"Seats cancelled: Hamlet (order {order.reference})"
    text, html, _ = parts(cancelled)
    assert "We have refunded €25.00" in text and "We have refunded €25.00" in html
    assert "Reason: The stage was moved; this seat no longer exists." in text


def test_cancelling_the_whole_order_emails_every_seat_and_the_refund(db_session, factory, smtp_server):
    order, _ = paid_order(db_session, factory, seats=3)
    booking.cancel_order(order)
    [_, row] = outbox(db_session)
    assert row.kind == "order.seats_cancelled"
    assert [line["seat"] for line in row.data["seats"]] == ["A1", "A2", "A3"]
    assert Decimal(row.data["refunded"]) == Decimal("75.00")
    assert mail.send_due_emails() == 2
    text, _, _ = parts(smtp_server.messages[1][1])
    assert "We have refunded €75.00" in text and "Reason: Cancelled by the organiser." in text


def test_cancelling_a_pending_hold_sends_nothing(db_session, factory):
    event = factory.event()
    order = booking.hold(factory.user(), event, seat_ids(db_session, event, 2))
    booking.cancel_order(order)
    assert outbox(db_session) == []


def test_the_generic_notice_is_written_in_the_recipients_language(db_session, factory, smtp_server, monkeypatch):
    buyer = factory.user(name="Grete")
    monkeypatch.setattr(type(buyer), "language", "de", raising=False)  # when users.language exists
    from flask_babel import lazy_gettext as _l

    mail.enqueue_notice(
        buyer,
        subject=_l("Your seats are cancelled"),
        paragraphs=[_l("We are sorry.")],
        dedupe_key="test.notice:1",
    )
    db_session.commit()
    [row] = outbox(db_session)
    assert (row.kind, row.language, row.data["paragraphs"]) == ("notice", "de", ["We are sorry."])
    assert mail.send_due_emails() == 1
    [(_, message)] = smtp_server.messages
    text, html, _ = parts(message)
    assert "Grete" in text and "We are sorry." in text and "<p>We are sorry.</p>" in html
    assert 'lang="de"' in html


def test_an_email_whose_template_fails_is_retried_not_lost(db_session, factory, smtp_server):
    mail.enqueue("no.such.kind", recipient="someone@example.com", subject="Hi", dedupe_key="test.broken:1")
    db_session.commit()
    assert mail.send_due_emails() == 0
    [row] = outbox(db_session)
    assert (row.status, row.attempts) == ("pending", 1)
    assert "TemplateNotFound" in row.last_error
    assert smtp_server.messages == []


def test_health_reports_emails_overdue_or_given_up(app, db_session, factory):
    from app.services import health

    [check] = health.check_emails()
    assert (check.ok, check.detail) == (True, "0 waiting, 0 given up in the last day")
    paid_order(db_session, factory)  # MAIL_PORT 9: nothing listens
    [check] = health.check_emails()
    assert check.ok and check.detail.startswith("1 waiting (oldest due 0 min ago)")

    db_session.execute(sa.update(OutboxEmail).values(next_attempt_at=utcnow() - timedelta(minutes=20)))
    db_session.commit()
    [check] = health.check_emails()
    assert not check.ok and check.detail.startswith("1 waiting (oldest due 20 min ago)")

    app.config.update(MAIL_MAX_ATTEMPTS=1)
    mail.send_due_emails()
    [check] = health.check_emails()
    assert not check.ok
    assert check.detail.startswith("0 waiting, 1 given up in the last day: see the admin order pages")


def test_the_tickets_pdf_is_made_when_the_email_is_sent(db_session, factory, smtp_server):
    """A seat cancelled before the confirmation went out is not in its PDF; no valid ticket, no PDF."""
    order, _ = paid_order(db_session, factory, seats=2)
    first = db_session.scalars(sa.select(Booking).where(Booking.order_id == order.id).order_by(Booking.id)).first()
    booking.cancel_booking(first)
    assert mail.send_due_emails() == 2
    confirmation = next(message for _, message in smtp_server.messages if "Your tickets" in message["Subject"])
    [attachment] = parts(confirmation)[2]
    pdf = PdfReader(io.BytesIO(attachment.get_content()))
    assert len(pdf.pages) == 1 and "Row A, seat 2" in pdf.pages[0].extract_text()

    other, _ = paid_order(db_session, factory, seats=1)
    booking.cancel_order(other)
    assert mail.send_due_emails() == 2
    confirmation = next(
        message
        for _, message in smtp_server.messages[2:]
        if message["Subject"].startswith("Your tickets") and other.reference in message["Subject"]
    )
    text, _, attachments = parts(confirmation)
    assert attachments == [] and "attached" not in text


def test_db_cleanup_purges_old_sent_emails_and_keeps_the_waiting_ones(db_session, factory, smtp_server):
    from app.services import maintenance

    paid_order(db_session, factory)
    mail.send_due_emails()
    smtp_server.stop()
    paid_order(db_session, factory)
    mail.send_due_emails()
    db_session.execute(sa.update(OutboxEmail).values(updated_at=utcnow() - timedelta(days=100)))
    db_session.commit()
    assert maintenance.db_cleanup(90, dry_run=True).deleted["outbox_emails"] == 1
    assert maintenance.db_cleanup(90).deleted["outbox_emails"] == 1
    [waiting] = outbox(db_session)
    assert (waiting.status, waiting.attempts) == ("pending", 1)


def test_names_are_escaped_in_html_and_kept_to_one_line_in_the_subject(db_session, factory, smtp_server):
    buyer = factory.user(name="<b>Eve</b>")
    mail.enqueue_notice(buyer, subject="Two\nlines <i>", paragraphs=["<script>x</script>"], dedupe_key="test.escape:1")
    db_session.commit()
    assert mail.send_due_emails() == 1
    [(_, message)] = smtp_server.messages
    text, html, _ = parts(message)
    assert message["Subject"] == "Two lines <i>"
    assert "Hello <b>Eve</b>," in text and "&lt;b&gt;Eve&lt;/b&gt;" in html and "<script>" not in html
