"""Paying for held seats, and refunds, through offline sandbox providers.

Two methods: a card, charged at once by the sandbox card provider, and the StagePass Wallet, a
redirect-and-confirm flow. Card numbers are never stored: an order keeps the method, the last four
digits and the provider's reference. An order has at most one charge (a unique key on the provider
ledger), and every call to the provider carries an idempotency key made from the order, so a
double submit, a unit of work run again or a buyer paying again after the provider fell silent
never charges twice.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict, deque
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
from app.services import locking, mail, seat_changes, states, tickets
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
CARD_REFUND_FAILS = "4000000000005126"
SANDBOX_CARDS = {
    CARD_SUCCEEDS: "succeeds",
    CARD_DECLINED: "is declined (insufficient funds)",
    CARD_PROVIDER_ERROR: "fails with a provider error",
    CARD_PROVIDER_TIMEOUT: "is charged, but the provider's answer is lost (pay again: charged once)",
    CARD_REFUND_FAILS: "succeeds, but its refunds are refused",
}

PROVIDER_DID_NOT_ANSWER = "The payment provider did not answer."


class PaymentDeclined(DomainError):
    """Your payment was declined. The seats were released; nothing was charged."""

    code = "declined"
    status = 402


class PaymentProviderError(DomainError):
    """The payment provider failed. The seats were released; nothing was charged."""

    code = "provider_error"
    status = 502


class PaymentNotAnswered(DomainError):
    """The payment provider did not answer: your seats are still held, so pay again (you will be charged at most once)."""

    code = "provider_timeout"
    status = 504


class CardPaymentUnsettled(DomainError):
    """Your card payment got no answer from the provider yet: pay by card again (charged at most once) to settle it."""

    code = "card_payment_unsettled"


class RefundFailed(DomainError):
    """The payment provider refused the refund. Nothing was changed."""

    code = "refund_failed"
    status = 502


class InvalidCard(InvalidRequest):
    """That card number is not valid."""

    code = "invalid_card"


@dataclass(frozen=True)
class ProviderResult:
    result: str
    reference: str | None
    failure_reason: str | None = None
    card_last4: str | None = None
    amount: Decimal | None = None


NO_ANSWER = ProviderResult(PaymentResult.ERROR, None, PROVIDER_DID_NOT_ANSWER)


def provider_reference(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


class SandboxCardProvider:
    """Answers like a card acquirer would, offline, from the documented test numbers.

    Like a real provider it remembers its answer to each idempotency key: asked again with a key it
    has seen, it gives the same answer and moves no money. That memory lives in this object (per
    app process, lost on restart, the latest KEYS_REMEMBERED keys only, as a real provider forgets
    keys after a day or so), outside every database transaction, as a real provider's state is
    outside ours: a rolled-back unit of work does not undo a charge. `charges` and `refunds` list
    the latest money it actually moved.
    """

    KEYS_REMEMBERED = 100_000

    def __init__(self):
        self._answers: OrderedDict[str, ProviderResult] = OrderedDict()
        self._charges_refusing_refunds: set[str] = set()
        self._lock = threading.Lock()
        self.charges: deque[ProviderResult] = deque(maxlen=self.KEYS_REMEMBERED)
        self.refunds: deque[ProviderResult] = deque(maxlen=self.KEYS_REMEMBERED)

    def _remember(self, idempotency_key: str, answer: ProviderResult) -> None:
        self._answers[idempotency_key] = answer
        if len(self._answers) > self.KEYS_REMEMBERED:
            self._answers.popitem(last=False)

    def charge(self, card_number: str, amount: Decimal, *, idempotency_key: str) -> ProviderResult:
        """Charge the card once per key; raises TimeoutError after charging CARD_PROVIDER_TIMEOUT."""
        with self._lock:
            answer = self._answers.get(idempotency_key)
            if answer is not None:
                return answer
            answer = self._answer_charge(card_number, amount)
            self._remember(idempotency_key, answer)
            if answer.result == PaymentResult.SUCCEEDED:
                self.charges.append(answer)
            if card_number == CARD_REFUND_FAILS:
                self._charges_refusing_refunds.add(answer.reference)
        if card_number == CARD_PROVIDER_TIMEOUT:
            raise TimeoutError("the sandbox card provider charged the card, but its answer was lost")
        return answer

    @staticmethod
    def _answer_charge(card_number: str, amount: Decimal) -> ProviderResult:
        if card_number in (CARD_SUCCEEDS, CARD_PROVIDER_TIMEOUT, CARD_REFUND_FAILS):
            result, reason = PaymentResult.SUCCEEDED, None
        elif card_number == CARD_PROVIDER_ERROR:
            result, reason = PaymentResult.ERROR, "The card provider had an internal error."
        elif card_number == CARD_DECLINED:
            result, reason = PaymentResult.DECLINED, "The card was declined: insufficient funds."
        else:
            result, reason = PaymentResult.DECLINED, "The card was declined: unknown test card."
        return ProviderResult(result, provider_reference("ch"), reason, card_number[-4:], amount)

    def refund(self, charge_reference: str | None, amount: Decimal, *, idempotency_key: str) -> ProviderResult:
        """Refund part or all of a charge once per key (charges it does not know refund fine)."""
        with self._lock:
            answer = self._answers.get(idempotency_key)
            if answer is not None:
                return answer
            if charge_reference in self._charges_refusing_refunds:
                answer = ProviderResult(
                    PaymentResult.DECLINED,
                    provider_reference("re"),
                    "The card's bank refused the refund.",
                    amount=amount,
                )
            else:
                answer = ProviderResult(PaymentResult.SUCCEEDED, provider_reference("re"), amount=amount)
                self.refunds.append(answer)
            self._remember(idempotency_key, answer)
            return answer


card_provider = SandboxCardProvider()


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


# --- paying ----------------------------------------------------------------------------------


def _bookings_to_pay(order: Order) -> list[Booking]:
    """The seats an order still pays for: all but those an admin cancelled while it was pending."""
    return [b for b in order.bookings if b.status != BookingStatus.CANCELLED]


def _locked_payable(order_id: int, user: User, now: datetime | None):
    """Lock the order and its seats; returns (order, moment, outcome) where outcome says what to do.

    The moment is taken once the locks are granted: a payment that waited for them must not judge
    the hold by the clock from before it waited.
    """
    order = locking.lock_order_with_seats(order_id)
    moment = now or utcnow()
    if order.user_id != user.id:
        raise booking_service.OrderNotFound()
    if order.status == OrderStatus.CONFIRMED and order.payment_status == PaymentStatus.PAID:
        return order, moment, "already_paid"
    if order.status != OrderStatus.PENDING:
        raise booking_service.OrderNotPending(f"This booking is {order.status}; it can no longer be paid.")
    seats_lost = any(b.status != BookingStatus.PENDING for b in _bookings_to_pay(order))
    if order.hold_has_expired(moment) or seats_lost:
        booking_service.close_expired(order, moment)
        return order, moment, "expired"
    return order, moment, "payable"


def _confirm(order: Order, payment: Payment, now: datetime) -> None:
    paying = _bookings_to_pay(order)
    seat_ids = [b.seat_id for b in paying]
    states.move_order(order, status=OrderStatus.CONFIRMED, payment_status=PaymentStatus.PAID, bookings=paying)
    if booking_service.move_seats(seat_ids, SeatStatus.BOOKED, now) != len(seat_ids):
        raise Conflict("the held seats changed while paying")
    order.payment_method = payment.method
    order.card_last4 = payment.card_last4
    order.provider_reference = payment.provider_reference
    order.paid_at = now
    for booking in paying:
        booking.payment_method = payment.method
    seat_changes.mark_changed(order.event_id, seat_ids)
    tickets.issue_for_order(order, now)
    mail.enqueue_order_confirmation(order, now=now)


def _fail(order: Order, payment: Payment) -> None:
    order.payment_method = payment.method
    order.card_last4 = payment.card_last4
    order.provider_reference = payment.provider_reference
    for booking in _bookings_to_pay(order):
        booking.payment_method = payment.method
    booking_service._close_pending(order, OrderStatus.FAILED, payment.completed_at, reason=payment.failure_reason)


def is_unanswered(payment: Payment | None) -> bool:
    """A charge the provider never answered: it may or may not have gone through."""
    return (
        payment is not None
        and payment.result == PaymentResult.ERROR
        and payment.provider_reference is None
        and payment.failure_reason == PROVIDER_DID_NOT_ANSWER
    )


def _settle(order_id: int, user: User, now: datetime | None, attempt):
    """The shared shape of paying: lock, check, let `attempt(order, now)` act, commit, then report.

    `attempt` returns the Payment it completed. Declines, provider errors, unanswered charges and
    expired holds are committed first (seats freed, or the attempt recorded) and raised afterwards,
    so the refusal never rolls them back.
    """

    def work():
        order, moment, outcome = _locked_payable(order_id, user, now)
        if outcome != "payable":
            return order, outcome, None
        payment = attempt(order, moment)
        if payment.result == PaymentResult.SUCCEEDED:
            _confirm(order, payment, moment)
            return order, "paid", payment
        if payment.result == PaymentResult.PENDING:
            return order, "pending", payment
        if is_unanswered(payment):
            return order, "unanswered", payment
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
    if outcome == "unanswered":
        raise PaymentNotAnswered(
            "The payment provider did not answer, so we cannot tell yet whether your card was charged. Your seats "
            "are still held: pay again before the hold runs out, and you will be charged at most once.",
            order_reference=order.reference,
        )
    if outcome == "failed":
        error = PaymentDeclined if payment.result == PaymentResult.DECLINED else PaymentProviderError
        raise error(
            f"{payment.failure_reason} The seats were released; nothing was charged.", order_reference=order.reference
        )
    return order, payment


def _existing_charge(order: Order) -> Payment | None:
    return next((p for p in order.payments if p.kind == PaymentKind.CHARGE), None)


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


def pay_by_card(order: Order, *, user: User, card_number: str, now: datetime | None = None) -> Order:
    """Charge the order to a card through the sandbox provider and confirm it."""
    digits = clean_card_number(card_number)

    def attempt(locked: Order, moment: datetime) -> Payment:
        payment = _charge_for(locked, CARD)
        try:
            answer = card_provider.charge(digits, locked.total_amount, idempotency_key=charge_key(locked, payment))
        except OSError:  # TimeoutError and ConnectionError among them: charged or not, nobody knows yet
            answer = NO_ANSWER
        payment.amount = locked.total_amount
        payment.result = answer.result
        payment.provider_reference = answer.reference
        payment.card_last4 = answer.card_last4 or digits[-4:]
        payment.failure_reason = answer.failure_reason
        payment.completed_at = moment
        db.session.flush()
        return payment

    order, _ = _settle(order.id, user, now, attempt)
    return order


def start_wallet(order: Order, *, user: User, now: datetime | None = None) -> Payment:
    """Begin a wallet payment: a pending charge the buyer approves on the wallet's page."""

    def attempt(locked: Order, moment: datetime) -> Payment:
        payment = _charge_for(locked, WALLET)
        if payment.provider_reference is None:
            payment.provider_reference = provider_reference("wal")
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
        # What the order costs now: a seat cancelled since the wallet page opened is not charged.
        payment.amount = locked.total_amount
        payment.result = PaymentResult.SUCCEEDED if approve else PaymentResult.DECLINED
        payment.failure_reason = None if approve else "The payment was declined in the wallet."
        payment.completed_at = moment
        return payment

    order, _ = _settle(order.id, user, now, attempt)
    return order


def payment_summary(order: Order) -> str:
    """What became of the order's payment, in a sentence for its buyer."""
    charge = _existing_charge(order)
    if charge is None:
        return "Not paid yet." if order.status == OrderStatus.PENDING else "Nothing was charged."
    if charge.result == PaymentResult.SUCCEEDED:
        if charge.method == CARD:
            return f"Paid by card ending {charge.card_last4}."
        return f"Paid with the {METHODS[charge.method]}."
    if charge.result == PaymentResult.PENDING:
        return "Awaiting your approval in the StagePass Wallet."
    if is_unanswered(charge):
        if order.status == OrderStatus.PENDING:
            return "The payment provider did not answer. Pay again: you will be charged at most once."
        return "The payment provider did not answer before the hold ran out."
    if charge.result == PaymentResult.DECLINED:
        return f"Payment declined: {charge.failure_reason}"
    if order.status == OrderStatus.FAILED:
        return f"Payment failed: {charge.failure_reason}"
    return "The payment was not completed; nothing was charged."


# --- refunds ---------------------------------------------------------------------------------


def refund(order: Order, *, now: datetime, booking: Booking | None = None) -> Payment:
    """Refund a paid order in full, or one seat of it, inside the caller's unit of work.

    The provider is asked first: if it refuses or does not answer, RefundFailed is raised and the
    caller's unit of work rolls back, so nothing is marked refunded that was not.
    """
    if order.payment_status != PaymentStatus.PAID:
        raise IllegalTransition(f"Only a paid order can be refunded; this one is {order.payment_status}.")
    remaining = order.total_amount - order.refunded_amount
    amount = booking.total_amount if booking is not None else remaining
    if amount > remaining:
        raise IllegalTransition("That would refund more than was paid.")
    charge = _existing_charge(order)
    try:
        answer = card_provider.refund(charge.provider_reference, amount, idempotency_key=refund_key(order, booking))
    except OSError:
        raise RefundFailed(
            f"The payment provider did not answer the refund of order {order.reference}. Nothing was changed; try again."
        ) from None
    if answer.result != PaymentResult.SUCCEEDED:
        raise RefundFailed(
            f"The payment provider refused to refund order {order.reference}: {answer.failure_reason} Nothing was changed."
        )
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
    return payment
