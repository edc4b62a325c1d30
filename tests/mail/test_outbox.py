"""The outbox: an email per change, written in its transaction, sent once by a job after the commit."""

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import Booking, Order, OutboxEmail, utcnow
from app.services import booking, mail, payments
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
    text, html, _ = parts(message)
    assert "Hello Ada Buyer," in text and order.reference in text and "A1" in text and "€50.00" in text
    assert "<strong>Hamlet</strong>" in html and "€50.00" in html
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
    now = utcnow().replace(microsecond=0)  # MariaDB keeps whole seconds

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
    [sent] = outbox(db_session)
    assert (sent.status, sent.attempts, sent.last_error) == ("sent", 2, None)


def test_failed_sends_back_off_exponentially_and_give_up(app, db_session, factory):
    app.config.update(MAIL_RETRY_SECONDS=10, MAIL_RETRY_MAX_SECONDS=45, MAIL_MAX_ATTEMPTS=4)
    assert [mail.retry_delay(attempt).total_seconds() for attempt in (1, 2, 3, 4)] == [10, 20, 40, 45]
    paid_order(db_session, factory)  # MAIL_PORT 9: nothing listens
    now = utcnow().replace(microsecond=0)  # MariaDB keeps whole seconds
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
    now = utcnow().replace(microsecond=0)  # MariaDB keeps whole seconds
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


def test_cancelling_a_paid_seat_emails_the_buyer_with_the_refund(db_session, factory, smtp_server):
    order, buyer = paid_order(db_session, factory, seats=2)
    target = db_session.scalars(sa.select(Booking).where(Booking.order_id == order.id).order_by(Booking.id)).first()
    booking.cancel_booking(target)
    rows = outbox(db_session)
    assert [row.kind for row in rows] == ["order.confirmed", "order.seats_cancelled"]
    assert rows[1].dedupe_key == f"order.seats_cancelled:{order.id}:{target.id}"
    assert rows[1].data["refunded"] == "25.00"

    assert mail.send_due_emails() == 2
    _, cancelled = smtp_server.messages[1]
    assert cancelled["Subject"] == f"Seats cancelled: Hamlet (order {order.reference})"
    text, html, _ = parts(cancelled)
    assert "We have refunded €25.00" in text and "We have refunded €25.00" in html


def test_cancelling_the_whole_order_emails_every_seat_and_the_refund(db_session, factory, smtp_server):
    order, _ = paid_order(db_session, factory, seats=3)
    booking.cancel_order(order)
    [_, row] = outbox(db_session)
    assert row.kind == "order.seats_cancelled"
    assert [line["seat"] for line in row.data["seats"]] == ["A1", "A2", "A3"]
    assert Decimal(row.data["refunded"]) == Decimal("75.00")
    assert mail.send_due_emails() == 2
    text, _, _ = parts(smtp_server.messages[1][1])
    assert "We have refunded €75.00" in text


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
