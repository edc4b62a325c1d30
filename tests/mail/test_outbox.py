"""The outbox: an email per change, written with it, sent once by a job after the commit."""

import sqlalchemy as sa

from app.models import OutboxEmail
from app.services import booking, mail, payments
from tests.booking.test_booking_service import seat_ids


def paid_order(db_session, factory, seats=2):
    event = factory.event(name="Hamlet")
    buyer = factory.user(name="Ada Buyer")
    order = booking.hold(buyer, event, seat_ids(db_session, event, seats))
    return payments.pay_by_card(order, user=buyer, card_number="4242 4242 4242 4242"), buyer


def outbox(db_session):
    return db_session.scalars(sa.select(OutboxEmail).order_by(OutboxEmail.id)).all()


def test_confirming_an_order_queues_one_confirmation_sent_once(db_session, factory, smtp_server):
    order, buyer = paid_order(db_session, factory)
    [row] = outbox(db_session)
    assert (row.kind, row.recipient, row.status) == ("order.confirmed", buyer.email, "pending")
    assert mail.send_due_emails() == 1
    assert mail.send_due_emails(ids=[row.id]) == 0  # the job run twice
    [(recipients, message)] = smtp_server.messages
    assert recipients == [buyer.email]
    assert message["Subject"] == f"Your tickets for Hamlet (order {order.reference})"
    db_session.expire_all()
    assert outbox(db_session)[0].status == "sent"
