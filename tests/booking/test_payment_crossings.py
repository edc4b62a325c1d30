"""The crossings of the three-step card payment (record, ask the provider with no locks, apply the
answer) and of reconciliation: the answer lost, the hold expiring or the order cancelled while the
provider answers, the provider down, and the same answer applied twice."""

from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import Order, Payment, Seat, utcnow
from app.services import booking, payments
from app.services.transactions import run_unit_of_work
from tests.invariants import assert_invariants


@pytest.fixture(autouse=True)
def reconcile_at_once(app, monkeypatch):
    """Reconciliation asks about every attempt, however young (the grace is for real flights)."""
    monkeypatch.setitem(app.config, "PAYMENT_RECONCILE_AFTER_SECONDS", 0)


def seat_ids(event, count):
    return db.session.scalars(sa.select(Seat.id).where(Seat.event_id == event.id).order_by(Seat.id)).all()[:count]


def rows(order_id):
    """(kind, result) of the order's payment rows, and the order, read fresh."""
    db.session.expire_all()
    order = db.session.get(Order, order_id)
    ledger = db.session.scalars(sa.select(Payment).where(Payment.order_id == order_id).order_by(Payment.id)).all()
    return order, sorted((p.kind, p.result) for p in ledger)


def seat_states(ids):
    return db.session.scalars(sa.select(Seat.status).where(Seat.id.in_(ids)).order_by(Seat.id)).all()


def during_the_charge(provider, monkeypatch, meanwhile):
    """Make the provider run `meanwhile()` while it is answering a charge (before it answers).

    It runs in this thread, on this session: that it can hold seats and cancel orders at all
    proves the payment holds no transaction and no lock while the provider answers.
    """
    answer = provider.charge

    def charge(card_number, amount, *, idempotency_key):
        meanwhile()
        return answer(card_number, amount, idempotency_key=idempotency_key)

    monkeypatch.setattr(provider, "charge", charge)


def test_the_provider_is_asked_with_no_transaction_open(factory, sandbox_provider, monkeypatch):
    event = factory.event(rows=1, columns=2)
    buyer = factory.user()
    order = booking.hold(buyer, event, seat_ids(event, 1))
    seen = []
    during_the_charge(sandbox_provider, monkeypatch, lambda: seen.append(db.session().in_transaction()))
    assert payments.pay_by_card(order, user=buyer, card_number=payments.CARD_SUCCEEDS).status == "confirmed"
    assert seen == [False]


def test_answer_lost_then_reconciled_while_the_seats_are_still_held_confirms(factory, sandbox_provider):
    event = factory.event(rows=1, columns=2)
    buyer = factory.user()
    ids = seat_ids(event, 2)
    order = booking.hold(buyer, event, ids)
    with pytest.raises(payments.PaymentNotAnswered):
        payments.pay_by_card(order, user=buyer, card_number=payments.CARD_PROVIDER_TIMEOUT)
    summary = payments.reconcile()
    assert (summary.asked, summary.confirmed, summary.refunded) == (1, 1, 0)
    paid, ledger = rows(order.id)
    [moved] = sandbox_provider.charges
    assert (paid.status, paid.provider_reference, ledger) == ("confirmed", moved.reference, [("charge", "succeeded")])
    assert seat_states(ids) == ["booked", "booked"]
    assert payments.reconcile().asked == 0  # settled: nothing left to ask about
    assert_invariants()


def test_answer_lost_and_the_hold_ran_out_is_refunded_automatically(factory, sandbox_provider, monkeypatch):
    told = []
    monkeypatch.setattr(payments, "notify_buyer_of_automatic_refund", lambda order, now: told.append(order.reference))
    event = factory.event(rows=1, columns=1)
    buyer = factory.user()
    order = booking.hold(buyer, event, seat_ids(event, 1), now=utcnow() - timedelta(minutes=10))
    with pytest.raises(payments.PaymentNotAnswered):
        payments.pay_by_card(
            order, user=buyer, card_number=payments.CARD_PROVIDER_TIMEOUT, now=utcnow() - timedelta(minutes=9)
        )
    assert booking.release_expired() == 1
    summary = payments.reconcile()
    assert (summary.asked, summary.confirmed, summary.refunded) == (1, 0, 1)
    closed, ledger = rows(order.id)
    assert (closed.status, closed.payment_status, closed.refunded_amount) == ("expired", "refunded", Decimal("25.00"))
    assert ledger == [("charge", "succeeded"), ("refund", "succeeded")]
    assert len(sandbox_provider.charges) == len(sandbox_provider.refunds) == 1
    assert "refunded in full automatically" in payments.payment_summary(closed)
    assert told == [order.reference]
    assert payments.reconcile().refunded == 0  # run again: nothing more is refunded
    assert len(sandbox_provider.refunds) == 1
    assert_invariants()


def test_hold_expired_and_seat_taken_during_the_call_refunds(factory, sandbox_provider, monkeypatch):
    event = factory.event(rows=1, columns=1)
    buyer, rival = factory.user(), factory.user()
    ids = seat_ids(event, 1)
    order = booking.hold(buyer, event, ids)
    later = utcnow() + timedelta(seconds=301)
    during_the_charge(sandbox_provider, monkeypatch, lambda: booking.hold(rival, event, ids, now=later))
    with pytest.raises(payments.ChargeRefunded, match="refunded in full"):
        payments.pay_by_card(order, user=buyer, card_number=payments.CARD_SUCCEEDS)
    closed, ledger = rows(order.id)
    assert (closed.status, closed.payment_status) == ("expired", "refunded")
    assert ledger == [("charge", "succeeded"), ("refund", "succeeded")]
    rivals = db.session.scalar(sa.select(Order).where(Order.user_id == rival.id))
    assert rivals.status == "pending" and seat_states(ids) == ["reserved"]
    assert_invariants()


def test_hold_expired_during_the_call_but_seats_untaken_confirms(factory, sandbox_provider, monkeypatch):
    """Nobody took the seats when the hold ran out mid-call: the buyer who paid gets them."""
    event = factory.event(rows=1, columns=2)
    buyer = factory.user()
    ids = seat_ids(event, 2)
    order = booking.hold(buyer, event, ids)
    later = utcnow() + timedelta(seconds=301)
    # The clock jumps past the hold while the provider answers: the answer is applied at `later`.
    during_the_charge(sandbox_provider, monkeypatch, lambda: monkeypatch.setattr(payments, "utcnow", lambda: later))
    paid = payments.pay_by_card(order, user=buyer, card_number=payments.CARD_SUCCEEDS)
    assert paid.status == "confirmed" and paid.paid_at > paid.hold_expires_at  # MariaDB keeps whole seconds
    assert later - paid.paid_at < timedelta(seconds=1)
    assert seat_states(ids) == ["booked", "booked"]
    assert_invariants()


def test_expiry_cleanup_during_the_call_refunds(factory, sandbox_provider, monkeypatch):
    event = factory.event(rows=1, columns=2)
    buyer = factory.user()
    ids = seat_ids(event, 2)
    order = booking.hold(buyer, event, ids)
    later = utcnow() + timedelta(seconds=301)
    during_the_charge(sandbox_provider, monkeypatch, lambda: booking.release_expired(later))
    with pytest.raises(payments.ChargeRefunded):
        payments.pay_by_card(order, user=buyer, card_number=payments.CARD_SUCCEEDS)
    closed, ledger = rows(order.id)
    assert (closed.status, closed.payment_status, closed.refunded_amount) == ("expired", "refunded", Decimal("50.00"))
    assert seat_states(ids) == ["available", "available"]
    assert_invariants()


def test_order_cancelled_during_the_call_refunds(factory, sandbox_provider, monkeypatch):
    event = factory.event(rows=1, columns=2)
    buyer = factory.user()
    ids = seat_ids(event, 2)
    order = booking.hold(buyer, event, ids)
    during_the_charge(sandbox_provider, monkeypatch, lambda: booking.cancel_order(db.session.get(Order, order.id)))
    with pytest.raises(payments.ChargeRefunded):
        payments.pay_by_card(order, user=buyer, card_number=payments.CARD_SUCCEEDS)
    closed, ledger = rows(order.id)
    assert (closed.status, closed.payment_status) == ("cancelled", "refunded")
    assert ledger == [("charge", "succeeded"), ("refund", "succeeded")]
    assert seat_states(ids) == ["available", "available"]
    assert_invariants()


def test_order_cancelled_during_a_declined_call_charges_nothing(factory, sandbox_provider, monkeypatch):
    event = factory.event(rows=1, columns=1)
    buyer = factory.user()
    order = booking.hold(buyer, event, seat_ids(event, 1))
    during_the_charge(sandbox_provider, monkeypatch, lambda: booking.cancel_order(db.session.get(Order, order.id)))
    with pytest.raises(payments.PaymentDeclined):
        payments.pay_by_card(order, user=buyer, card_number=payments.CARD_DECLINED)
    closed, ledger = rows(order.id)
    assert (closed.status, ledger) == ("cancelled", [("charge", "declined")])
    assert sandbox_provider.charges == [] and sandbox_provider.refunds == []
    assert_invariants()


def test_provider_down_keeps_the_seats_and_reconciliation_waits_for_it(factory, sandbox_provider):
    event = factory.event(rows=1, columns=1)
    buyer = factory.user()
    ids = seat_ids(event, 1)
    order = booking.hold(buyer, event, ids)
    sandbox_provider.reachable = False
    with pytest.raises(payments.PaymentNotAnswered):
        payments.pay_by_card(order, user=buyer, card_number=payments.CARD_SUCCEEDS)
    assert seat_states(ids) == ["reserved"]
    summary = payments.reconcile()
    assert (summary.asked, summary.still_unanswered) == (1, 1)
    sandbox_provider.reachable = True
    # The charge never reached the provider; the hold still runs, so the buyer may pay again.
    assert payments.reconcile().never_reached == 0
    paid = payments.pay_by_card(db.session.get(Order, order.id), user=buyer, card_number=payments.CARD_SUCCEEDS)
    assert paid.status == "confirmed" and len(sandbox_provider.charges) == 1
    assert_invariants()


def test_provider_down_until_the_hold_ran_out_settles_as_never_charged(factory, sandbox_provider):
    event = factory.event(rows=1, columns=1)
    buyer = factory.user()
    ids = seat_ids(event, 1)
    order = booking.hold(buyer, event, ids, now=utcnow() - timedelta(minutes=10))
    sandbox_provider.reachable = False
    with pytest.raises(payments.PaymentNotAnswered):
        payments.pay_by_card(order, user=buyer, card_number=payments.CARD_SUCCEEDS, now=utcnow() - timedelta(minutes=9))
    sandbox_provider.reachable = True
    summary = payments.reconcile()
    assert (summary.asked, summary.never_reached, summary.refunded) == (1, 1, 0)
    closed, ledger = rows(order.id)
    assert (closed.status, ledger) == ("expired", [("charge", "error")])
    assert payments.payment_summary(closed) == "The payment never reached the provider; nothing was charged."
    assert seat_states(ids) == ["available"]
    assert_invariants()


def test_a_process_that_died_between_recording_and_asking_is_reconciled(factory, sandbox_provider):
    """Step 1 committed, then the process died: the attempt waits (pending) until reconciliation."""
    event = factory.event(rows=1, columns=1)
    buyer = factory.user()
    order = booking.hold(buyer, event, seat_ids(event, 1))
    order_id = order.id
    attempt = run_unit_of_work(lambda: payments._record_card_attempt(order_id, buyer, None, payments.CARD_SUCCEEDS))
    assert payments.is_unanswered(db.session.get(Payment, attempt.payment_id))
    assert payments.reconcile().never_reached == 0  # hold running: left for the buyer
    paid = payments.pay_by_card(db.session.get(Order, order_id), user=buyer, card_number=payments.CARD_SUCCEEDS)
    assert paid.status == "confirmed" and db.session.get(Payment, attempt.payment_id).attempt == 1
    assert_invariants()


def test_the_same_answer_applied_twice_changes_nothing(factory, sandbox_provider):
    event = factory.event(rows=1, columns=2)
    buyer = factory.user()
    order = booking.hold(buyer, event, seat_ids(event, 2))
    order_id = order.id
    attempt = run_unit_of_work(lambda: payments._record_card_attempt(order_id, buyer, None, payments.CARD_SUCCEEDS))
    answer = sandbox_provider.charge(payments.CARD_SUCCEEDS, attempt.amount, idempotency_key=attempt.idempotency_key)
    first = payments._apply_charge_answer(attempt.payment_id, answer, None)
    before = rows(order_id)
    second = payments._apply_charge_answer(attempt.payment_id, answer, None)
    assert (first[1], second[1]) == ("paid", "settled")
    assert rows(order_id)[1] == before[1] == [("charge", "succeeded")]
    assert payments.reconcile().asked == 0 and payments.refund_closed_order(order_id) is False
    assert len(sandbox_provider.charges) == 1 and sandbox_provider.refunds == []
    assert_invariants()


def test_a_refused_automatic_refund_is_retried_by_reconciliation(factory, sandbox_provider, monkeypatch):
    event = factory.event(rows=1, columns=1)
    buyer = factory.user()
    order = booking.hold(buyer, event, seat_ids(event, 1))
    working_refund = sandbox_provider.refund
    monkeypatch.setattr(sandbox_provider, "refund", lambda *args, **kwargs: (_ for _ in ()).throw(TimeoutError()))
    during_the_charge(sandbox_provider, monkeypatch, lambda: booking.cancel_order(db.session.get(Order, order.id)))
    with pytest.raises(payments.ChargeRefunded):
        payments.pay_by_card(order, user=buyer, card_number=payments.CARD_SUCCEEDS)
    due, _ledger = rows(order.id)
    assert (due.status, due.payment_status) == ("cancelled", "paid")
    assert "being refunded" in payments.payment_summary(due)
    monkeypatch.setattr(sandbox_provider, "refund", working_refund)
    assert payments.reconcile().refunded == 1
    refunded, ledger = rows(order.id)
    assert refunded.payment_status == "refunded" and ledger == [("charge", "succeeded"), ("refund", "succeeded")]
    assert_invariants()


def test_reconcile_command(runner, factory, sandbox_provider):
    event = factory.event(rows=1, columns=1)
    buyer = factory.user()
    order = booking.hold(buyer, event, seat_ids(event, 1))
    with pytest.raises(payments.PaymentNotAnswered):
        payments.pay_by_card(order, user=buyer, card_number=payments.CARD_PROVIDER_TIMEOUT)
    result = runner.invoke(args=["payments", "reconcile"])
    assert result.exit_code == 0, result.output
    assert "asked the provider about 1 attempt(s): 1 confirmed" in result.output
    assert rows(order.id)[0].status == "confirmed"


def test_young_attempts_are_left_to_the_payment_in_flight(app, factory, sandbox_provider, monkeypatch):
    monkeypatch.setitem(app.config, "PAYMENT_RECONCILE_AFTER_SECONDS", 120)
    event = factory.event(rows=1, columns=1)
    buyer = factory.user()
    order = booking.hold(buyer, event, seat_ids(event, 1))
    with pytest.raises(payments.PaymentNotAnswered):
        payments.pay_by_card(order, user=buyer, card_number=payments.CARD_PROVIDER_TIMEOUT)
    assert payments.reconcile().asked == 0
    assert payments.reconcile(now=utcnow() + timedelta(seconds=121)).confirmed == 1


def audit_actions(order_id):
    from app.models import AuditEntry

    return db.session.scalars(
        sa.select(AuditEntry.action)
        .where(AuditEntry.subject_type == "order", AuditEntry.subject_id == order_id)
        .order_by(AuditEntry.id)
    ).all()


def test_money_movements_leave_audit_lines(factory, sandbox_provider):
    event = factory.event(rows=1, columns=2)
    buyer = factory.user()
    paid = payments.pay_by_card(
        booking.hold(buyer, event, seat_ids(event, 1)), user=buyer, card_number=payments.CARD_SUCCEEDS
    )
    other = factory.user()
    declined = booking.hold(other, event, seat_ids(event, 2)[1:])
    with pytest.raises(payments.PaymentDeclined):
        payments.pay_by_card(declined, user=other, card_number=payments.CARD_DECLINED)
    booking.cancel_order(db.session.get(Order, paid.id))
    assert audit_actions(paid.id)[:2] == ["payment.charged", "payment.refunded"]
    assert audit_actions(declined.id) == ["payment.declined"]


def test_an_automatic_refund_is_reconciled_audited_and_emailed(factory, sandbox_provider):
    from app.models import OutboxEmail

    event = factory.event(rows=1, columns=1)
    buyer = factory.user()
    order = booking.hold(buyer, event, seat_ids(event, 1), now=utcnow() - timedelta(minutes=10))
    with pytest.raises(payments.PaymentNotAnswered):
        payments.pay_by_card(
            order, user=buyer, card_number=payments.CARD_PROVIDER_TIMEOUT, now=utcnow() - timedelta(minutes=9)
        )
    booking.release_expired()
    payments.reconcile()
    assert audit_actions(order.id) == ["payment.charged", "payment.reconciled", "payment.refunded"]
    [email] = db.session.scalars(sa.select(OutboxEmail).where(OutboxEmail.order_id == order.id)).all()
    assert email.recipient == buyer.email and "refunded" in email.subject
    payments.reconcile()
    assert db.session.scalar(sa.select(sa.func.count(OutboxEmail.id))) == 1
