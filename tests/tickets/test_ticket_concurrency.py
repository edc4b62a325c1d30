"""Tickets under real concurrency: threads with their own connections (row locks on MariaDB)."""

import sqlalchemy as sa

from app.extensions import db
from app.models import Event, Order, Ticket, User
from app.services import booking, payments
from tests.concurrency.test_concurrency import ids_of, run_together
from tests.invariants import assert_invariants


def tickets_of_order(order_id):
    db.session.expire_all()
    return db.session.scalars(sa.select(Ticket).where(Ticket.order_id == order_id)).all()


def test_eight_simultaneous_payments_issue_one_ticket_per_seat(app, factory):
    event = factory.event(rows=1, columns=3)
    buyer_id = factory.user().id
    order_id = booking.hold(db.session.get(User, buyer_id), event, ids_of(event, 3)).id

    def attempt(i):
        order = db.session.get(Order, order_id)
        buyer = db.session.get(User, buyer_id)
        return payments.pay_by_card(order, user=buyer, card_number=payments.CARD_SUCCEEDS).status

    results = run_together(app, 8, attempt)
    assert set(results) == {("ok", "confirmed")}, results
    issued = tickets_of_order(order_id)
    assert len(issued) == 3 and len({t.code for t in issued}) == 3 and not any(t.is_void for t in issued)
    assert_invariants()


def test_paying_racing_the_organiser_cancelling_leaves_no_valid_ticket(app, factory):
    event = factory.event(rows=2, columns=4)
    buyers = [factory.user().id for _ in range(4)]
    seat_ids = ids_of(event)
    orders = [
        booking.hold(db.session.get(User, buyer), event, seat_ids[2 * i : 2 * i + 2]).id
        for i, buyer in enumerate(buyers)
    ]

    def attempt(i):
        order = db.session.get(Order, orders[i // 2])
        if i % 2 == 0:
            return payments.pay_by_card(order, user=order.user, card_number=payments.CARD_SUCCEEDS).status
        return booking.cancel_order(order).status

    results = run_together(app, 8, attempt)
    assert "LEAK" not in {kind for kind, _ in results}, results
    for order_id in orders:
        assert db.session.get(Order, order_id, populate_existing=True).status == "cancelled"
        assert not [t for t in tickets_of_order(order_id) if not t.is_void]
    assert_invariants()


def test_cancelling_the_event_while_buyers_pay_voids_every_ticket(app, factory):
    event = factory.event(rows=2, columns=5)
    event_id = event.id
    buyers = [factory.user().id for _ in range(5)]
    seat_ids = ids_of(event)
    orders = [
        booking.hold(db.session.get(User, buyer), event, seat_ids[2 * i : 2 * i + 2]).id
        for i, buyer in enumerate(buyers)
    ]

    def attempt(i):
        if i == len(orders):
            return booking.cancel_event(db.session.get(Event, event_id)).orders
        order = db.session.get(Order, orders[i])
        return payments.pay_by_card(order, user=order.user, card_number=payments.CARD_SUCCEEDS).status

    results = run_together(app, len(orders) + 1, attempt)
    assert "LEAK" not in {kind for kind, _ in results}, results
    db.session.expire_all()
    every_ticket = db.session.scalars(sa.select(Ticket).where(Ticket.event_id == event_id)).all()
    assert all(t.is_void for t in every_ticket), every_ticket
    assert_invariants()
