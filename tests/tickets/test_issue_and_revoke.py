"""Every confirmed seat gets a ticket in the confirming unit of work; refunds and cancellations void it."""

import pytest
import sqlalchemy as sa

from app.models import Order, Ticket
from app.services import booking, payments, tickets
from tests.tickets.support import paid_order


def tickets_of(db_session, order):
    db_session.expire_all()
    return db_session.scalars(sa.select(Ticket).where(Ticket.order_id == order.id).order_by(Ticket.seat_id)).all()


def test_paying_issues_one_ticket_per_seat(db_session, factory):
    order, _, event = paid_order(db_session, factory, seats=3)
    issued = tickets_of(db_session, order)
    assert sorted(t.booking_id for t in issued) == sorted(b.id for b in order.bookings)
    assert {t.seat_id for t in issued} == {b.seat_id for b in order.bookings}
    assert {t.event_id for t in issued} == {event.id}
    assert {t.kid for t in issued} == {"test"}
    assert len({t.code for t in issued}) == 3
    assert all(tickets.is_code(t.code) and not t.is_void and t.checked_in_at is None for t in issued)
    for ticket in issued:
        assert tickets.verify_payload(tickets.payload_for(ticket)) == ("test", event.id, ticket.code)


def test_a_pending_order_has_no_tickets(db_session, factory):
    event = factory.event()
    buyer = factory.user()
    seat = db_session.scalar(sa.text("SELECT id FROM seats WHERE event_id = :e ORDER BY id"), {"e": event.id})
    order = booking.hold(buyer, event, [seat])
    assert tickets_of(db_session, order) == []
    assert tickets.issue_for_order(db_session.get(Order, order.id), order.created_at) == []


def test_a_declined_payment_issues_nothing(db_session, factory):
    event = factory.event()
    buyer = factory.user()
    seat = db_session.scalar(sa.text("SELECT id FROM seats WHERE event_id = :e ORDER BY id"), {"e": event.id})
    order = booking.hold(buyer, event, [seat])
    with pytest.raises(payments.PaymentDeclined):
        payments.pay_by_card(order, user=buyer, card_number=payments.CARD_DECLINED)
    assert tickets_of(db_session, order) == []


def test_paying_twice_keeps_the_same_tickets(db_session, factory):
    order, buyer, _ = paid_order(db_session, factory)
    first = [(t.id, t.code) for t in tickets_of(db_session, order)]
    payments.pay_by_card(db_session.get(Order, order.id), user=buyer, card_number="4242424242424242")
    assert [(t.id, t.code) for t in tickets_of(db_session, order)] == first
    locked = db_session.get(Order, order.id)
    assert tickets.issue_for_order(locked, locked.paid_at) == []


def test_a_seat_cancelled_before_paying_gets_no_ticket(db_session, factory):
    event = factory.event()
    buyer = factory.user()
    seats = db_session.scalars(sa.text("SELECT id FROM seats WHERE event_id = :e ORDER BY id"), {"e": event.id}).all()
    order = booking.hold(buyer, event, list(seats[:2]))
    booking.cancel_booking(order.bookings[0])
    paid = payments.pay_by_card(db_session.get(Order, order.id), user=buyer, card_number="4242424242424242")
    [ticket] = tickets_of(db_session, paid)
    assert ticket.seat_id == seats[1]


def test_cancelling_one_seat_voids_its_ticket_only(db_session, factory):
    order, _, _ = paid_order(db_session, factory, seats=2)
    first, second = order.bookings
    booking.cancel_booking(first, reason="Seat broken.")
    voided, kept = tickets_of(db_session, order)
    assert voided.booking_id == first.id and voided.is_void and voided.revoked_reason == "Seat broken."
    assert not kept.is_void


def test_cancelling_the_order_voids_every_ticket(db_session, factory):
    order, _, _ = paid_order(db_session, factory, seats=3)
    booking.cancel_order(order)
    voided = tickets_of(db_session, order)
    assert len(voided) == 3 and all(t.is_void for t in voided)
    assert {t.revoked_reason for t in voided} == {"Cancelled by the organiser."}


def test_cancelling_the_last_seat_voids_its_ticket(db_session, factory):
    order, _, _ = paid_order(db_session, factory, seats=2)
    booking.cancel_booking(order.bookings[0])
    booking.cancel_booking(db_session.get(Order, order.id).bookings[1])
    assert all(t.is_void for t in tickets_of(db_session, order))


def test_cancelling_the_event_voids_every_ticket_sold(db_session, factory):
    event = factory.event(rows=2, columns=4)
    first, _, _ = paid_order(db_session, factory, seats=2, event=event)
    second, _, _ = paid_order(db_session, factory, seats=1, event=event)
    booking.cancel_event(event)
    voided = tickets_of(db_session, first) + tickets_of(db_session, second)
    assert len(voided) == 3 and all(t.is_void for t in voided)
    assert {t.revoked_reason for t in voided} == {"The event was cancelled."}


def test_a_refused_refund_leaves_the_ticket_valid(db_session, factory):
    order, _, _ = paid_order(db_session, factory, seats=1, card=payments.CARD_REFUND_FAILS)
    with pytest.raises(payments.RefundFailed):
        booking.cancel_order(order)
    [ticket] = tickets_of(db_session, order)
    assert not ticket.is_void


def test_revoking_twice_keeps_the_first_reason(db_session, factory):
    order, _, _ = paid_order(db_session, factory, seats=1)
    seat = order.bookings[0]
    first = tickets.revoke(seat, "first", order.paid_at)
    db_session.commit()
    again = tickets.revoke(seat, "second", order.paid_at)
    assert again.id == first.id and again.revoked_reason == "first"


def test_typed_codes_find_their_ticket(db_session, factory):
    order, _, _ = paid_order(db_session, factory, seats=1)
    [ticket] = tickets_of(db_session, order)
    typed = tickets.grouped(ticket.code).lower().replace("-", " ")
    assert tickets.find_by_code(typed).id == ticket.id
    assert tickets.find_by_code("nonsense") is None


def test_a_wallet_payment_issues_tickets_when_approved(db_session, factory):
    event = factory.event()
    buyer = factory.user()
    seats = db_session.scalars(sa.text("SELECT id FROM seats WHERE event_id = :e ORDER BY id"), {"e": event.id}).all()
    order = booking.hold(buyer, event, list(seats[:2]))
    payments.start_wallet(order, user=buyer)
    assert tickets_of(db_session, order) == []
    payments.confirm_wallet(db_session.get(Order, order.id), user=buyer, approve=True)
    assert len(tickets_of(db_session, order)) == 2
