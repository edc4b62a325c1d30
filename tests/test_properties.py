"""Random sequences of everything buyers, the clock and admins can do, with the invariants checked
after every step: at most one live booking per seat; a seat is booked exactly when a confirmed
booking holds it (reserved exactly when a pending one does); money in equals money out plus refunds.
"""
from datetime import timedelta

import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from app.extensions import db
from app.models import Booking, Event, Order, OrderStatus, Seat, User, utcnow
from app.services import booking, payments
from app.services.errors import DomainError
from tests.conftest import Factory, empty_tables
from tests.invariants import assert_invariants

BUYERS = 3
CARDS = [payments.CARD_SUCCEEDS, payments.CARD_DECLINED, payments.CARD_PROVIDER_ERROR, "4111111111111111"]


class BookingMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        empty_tables()
        factory = Factory()
        self.event_id = factory.event(rows=2, columns=3).id
        self.user_ids = [factory.user().id for _ in range(BUYERS)]
        self.seat_ids = db.session.scalars(sa.select(Seat.id).where(Seat.event_id == self.event_id).order_by(Seat.id)).all()
        self.clock = utcnow()

    def user(self, index):
        return db.session.get(User, self.user_ids[index])

    def event(self):
        return db.session.get(Event, self.event_id)

    def open_order(self, index):
        return db.session.scalar(
            sa.select(Order).where(Order.user_id == self.user_ids[index], Order.status == OrderStatus.PENDING)
        )

    def attempt(self, action):
        try:
            action()
        except DomainError:
            pass  # a refusal is a legal outcome; the invariants decide whether it left a mess
        db.session.rollback()

    @rule(buyer=st.integers(0, BUYERS - 1), seats=st.lists(st.integers(0, 5), min_size=1, max_size=3, unique=True))
    def hold(self, buyer, seats):
        self.attempt(lambda: booking.hold(self.user(buyer), self.event(), [self.seat_ids[i] for i in seats], now=self.clock))

    @rule(buyer=st.integers(0, BUYERS - 1))
    def release(self, buyer):
        order = self.open_order(buyer)
        if order is not None:
            self.attempt(lambda: booking.release(order, user=self.user(buyer), now=self.clock))

    @rule(seconds=st.sampled_from([1, 30, 120, 299, 301, 600]))
    def time_passes(self, seconds):
        self.clock += timedelta(seconds=seconds)

    @rule()
    def cleanup_job(self):
        self.attempt(lambda: booking.release_expired(self.clock, batch_size=2))

    @rule(buyer=st.integers(0, BUYERS - 1), card=st.sampled_from(CARDS), twice=st.booleans())
    def pay_by_card(self, buyer, card, twice):
        order = self.open_order(buyer)
        if order is None:
            return
        for _ in range(2 if twice else 1):
            self.attempt(lambda: payments.pay_by_card(order, user=self.user(buyer), card_number=card, now=self.clock))

    @rule(buyer=st.integers(0, BUYERS - 1), approve=st.booleans())
    def pay_by_wallet(self, buyer, approve):
        order = self.open_order(buyer)
        if order is None:
            return
        self.attempt(lambda: payments.start_wallet(order, user=self.user(buyer), now=self.clock))
        self.attempt(lambda: payments.confirm_wallet(order, user=self.user(buyer), approve=approve, now=self.clock))

    @rule(buyer=st.integers(0, BUYERS - 1))
    def admin_cancels_an_order(self, buyer):
        order = db.session.scalar(
            sa.select(Order).where(Order.user_id == self.user_ids[buyer], Order.status.in_(OrderStatus.LIVE)).order_by(Order.id)
        )
        if order is not None:
            self.attempt(lambda: booking.cancel_order(order, now=self.clock))

    @rule(pick=st.integers(0, 20))
    def admin_cancels_one_seat(self, pick):
        live = db.session.scalars(sa.select(Booking).where(Booking.status.in_(OrderStatus.LIVE)).order_by(Booking.id)).all()
        if live:
            self.attempt(lambda: booking.cancel_booking(live[pick % len(live)], now=self.clock))

    @invariant()
    def invariants_hold(self):
        assert_invariants()


def test_random_sequences_keep_the_invariants(app):
    run_state_machine_as_test(
        BookingMachine,
        settings=settings(
            max_examples=30, stateful_step_count=25, deadline=None, database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
