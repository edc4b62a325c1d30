"""Paying for held seats, and refunds: the flow around the payment provider (payments_provider.py).

A card payment is three steps, so no row lock is ever held while the provider is asked:

    1. record the attempt      (one short unit of work: order and seats locked, checked, committed)
    2. ask the provider        (no transaction, no locks; it may take seconds, or never answer)
    3. apply the answer        (one short unit of work under the usual lock order)

Every call carries an idempotency key made from the order and the attempt, so a double submit, a
buyer paying again after the provider fell silent, or reconciliation asking again never charges
twice. An answer that arrives when the seats are no longer the buyer's (the hold ran out and
someone else took them, or the order was cancelled meanwhile) is refunded automatically. An
attempt without an answer (lost, or the process died between steps) is settled by `reconcile`.
Card numbers are never stored: an order keeps the method, the last four digits and the reference.
The wallet moves no money until the buyer approves it, so it needs no second step.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import (
    Booking,
    Order,
    OrderStatus,
    Payment,
    PaymentKind,
    PaymentMethod,
    PaymentResult,
    PaymentStatus,
    User,
    utcnow,
)
from app.services import audit, locking, mail, orders, states
from app.services.errors import (
    DomainError,
    HoldExpired,
    IllegalTransition,
    InvalidRequest,
    OrderNotFound,
    OrderNotPending,
)
from app.services.payments_provider import ProviderResult, get_provider
from app.services.payments_sandbox import (
    CARD_DECLINED,
    CARD_PROVIDER_ERROR,
    CARD_PROVIDER_TIMEOUT,
    CARD_REFUND_FAILS,
    CARD_SUCCEEDS,
    provider_reference,
)
from app.services.payments_wording import (
    METHODS,
    NEVER_REACHED_PROVIDER,
    PROVIDER_DID_NOT_ANSWER,
    SANDBOX_CARDS,
    automatic_refund_email,
    payment_summary,
)
from app.services.transactions import SeatsBusy, run_unit_of_work

__all__ = [  # what views, forms and tests use from here
    "DomainError",
    "CARD_DECLINED",
    "CARD_PROVIDER_ERROR",
    "CARD_PROVIDER_TIMEOUT",
    "CARD_REFUND_FAILS",
    "CARD_SUCCEEDS",
    "METHODS",
    "SANDBOX_CARDS",
    "payment_summary",
]

log = logging.getLogger(__name__)

CARD = PaymentMethod.CARD
WALLET = PaymentMethod.WALLET


class PaymentDeclined(DomainError):
    code = "declined"
    status = 402


class PaymentProviderError(DomainError):
    code = "provider_error"
    status = 502


class PaymentNotAnswered(DomainError):
    code = "provider_timeout"
    status = 504


class CardPaymentUnsettled(DomainError):
    code = "card_payment_unsettled"
    default_message = (
        "Your card payment got no answer from the provider yet: pay by card again (charged at most once) to settle it."
    )


class ChargeRefunded(DomainError):
    code = "charge_refunded"


class RefundFailed(DomainError):
    code = "refund_failed"
    status = 502


class InvalidCard(InvalidRequest):
    code = "invalid_card"


def charge_key(order: Order, payment: Payment) -> str:
    """The idempotency key of a charge: the same for every try of the same attempt."""
    return f"{order.reference}-charge-{payment.attempt}"


def refund_key(order: Order, booking: Booking | None) -> str:
    """The idempotency key of a refund: one per refunded seat, one for the rest of an order."""
    return f"{order.reference}-refund-{booking.id if booking is not None else 'rest'}"


def clean_card_number(card_number: str | None) -> str:
    """ASCII digits only (spaces and dashes allowed), checked with the Luhn sum; raises InvalidCard.

    str.isdigit() alone also takes "²" (int() then fails) and other scripts' digits ("４２…").
    """
    digits = "".join(ch for ch in str(card_number or "") if ch not in " -")
    if not (digits.isascii() and digits.isdigit()) or not 12 <= len(digits) <= 19:
        raise InvalidCard("Enter the card number: 12 to 19 digits.")
    total = 0
    for position, digit in enumerate(reversed(digits)):
        value = int(digit)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    if total % 10:
        raise InvalidCard("That card number is not valid (check the digits).")
    return digits


def _record_money(action: str, payment: Payment, order: Order, *, actor=None, now=None, **data) -> None:
    """An audit line for a money movement (or a refused one), in the caller's unit of work."""
    audit.record(
        action,
        actor=actor,
        actor_label=None if actor is not None else audit.job_label("payments"),
        subject=order,
        data={
            "payment_id": payment.id,
            "kind": payment.kind,
            "method": payment.method,
            "amount": payment.amount,
            "result": payment.result,
            "provider_reference": payment.provider_reference,
            **data,
        },
        now=now,
    )


def is_unanswered(payment: Payment | None) -> bool:
    """A card charge the provider has not answered (in flight, or its answer lost): it may or may
    not have gone through, so only the provider's answer may settle it."""
    return (
        payment is not None
        and payment.kind == PaymentKind.CHARGE
        and payment.method == CARD
        and payment.provider_reference is None
        and (
            payment.result == PaymentResult.PENDING
            or (payment.result == PaymentResult.ERROR and payment.failure_reason == PROVIDER_DID_NOT_ANSWER)
        )
    )


def _existing_charge(order: Order) -> Payment | None:
    return next((p for p in order.payments if p.kind == PaymentKind.CHARGE), None)


# --- step 1: check the order and record the attempt ------------------------------------------


def _locked_payable(order_id: int, user: User, now: datetime | None):
    """Lock the order and its seats; returns (order, moment, outcome) where outcome says what to do.

    The moment is taken once the locks are granted: a payment that waited for them must not judge
    the hold by the clock from before it waited.
    """
    order = locking.lock_order_with_seats(order_id)
    moment = now or utcnow()
    if order.user_id != user.id:
        raise OrderNotFound()
    if order.status == OrderStatus.CONFIRMED and order.payment_status == PaymentStatus.PAID:
        return order, moment, "already_paid"
    if order.status != OrderStatus.PENDING:
        raise OrderNotPending(f"This booking is {order.status}; it can no longer be paid.")
    if order.hold_has_expired(moment) or not orders.seats_still_held(order):
        orders.close_expired(order, moment)
        return order, moment, "expired"
    return order, moment, "payable"


def _charge_for(order: Order, method: str) -> Payment:
    """The charge row this payment by `method` works on, with the attempt number it goes by.

    An unanswered card charge is tried again as the same attempt, so the provider sees the same
    idempotency key and charges at most once; an unfinished wallet payment moved no money, so
    another method replaces it as the next attempt.
    """
    previous = _existing_charge(order)
    if previous is None:
        attempt = 1
    elif is_unanswered(previous):
        if method != CARD:
            raise CardPaymentUnsettled()
        return previous
    elif previous.method == method == WALLET and previous.result == PaymentResult.PENDING:
        return previous
    else:
        attempt = previous.attempt + 1
        order.payments.remove(previous)
        db.session.delete(previous)
        db.session.flush()
    payment = Payment(
        order_id=order.id,
        kind=PaymentKind.CHARGE,
        method=method,
        amount=order.total_amount,
        result=PaymentResult.PENDING,
        attempt=attempt,
    )
    order.payments.append(payment)
    return payment


@dataclass(frozen=True)
class CardAttempt:
    """What step 2 needs, as plain values: no ORM object (and so no transaction) outlives step 1."""

    order_id: int
    payment_id: int | None
    idempotency_key: str | None
    amount: object
    outcome: str


def _record_card_attempt(order_id: int, user: User, now: datetime | None, digits: str) -> CardAttempt:
    order, _moment, outcome = _locked_payable(order_id, user, now)
    if outcome != "payable":
        return CardAttempt(order_id, None, None, None, outcome)
    payment = _charge_for(order, CARD)
    payment.result = PaymentResult.PENDING
    payment.failure_reason = None
    payment.completed_at = None
    payment.card_last4 = digits[-4:]
    db.session.flush()
    return CardAttempt(order_id, payment.id, charge_key(order, payment), payment.amount, outcome)


# --- step 2: ask the provider, holding nothing -----------------------------------------------


def _ask(call) -> ProviderResult | None:
    """The provider's answer, or None when there is none (unreachable, timed out, answer lost)."""
    try:
        return call(get_provider())
    except OSError as error:  # TimeoutError and ConnectionError among them: charged or not, nobody knows yet
        log.warning("payment provider gave no answer: %s", error)
        return None


# --- step 3: apply the answer ----------------------------------------------------------------


def _apply_charge_answer(
    payment_id: int, answer: ProviderResult | None, now: datetime | None, *, actor=None, reconciled=False
):
    """Apply the provider's answer to a charge attempt; returns (order, outcome).

    Outcomes: paid, failed, unanswered, refund_due (it charged, but the seats are no longer the
    buyer's), closed (declined after the order closed: nothing to do) and settled (this answer,
    or another, was applied already: applying it twice changes nothing). The audit trail gets
    payment.charged or payment.declined (and payment.reconciled when reconciliation found it).
    """

    def work():
        order_id = db.session.scalar(sa.select(Payment.order_id).where(Payment.id == payment_id))
        order = locking.lock_order_with_seats(order_id)
        moment = now or utcnow()
        payment = next((p for p in order.payments if p.id == payment_id), None)
        if payment is None or payment.provider_reference is not None:
            return order, "settled"
        if answer is None:
            if payment.result == PaymentResult.PENDING:
                payment.result = PaymentResult.ERROR
                payment.failure_reason = PROVIDER_DID_NOT_ANSWER
                payment.completed_at = moment
            return order, "unanswered"
        payment.result = answer.result
        payment.provider_reference = answer.reference
        payment.card_last4 = answer.card_last4 or payment.card_last4
        payment.failure_reason = answer.failure_reason
        payment.completed_at = moment
        outcome = _apply_answer(order, payment, moment)
        charged = payment.result == PaymentResult.SUCCEEDED
        _record_money(
            "payment.charged" if charged else "payment.declined",
            payment,
            order,
            actor=actor,
            now=moment,
            outcome=outcome,
        )
        if reconciled:
            _record_money("payment.reconciled", payment, order, now=moment, outcome=outcome)
        return order, outcome

    return run_unit_of_work(work)


def _apply_answer(order: Order, payment: Payment, moment: datetime) -> str:
    if payment.result == PaymentResult.SUCCEEDED:
        return _apply_success(order, payment, moment)
    if order.status == OrderStatus.PENDING:
        orders.copy_payment(order, payment)
        orders.close_pending(order, OrderStatus.FAILED, moment, reason=payment.failure_reason)
        return "failed"
    return "closed"


def _apply_success(order: Order, payment: Payment, moment: datetime) -> str:
    if orders.seats_still_held(order):
        # Even if the hold ran out during the call: nobody took the seats, and the buyer paid.
        orders.confirm(order, payment, moment)
        return "paid"
    if order.status == OrderStatus.PENDING:
        orders.close_expired(order, moment)
    states.move_order(order, payment_status=PaymentStatus.PAID, bookings=[])
    orders.copy_payment(order, payment)
    return "refund_due"


def _report(order: Order, outcome: str, payment_id: int) -> None:
    """Raise what the buyer is told when a payment did not confirm the order (after the commit)."""
    if outcome == "unanswered":
        raise PaymentNotAnswered(
            "The payment provider did not answer, so we cannot tell yet whether your card was charged. Your seats "
            "are still held: pay again before the hold runs out, and you will be charged at most once.",
            order_reference=order.reference,
        )
    if outcome == "refund_due":
        raise ChargeRefunded(
            "Your booking closed while the payment provider was answering, and its seats are no longer yours, so "
            "the charge was refunded in full. Please choose your seats again.",
            order_reference=order.reference,
        )
    if outcome in ("failed", "closed"):
        payment = db.session.get(Payment, payment_id)
        error = PaymentDeclined if payment.result == PaymentResult.DECLINED else PaymentProviderError
        raise error(
            f"{payment.failure_reason} The seats were released; nothing was charged.", order_reference=order.reference
        )


def pay_by_card(order: Order, *, user: User, card_number: str, now: datetime | None = None) -> Order:
    """Charge the order to a card through the payment provider and confirm it (three steps, see above)."""
    digits = clean_card_number(card_number)
    order_id = order.id
    try:
        attempt = run_unit_of_work(lambda: _record_card_attempt(order_id, user, now, digits))
    except IntegrityError:
        # Two submits raced past each other where rows cannot be locked (SQLite): one attempt won.
        raise SeatsBusy() from None
    if attempt.outcome == "expired":
        raise HoldExpired()
    if attempt.outcome == "already_paid":
        return db.session.get(Order, order_id)
    answer = _ask(lambda provider: provider.charge(digits, attempt.amount, idempotency_key=attempt.idempotency_key))
    paid, outcome = _apply_charge_answer(attempt.payment_id, answer, now, actor=user)
    if outcome == "refund_due":
        refund_closed_order(order_id, now=now)
    if outcome == "settled" and paid.status == OrderStatus.CONFIRMED:
        return paid  # a double submit: the other request applied the same answer
    _report(paid, outcome if outcome != "settled" else _settled_outcome(paid), attempt.payment_id)
    return paid


def _settled_outcome(order: Order) -> str:
    if order.payment_status in (PaymentStatus.PAID, PaymentStatus.REFUNDED):
        return "refund_due"
    return "failed"


# --- the wallet: approved by the buyer, no provider call -------------------------------------


def _settle_wallet(order_id: int, user: User, now: datetime | None, act):
    """Lock, check, let `act(order, now)` complete the wallet charge, apply it and commit, then report."""

    def work():
        order, moment, outcome = _locked_payable(order_id, user, now)
        if outcome != "payable":
            return order, outcome, None
        payment = act(order, moment)
        if payment.result == PaymentResult.PENDING:
            return order, "pending", payment
        outcome = _apply_answer(order, payment, moment)
        charged = payment.result == PaymentResult.SUCCEEDED
        _record_money("payment.charged" if charged else "payment.declined", payment, order, actor=user, now=moment)
        return order, outcome, payment

    try:
        order, outcome, payment = run_unit_of_work(work)
    except IntegrityError:
        raise SeatsBusy() from None
    if outcome == "expired":
        raise HoldExpired()
    if outcome == "failed":
        _report(order, "failed", payment.id)
    return order, payment


def start_wallet(order: Order, *, user: User, now: datetime | None = None) -> Payment:
    """Begin a wallet payment: a pending charge the buyer approves on the wallet's page."""

    def act(locked: Order, moment: datetime) -> Payment:
        payment = _charge_for(locked, WALLET)
        if payment.provider_reference is None:
            payment.provider_reference = provider_reference("wal")
        locked.payment_method = WALLET
        db.session.flush()
        return payment

    order, payment = _settle_wallet(order.id, user, now, act)
    return payment if payment is not None else _existing_charge(order)


def confirm_wallet(order: Order, *, user: User, approve: bool, now: datetime | None = None) -> Order:
    """The buyer approved (or declined) the wallet payment: confirm the order, or fail it."""

    def act(locked: Order, moment: datetime) -> Payment:
        payment = _existing_charge(locked)
        if payment is None or payment.method != WALLET or payment.result != PaymentResult.PENDING:
            raise InvalidRequest("There is no wallet payment waiting for this order; start again from checkout.")
        # What the order costs now: a seat cancelled since the wallet page opened is not charged.
        payment.amount = locked.total_amount
        payment.result = PaymentResult.SUCCEEDED if approve else PaymentResult.DECLINED
        payment.failure_reason = None if approve else "The payment was declined in the wallet."
        payment.completed_at = moment
        return payment

    order, _ = _settle_wallet(order.id, user, now, act)
    return order


# --- refunds ---------------------------------------------------------------------------------


def _record_refund(
    order: Order, answer: ProviderResult, amount, booking: Booking | None, now: datetime, *, automatic=False
) -> Payment:
    payment = Payment(
        order_id=order.id,
        booking_id=booking.id if booking is not None else None,
        kind=PaymentKind.REFUND,
        method=order.payment_method or CARD,
        amount=amount,
        result=answer.result,
        provider_reference=answer.reference,
        card_last4=order.card_last4,
        completed_at=now,
    )
    db.session.add(payment)
    order.refunded_amount += amount
    refunded_bookings = (
        [booking] if booking is not None else [b for b in order.bookings if b.payment_status == PaymentStatus.PAID]
    )
    for refunded in refunded_bookings:
        states.move(refunded, "payment_status", states.PAYMENT_TRANSITIONS, PaymentStatus.REFUNDED, "payment")
    if order.refunded_amount >= order.total_amount:
        states.move(order, "payment_status", states.PAYMENT_TRANSITIONS, PaymentStatus.REFUNDED, "payment")
        order.refunded_at = now
    db.session.flush()
    _record_money("payment.refunded", payment, order, now=now, booking_id=payment.booking_id, automatic=automatic)
    return payment


def refund(order: Order, *, now: datetime, booking: Booking | None = None) -> Payment:
    """Refund a paid order in full, or one seat of it, inside the caller's unit of work.

    The provider is asked first: if it refuses or does not answer, RefundFailed is raised and the
    caller's unit of work rolls back, so nothing is marked refunded that was not. (The refund key
    makes the retry of a rolled-back cancellation get the same refund back, not a second one.)
    """
    if order.payment_status != PaymentStatus.PAID:
        raise IllegalTransition(f"Only a paid order can be refunded; this one is {order.payment_status}.")
    remaining = order.total_amount - order.refunded_amount
    amount = booking.total_amount if booking is not None else remaining
    if amount > remaining:
        raise IllegalTransition("That would refund more than was paid.")
    charge = _existing_charge(order)
    answer = _ask(
        lambda provider: provider.refund(charge.provider_reference, amount, idempotency_key=refund_key(order, booking))
    )
    if answer is None:
        raise RefundFailed(
            f"The payment provider did not answer the refund of order {order.reference}. "
            "Nothing was changed; try again."
        )
    if answer.result != PaymentResult.SUCCEEDED:
        raise RefundFailed(
            f"The payment provider refused to refund order {order.reference}: {answer.failure_reason} "
            "Nothing was changed."
        )
    return _record_refund(order, answer, amount, booking, now)


def refund_closed_order(order_id: int, *, now: datetime | None = None) -> bool:
    """Pay back a charge that came through after its order had closed; True once it is refunded.

    Two steps again, no locks held while the provider answers. A refund that fails is left due:
    reconciliation tries it again with the same key.
    """

    def read_due():
        order = db.session.get(Order, order_id, populate_existing=True)
        if order.status == OrderStatus.CONFIRMED or order.payment_status != PaymentStatus.PAID:
            return None
        charge = _existing_charge(order)
        return charge.provider_reference, order.total_amount - order.refunded_amount, refund_key(order, None)

    due = run_unit_of_work(read_due)
    if due is None:
        return False
    reference, amount, key = due
    answer = _ask(lambda provider: provider.refund(reference, amount, idempotency_key=key))
    if answer is None or answer.result != PaymentResult.SUCCEEDED:
        log.warning("automatic refund of order %s not done yet: %s", order_id, answer)
        return False

    def record():
        order = locking.lock_order(order_id)
        if order.status == OrderStatus.CONFIRMED or order.payment_status != PaymentStatus.PAID:
            return False  # applied already (the same answer twice)
        moment = now or utcnow()
        _record_refund(order, answer, amount, None, moment, automatic=True)
        notify_buyer_of_automatic_refund(order, moment)
        return True

    return run_unit_of_work(record)


def notify_buyer_of_automatic_refund(order: Order, now: datetime) -> None:
    """Tell the buyer their charge was paid back automatically, in the refund's unit of work: the
    order page says so (payment_summary), and an email is queued in the outbox."""
    subject, paragraphs = automatic_refund_email(order)
    mail.enqueue_notice(
        order.user,
        subject=subject,
        paragraphs=paragraphs,
        dedupe_key=f"order:{order.id}:automatic-refund",
        order=order,
        now=now,
    )


# --- reconciliation --------------------------------------------------------------------------


@dataclass
class ReconcileSummary:
    asked: int = 0
    confirmed: int = 0
    failed: int = 0
    refunded: int = 0
    never_reached: int = 0
    still_unanswered: int = 0

    def __str__(self):
        return (
            f"asked the provider about {self.asked} attempt(s): {self.confirmed} confirmed, {self.failed} failed, "
            f"{self.never_reached} never reached it, {self.refunded} refunded automatically, "
            f"{self.still_unanswered} still without an answer"
        )


def unanswered_attempts(older_than: datetime) -> list[tuple[int, str]]:
    """(payment id, idempotency key) of card charges without an answer, begun before `older_than`."""
    rows = db.session.execute(
        sa.select(Payment.id, Order.reference, Payment.attempt)
        .join(Order, Order.id == Payment.order_id)
        .where(
            Payment.kind == PaymentKind.CHARGE,
            Payment.method == CARD,
            Payment.provider_reference.is_(None),
            sa.or_(
                Payment.result == PaymentResult.PENDING,
                sa.and_(Payment.result == PaymentResult.ERROR, Payment.failure_reason == PROVIDER_DID_NOT_ANSWER),
            ),
            Payment.created_at <= older_than,
        )
        .order_by(Payment.id)
    ).all()
    return [(payment_id, f"{reference}-charge-{attempt}") for payment_id, reference, attempt in rows]


def refunds_due() -> list[int]:
    """Orders that were charged after they closed and are not refunded yet."""
    return list(
        db.session.scalars(
            sa.select(Order.id)
            .where(Order.payment_status == PaymentStatus.PAID, Order.status != OrderStatus.CONFIRMED)
            .order_by(Order.id)
        )
    )


def reconcile(now: datetime | None = None) -> ReconcileSummary:
    """Ask the provider about every charge attempt without an answer and settle it; pay back charges
    of orders that closed meanwhile. Safe to run at any time and any number of times."""
    moment = now or utcnow()
    grace = timedelta(seconds=current_app.config["PAYMENT_RECONCILE_AFTER_SECONDS"])
    summary = ReconcileSummary()
    attempts = run_unit_of_work(lambda: unanswered_attempts(moment - grace))
    for payment_id, key in attempts:
        summary.asked += 1
        try:
            answer = get_provider().find_payment(key)
        except OSError as error:
            log.warning("reconcile: provider unreachable for %s: %s", key, error)
            summary.still_unanswered += 1
            continue
        if answer is None:
            summary.never_reached += _settle_never_reached(payment_id, moment)
            continue
        _order, outcome = _apply_charge_answer(payment_id, answer, moment, reconciled=True)
        summary.confirmed += outcome == "paid"
        summary.failed += outcome in ("failed", "closed")
    for order_id in run_unit_of_work(refunds_due):
        summary.refunded += refund_closed_order(order_id, now=moment)
    return summary


def _settle_never_reached(payment_id: int, now: datetime) -> int:
    """The provider never got this attempt: nothing was charged. A buyer whose hold is still running
    may pay again; otherwise the attempt is closed as failed. Returns 1 if settled."""

    def work():
        order_id = db.session.scalar(sa.select(Payment.order_id).where(Payment.id == payment_id))
        order = locking.lock_order_with_seats(order_id)
        payment = next((p for p in order.payments if p.id == payment_id), None)
        if payment is None or not is_unanswered(payment):
            return 0
        if order.status == OrderStatus.PENDING and not order.hold_has_expired(now):
            return 0  # the buyer may still pay again with this attempt's key
        if order.status == OrderStatus.PENDING:
            orders.close_expired(order, now)
        payment.result = PaymentResult.ERROR
        payment.failure_reason = NEVER_REACHED_PROVIDER
        payment.completed_at = now
        _record_money("payment.reconciled", payment, order, now=now, outcome="never_reached")
        return 1

    return run_unit_of_work(work)
