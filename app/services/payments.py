"""Paying for held seats, and refunds, through offline sandbox providers.

Two methods: a card, charged at once by the sandbox card provider, and the StagePass Wallet, a
redirect-and-confirm flow. Card numbers are never stored: an order keeps the method, the last four
digits and the provider's reference. An order is charged at most once (a unique key on the
provider ledger), so a double submit or a retry never charges twice.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import (
    Booking,
    BookingStatus,
    Order,
    OrderStatus,
    Payment,
    PaymentKind,
    PaymentResult,
    PaymentStatus,
    SeatStatus,
    User,
    utcnow,
)
from app.services import booking as booking_service
from app.services import seat_changes, states
from app.services.errors import DomainError, IllegalTransition, InvalidRequest
from app.services.transactions import Conflict, run_unit_of_work

CARD = "card"
WALLET = "wallet"
METHODS = {CARD: "Card", WALLET: "StagePass Wallet"}

# The sandbox card provider's documented test numbers.
CARD_SUCCEEDS = "4242424242424242"
CARD_DECLINED = "4000000000000002"
CARD_PROVIDER_ERROR = "4000000000000119"
CARD_PROVIDER_TIMEOUT = "4000000000000259"
SANDBOX_CARDS = {
    CARD_SUCCEEDS: "succeeds",
    CARD_DECLINED: "is declined (insufficient funds)",
    CARD_PROVIDER_ERROR: "fails with a provider error",
    CARD_PROVIDER_TIMEOUT: "times out (the provider never answers)",
}


class PaymentDeclined(DomainError):
    """Your payment was declined. The seats were released; nothing was charged."""

    code = "declined"
    status = 402


class PaymentProviderError(DomainError):
    """The payment provider failed. The seats were released; nothing was charged."""

    code = "provider_error"
    status = 502


class InvalidCard(InvalidRequest):
    """That card number is not valid."""

    code = "invalid_card"


@dataclass
class ProviderResult:
    result: str
    reference: str
    failure_reason: str | None = None


def provider_reference(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


class SandboxCardProvider:
    """Answers like a card acquirer would, offline, from the documented test numbers."""

    def charge(self, card_number: str, amount: Decimal) -> ProviderResult:
        reference = provider_reference("ch")
        if card_number == CARD_SUCCEEDS:
            return ProviderResult(PaymentResult.SUCCEEDED, reference)
        if card_number == CARD_PROVIDER_ERROR:
            return ProviderResult(PaymentResult.ERROR, reference, "The card provider had an internal error.")
        if card_number == CARD_PROVIDER_TIMEOUT:
            # A real acquirer call would time out here; the sandbox says so at once. The outcome
            # is treated as 'not charged' (a real provider would be asked again by reference).
            return ProviderResult(
                PaymentResult.ERROR, reference, "The payment provider did not answer in time; you were not charged."
            )
        if card_number == CARD_DECLINED:
            return ProviderResult(PaymentResult.DECLINED, reference, "The card was declined: insufficient funds.")
        return ProviderResult(PaymentResult.DECLINED, reference, "The card was declined: unknown test card.")

    def refund(self, amount: Decimal) -> ProviderResult:
        return ProviderResult(PaymentResult.SUCCEEDED, provider_reference("re"))


card_provider = SandboxCardProvider()


def clean_card_number(card_number: str | None) -> str:
    """Digits only, checked with the Luhn sum; raises InvalidCard."""
    digits = "".join(ch for ch in str(card_number or "") if ch not in " -")
    if not digits.isdigit() or not 12 <= len(digits) <= 19:
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


# --- paying ----------------------------------------------------------------------------------


def _locked_payable(order_id: int, user: User, now: datetime):
    """Lock the order and its seats; returns (order, outcome) where outcome says what to do."""
    order = booking_service.lock_order_with_seats(order_id)
    if order.user_id != user.id:
        raise booking_service.OrderNotFound()
    if order.status == OrderStatus.CONFIRMED and order.payment_status == PaymentStatus.PAID:
        return order, "already_paid"
    if order.status != OrderStatus.PENDING:
        raise booking_service.OrderNotPending(f"This booking is {order.status}; it can no longer be paid.")
    if order.hold_has_expired(now):
        booking_service.close_expired(order, now)
        return order, "expired"
    return order, "payable"


def _confirm(order: Order, payment: Payment, now: datetime) -> None:
    seat_ids = [b.seat_id for b in order.bookings if b.status == BookingStatus.PENDING]
    states.move_order(order, status=OrderStatus.CONFIRMED, payment_status=PaymentStatus.PAID)
    if booking_service.move_seats(seat_ids, SeatStatus.BOOKED, now) != len(seat_ids):
        raise Conflict("the held seats changed while paying")
    order.payment_method = payment.method
    order.card_last4 = payment.card_last4
    order.provider_reference = payment.provider_reference
    order.paid_at = now
    for booking in order.bookings:
        booking.payment_method = payment.method
    seat_changes.mark_changed(order.event_id, seat_ids)


def _fail(order: Order, payment: Payment) -> None:
    order.payment_method = payment.method
    order.card_last4 = payment.card_last4
    order.provider_reference = payment.provider_reference
    for booking in order.bookings:
        booking.payment_method = payment.method
    booking_service._close_pending(order, OrderStatus.FAILED, payment.completed_at, reason=payment.failure_reason)


def _settle(order_id: int, user: User, now: datetime | None, attempt):
    """The shared shape of paying: lock, check, let `attempt(order, now)` act, commit, then report.

    `attempt` returns the Payment it completed. Declines, provider errors and expired holds are
    committed first (seats freed) and raised afterwards, so the refusal never rolls them back.
    """

    def work():
        moment = now or utcnow()
        order, outcome = _locked_payable(order_id, user, moment)
        if outcome != "payable":
            return order, outcome, None
        payment = attempt(order, moment)
        if payment.result == PaymentResult.SUCCEEDED:
            _confirm(order, payment, moment)
            return order, "paid", payment
        if payment.result == PaymentResult.PENDING:
            return order, "pending", payment
        _fail(order, payment)
        return order, "failed", payment

    try:
        order, outcome, payment = run_unit_of_work(work)
    except IntegrityError:
        # Two submits raced past each other where rows cannot be locked (SQLite): one charge won.
        db.session.rollback()
        order = db.session.get(Order, order_id, populate_existing=True)
        if order is not None and order.payment_status == PaymentStatus.PAID:
            return order, None
        raise booking_service.SeatsBusy() from None
    if outcome == "expired":
        raise booking_service.HoldExpired()
    if outcome == "failed":
        error = PaymentDeclined if payment.result == PaymentResult.DECLINED else PaymentProviderError
        raise error(f"{payment.failure_reason} The seats were released; nothing was charged.", order_reference=order.reference)
    return order, payment


def _existing_charge(order: Order) -> Payment | None:
    return next((p for p in order.payments if p.kind == PaymentKind.CHARGE), None)


def pay_by_card(order: Order, *, user: User, card_number: str, now: datetime | None = None) -> Order:
    """Charge the order to a card through the sandbox provider and confirm it."""
    digits = clean_card_number(card_number)

    def attempt(locked: Order, moment: datetime) -> Payment:
        previous = _existing_charge(locked)
        if previous is not None:
            # An unfinished wallet attempt was never charged; the buyer switched to a card.
            db.session.delete(previous)
            db.session.flush()
        answer = card_provider.charge(digits, locked.total_amount)
        payment = Payment(
            order_id=locked.id,
            kind=PaymentKind.CHARGE,
            method=CARD,
            amount=locked.total_amount,
            result=answer.result,
            provider_reference=answer.reference,
            card_last4=digits[-4:],
            failure_reason=answer.failure_reason,
            completed_at=moment,
        )
        db.session.add(payment)
        db.session.flush()
        return payment

    order, _ = _settle(order.id, user, now, attempt)
    return order


def start_wallet(order: Order, *, user: User, now: datetime | None = None) -> Payment:
    """Begin a wallet payment: a pending charge the buyer approves on the wallet's page."""

    def attempt(locked: Order, moment: datetime) -> Payment:
        previous = _existing_charge(locked)
        if previous is not None and previous.method == WALLET and previous.result == PaymentResult.PENDING:
            return previous
        if previous is not None:
            db.session.delete(previous)
            db.session.flush()
        payment = Payment(
            order_id=locked.id,
            kind=PaymentKind.CHARGE,
            method=WALLET,
            amount=locked.total_amount,
            result=PaymentResult.PENDING,
            provider_reference=provider_reference("wal"),
        )
        db.session.add(payment)
        locked.payment_method = WALLET
        db.session.flush()
        return payment

    order, payment = _settle(order.id, user, now, attempt)
    return payment if payment is not None else _existing_charge(order)


def confirm_wallet(order: Order, *, user: User, approve: bool, now: datetime | None = None) -> Order:
    """The buyer approved (or declined) the wallet payment: confirm the order, or fail it."""

    def attempt(locked: Order, moment: datetime) -> Payment:
        payment = _existing_charge(locked)
        if payment is None or payment.method != WALLET or payment.result != PaymentResult.PENDING:
            raise InvalidRequest("There is no wallet payment waiting for this order; start again from checkout.")
        payment.result = PaymentResult.SUCCEEDED if approve else PaymentResult.DECLINED
        payment.failure_reason = None if approve else "The payment was declined in the wallet."
        payment.completed_at = moment
        return payment

    order, _ = _settle(order.id, user, now, attempt)
    return order


# --- refunds ---------------------------------------------------------------------------------


def refund(order: Order, *, now: datetime, booking: Booking | None = None) -> Payment:
    """Refund a paid order in full, or one seat of it, inside the caller's unit of work."""
    if order.payment_status != PaymentStatus.PAID:
        raise IllegalTransition(f"Only a paid order can be refunded; this one is {order.payment_status}.")
    remaining = order.total_amount - order.refunded_amount
    amount = booking.total_amount if booking is not None else remaining
    if amount > remaining:
        raise IllegalTransition("That would refund more than was paid.")
    answer = card_provider.refund(amount)
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
    refunded_bookings = [booking] if booking is not None else [
        b for b in order.bookings if b.payment_status == PaymentStatus.PAID
    ]
    for refunded in refunded_bookings:
        states.move(refunded, "payment_status", states.PAYMENT_TRANSITIONS, PaymentStatus.REFUNDED, "payment")
    if order.refunded_amount >= order.total_amount:
        states.move(order, "payment_status", states.PAYMENT_TRANSITIONS, PaymentStatus.REFUNDED, "payment")
        order.refunded_at = now
    db.session.flush()
    return payment
